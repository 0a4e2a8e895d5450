import { DoubleReleaseError, InvalidConfigError } from './errors.js';

/**
 * Room in front of every frame so encapsulation prepends headers in place, never copying the
 * payload: outer Ethernet (14) + IPv6 (40) + UDP (8) + VXLAN (8) + a WireGuard transport
 * header (16) + virtio-net header (12) = 98, rounded up to a cache line multiple.
 */
export const DEFAULT_HEADROOM = 128;
/** Room after the frame for an AEAD tag (16) and padding to 16 bytes (15). */
export const DEFAULT_TAILROOM = 64;
/** Largest inner frame by default: a 9000-byte jumbo payload plus Ethernet and 802.1Q. */
export const DEFAULT_FRAME_CAPACITY = 9018;

export interface BufferPoolOptions {
  /** Number of slots. Fixed for the pool's life: exhaustion is a counted drop, never growth. */
  count: number;
  /** Largest frame (or datagram payload) a slot holds, excluding head/tailroom. */
  frameCapacity?: number;
  headroom?: number;
  tailroom?: number;
}

/**
 * A fixed slab of packet buffers kept as a structure of arrays.
 *
 * A packet is a slot number. Its bytes live in `data` at `off[slot]` for `len[slot]` bytes;
 * `base(slot)` is where the slot's room starts, so `off - base` is the headroom still free.
 * The per-slot metadata (`off`, `len`, underlay `family`/`addr`/`port`, `vni`) lives in typed
 * arrays so the native addon can read and write it in place, once per batch, without JS
 * objects per packet.
 *
 * Ownership: a slot belongs to whoever acquired it until released. Single-threaded: a pool
 * must be used from one thread (one event loop); use one pool per worker.
 */
export class BufferPool {
  readonly count: number;
  readonly headroom: number;
  readonly tailroom: number;
  readonly frameCapacity: number;
  /** Bytes per slot: headroom + frameCapacity + tailroom, rounded to 64. */
  readonly stride: number;
  readonly data: Buffer;
  /**
   * `data` as a DataView, for stages that read a header's 16- and 32-bit fields whole
   * (one bounds check and one load each, where byte reads take one per byte).
   */
  readonly view: DataView;
  /** Absolute offset in `data` of the first valid byte of each slot. */
  readonly off: Int32Array;
  /** Valid byte count of each slot. */
  readonly len: Int32Array;
  /** Underlay address family of each slot's remote endpoint: 0 unset, 4 or 6. */
  readonly family: Uint8Array;
  /** 16 bytes per slot: the remote address (IPv4 in the first 4 bytes). */
  readonly addr: Buffer;
  /** Remote UDP port of each slot. */
  readonly port: Uint16Array;
  /** Network identifier attached by the pipeline (VNI on the wire). */
  readonly vni: Int32Array;
  /**
   * The sender's Group Policy ID (VXLAN-GBP, 0..65535), or -1 for none: set from the header on
   * receive; set by a stage (the policy filter) on the way out, written into the header when the
   * network sends GBP.
   */
  readonly group: Int32Array;

  private readonly free: Int32Array;
  private freeTop: number;
  private readonly inUse: Uint8Array;
  /** Acquire attempts refused because every slot was in use. */
  exhausted = 0;

  constructor(options: BufferPoolOptions) {
    const count = options.count;
    if (!Number.isInteger(count) || count < 1 || count > 1 << 20) {
      throw new InvalidConfigError('count', `must be an integer in 1..${1 << 20}, got ${count}`);
    }
    this.count = count;
    this.headroom = options.headroom ?? DEFAULT_HEADROOM;
    this.tailroom = options.tailroom ?? DEFAULT_TAILROOM;
    this.frameCapacity = options.frameCapacity ?? DEFAULT_FRAME_CAPACITY;
    for (const k of ['headroom', 'tailroom', 'frameCapacity'] as const) {
      const v = this[k];
      if (!Number.isInteger(v) || v < 0 || v > 65535) throw new InvalidConfigError(k, `must be an integer in 0..65535, got ${v}`);
    }
    this.stride = (this.headroom + this.frameCapacity + this.tailroom + 63) & ~63;
    this.data = Buffer.alloc(this.stride * count);
    this.view = new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    this.off = new Int32Array(count);
    this.len = new Int32Array(count);
    this.family = new Uint8Array(count);
    this.addr = Buffer.alloc(16 * count);
    this.port = new Uint16Array(count);
    this.vni = new Int32Array(count);
    this.group = new Int32Array(count).fill(-1);
    this.free = new Int32Array(count);
    this.inUse = new Uint8Array(count);
    // Lowest slots on top so a lightly loaded pool touches few cache lines.
    for (let i = 0; i < count; i++) this.free[i] = count - 1 - i;
    this.freeTop = count;
  }

  /** Slots currently free. */
  get available(): number {
    return this.freeTop;
  }

  /** Start of a slot's room in `data`. */
  base(slot: number): number {
    return slot * this.stride;
  }

  /** One past the last usable byte of a slot (end of tailroom). */
  limit(slot: number): number {
    return slot * this.stride + this.stride;
  }

  /**
   * Take a free slot, reset to an empty frame at the default headroom. Returns -1 when the
   * pool is exhausted (and counts it in `exhausted`): the caller drops the packet.
   */
  acquire(): number {
    if (this.freeTop === 0) {
      this.exhausted++;
      return -1;
    }
    const slot = this.free[--this.freeTop];
    this.inUse[slot] = 1;
    this.off[slot] = slot * this.stride + this.headroom;
    this.len[slot] = 0;
    this.family[slot] = 0;
    this.port[slot] = 0;
    this.vni[slot] = 0;
    this.group[slot] = -1;
    return slot;
  }

  /** Return a slot. Releasing a slot that is not in use throws `DoubleReleaseError`. */
  release(slot: number): void {
    if (slot < 0 || slot >= this.count || this.inUse[slot] !== 1) throw new DoubleReleaseError(slot);
    this.inUse[slot] = 0;
    this.free[this.freeTop++] = slot;
  }

  isInUse(slot: number): boolean {
    return this.inUse[slot] === 1;
  }

  /** Copy of a slot's valid bytes. Allocates: for tests and embedders, never the hot path. */
  copyOut(slot: number): Buffer {
    return Buffer.from(this.data.subarray(this.off[slot], this.off[slot] + this.len[slot]));
  }

  /**
   * Place `bytes` in a slot at the default headroom. Returns false (and leaves the slot
   * unchanged) when they do not fit. Copies: for tests and embedders' slow paths.
   */
  fill(slot: number, bytes: Uint8Array): boolean {
    if (bytes.length > this.frameCapacity) return false;
    const off = slot * this.stride + this.headroom;
    this.data.set(bytes, off);
    this.off[slot] = off;
    this.len[slot] = bytes.length;
    return true;
  }

  /** Set the slot's underlay endpoint from a 4- or 16-byte address. */
  setEndpoint(slot: number, family: 4 | 6, address: Uint8Array, port: number): void {
    this.family[slot] = family;
    this.addr.set(address.subarray(0, family === 4 ? 4 : 16), slot * 16);
    this.port[slot] = port;
  }
}

/**
 * A reusable list of slots handed across an interface in one call. The receiver of a batch
 * must not keep the batch object after the call returns (it is refilled); it keeps slots it
 * took ownership of.
 */
export class PacketBatch {
  readonly slots: Int32Array;
  count = 0;
  constructor(readonly capacity: number) {
    this.slots = new Int32Array(capacity);
  }
  /** Append a slot; false when full. */
  push(slot: number): boolean {
    if (this.count === this.capacity) return false;
    this.slots[this.count++] = slot;
    return true;
  }
  clear(): void {
    this.count = 0;
  }
}
