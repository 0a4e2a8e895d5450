import { BufferPool, InvalidConfigError, type BatchSink, type FrameDevice, type PacketBatch } from '@overlay/dataplane';
import { KIND_TAP, native, TAP_MULTI_QUEUE, TAP_OFFLOAD, TAP_TUN, TAP_VNET_HDR, type NativeHandle } from './binding.js';
import { IoCounters } from './counters.js';
import type { NativeError } from './errors.js';
import { TcpCoalescer } from './gro.js';
import { VNET_HDR_LEN } from './headers.js';
import { TcpSegmenter } from './tso.js';
import { NativeIo } from './native-io.js';
import { linkFamily, overlayMtu, VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 } from './link.js';

export { VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 };
/** virtio-net header length used with `vnetHdr` (it sits in the pool headroom). */
export { VNET_HDR_LEN };

export interface TapOptions {
  /** Interface name (at most 15 bytes). Opens an existing TAP/TUN or creates a non-persistent one. */
  name: string;
  /** 'tap' for Ethernet frames (default), 'tun' for IP packets. */
  mode?: 'tap' | 'tun';
  /**
   * Link MTU to set. Default: the overlay MTU rule (`overlayMtu`) applied to `underlay`: its MTU
   * less 50 over IPv4, 70 over IPv6, less `tunnelOverhead`; or leave the link's MTU unchanged
   * when no underlay is named.
   */
  mtu?: number;
  /** Underlay interface whose MTU gives the default overlay MTU. */
  underlay?: string;
  /**
   * Family of the VXLAN underlay on `underlay`. Default: 6 if that link carries a global IPv6
   * address (the larger overhead never overflows), else 4.
   */
  underlayFamily?: 4 | 6;
  /** Bytes an encrypting transport adds to each datagram (SECURE_TRANSPORT_OVERHEAD). Default 0. */
  tunnelOverhead?: number;
  /** IFF_VNET_HDR: a 12-byte virtio-net header precedes each frame (kept in the headroom; zero on write). */
  vnetHdr?: boolean;
  /**
   * Coalesce consecutive TCP segments of a flow in each written batch into one GSO write (see
   * TcpCoalescer): the kernel's TCP receive path then runs once per up to 64 segments. Implies
   * `vnetHdr`. Default false.
   */
  gro?: boolean;
  /**
   * Let the kernel hand over TCP segments of up to 64 KiB and leave checksums to us
   * (TUNSETOFFLOAD TSO4|CSUM), cut here into MTU-sized frames with full checksums (see
   * TcpSegmenter): the kernel's TCP send path then runs once per 64 KiB. Implies `vnetHdr`. Default false.
   */
  tso?: boolean;
  /** IFF_MULTI_QUEUE: open one queue of a multi-queue device (open the same name again for more). */
  multiQueue?: boolean;
  /** Frames read per native call, and the largest batch handed to the sink. Default 64. */
  batchSize?: number;
  /**
   * Transmit queue length of the link: frames the kernel holds for us to read. The default (the
   * kernel's, 1000) overflows while a busy reader is descheduled; each overflow is a drop the
   * inner TCP must retransmit.
   */
  txQueueLen?: number;
  /** Bring the link up after opening. Default true. */
  up?: boolean;
  /** Called when reading fails for good (the device went away). Default: a process warning. */
  onError?: (err: NativeError) => void;
}

/**
 * A Linux TAP (or TUN) device as a FrameDevice. Reads are driven by libuv polling: each
 * wake-up reads up to `batchSize` frames straight into pool slots and makes one sink call.
 * write() makes one native call per batch (one write(2) per frame: TAP has no batch write).
 * Non-blocking; a full device queue is counted (counters.txEagain), never waited on for long.
 *
 * The device lives in the network namespace of the calling process. Single-threaded: use it
 * from the thread that opened it.
 */
export class TapDevice extends NativeIo implements FrameDevice {
  readonly name: string;
  readonly mode: 'tap' | 'tun';
  readonly vnetHdr: boolean;
  /** Set when opened with `gro`: merge counters (merged frames, segments written, bad checksums). */
  readonly coalescer: TcpCoalescer | undefined;
  /** Set when opened with `tso`, after start(): segmentation counters. */
  segmenter: TcpSegmenter | undefined;
  private readonly tso: boolean;
  private jumbo: BufferPool | undefined;
  protected override readonly rxSyscall = 'read';
  private _mtu: number;

  private constructor(name: string, handle: NativeHandle, counters: IoCounters, o: TapOptions, mtu: number) {
    super(handle, counters, o.batchSize ?? 64, o.onError);
    this.name = name;
    this.mode = o.mode ?? 'tap';
    this.vnetHdr = !!(o.vnetHdr || o.gro || o.tso);
    this.tso = !!o.tso;
    this.coalescer = o.gro ? new TcpCoalescer() : undefined;
    this._mtu = mtu;
  }

  /** Open (or create) the device. Throws NativeError (e.g. code 'EPERM' without CAP_NET_ADMIN). */
  static open(o: TapOptions): TapDevice {
    if (typeof o.name !== 'string' || o.name.length < 1 || Buffer.byteLength(o.name) > 15) {
      throw new InvalidConfigError('name', `must be 1..15 bytes, got ${JSON.stringify(o.name)}`);
    }
    if (o.mode !== undefined && o.mode !== 'tap' && o.mode !== 'tun') throw new InvalidConfigError('mode', `must be 'tap' or 'tun'`);
    const batch = o.batchSize ?? 64;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new InvalidConfigError('batchSize', `must be 1..1024, got ${batch}`);
    if (o.txQueueLen !== undefined && (!Number.isInteger(o.txQueueLen) || o.txQueueLen < 1 || o.txQueueLen > 1 << 20)) {
      throw new InvalidConfigError('txQueueLen', `must be an integer in 1..${1 << 20}, got ${o.txQueueLen}`);
    }
    if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65521)) {
      throw new InvalidConfigError('mtu', `must be an integer in 68..65521, got ${o.mtu}`);
    }
    if (o.underlayFamily !== undefined && o.underlayFamily !== 4 && o.underlayFamily !== 6) throw new InvalidConfigError('underlayFamily', `must be 4 or 6, got ${String(o.underlayFamily)}`);
    const n = native();
    if ((o.gro || o.tso) && o.mode === 'tun') throw new InvalidConfigError(o.gro ? 'gro' : 'tso', 'needs Ethernet frames (mode tap)');
    const vnet = !!(o.vnetHdr || o.gro || o.tso);
    const flags = (o.mode === 'tun' ? TAP_TUN : 0) | (vnet ? TAP_VNET_HDR : 0) | (o.tso ? TAP_OFFLOAD : 0) | (o.multiQueue ? TAP_MULTI_QUEUE : 0);
    const [fd, name] = n.openTap(o.name, flags);
    const counters = new IoCounters(n.counterCount);
    // From here the handle owns fd: closing the handle closes it.
    const handle = n.create(fd, KIND_TAP, 0, vnet ? 1 : 0, batch, 0, counters.values);
    try {
      let mtu = o.mtu;
      if (mtu === undefined && o.underlay !== undefined) mtu = overlayMtu(n.linkMtu(o.underlay), o.underlayFamily ?? linkFamily(o.underlay), o.tunnelOverhead ?? 0);
      if (mtu !== undefined || o.txQueueLen !== undefined || o.up !== false) n.linkSet(name, mtu ?? 0, o.txQueueLen ?? 0, o.up === false ? 0 : 1);
      return new TapDevice(name, handle, counters, o, n.linkMtu(name));
    } catch (err) {
      n.close(handle);
      throw err;
    }
  }

  /** L3 MTU of the link (what `ip link` shows). Frames up to mtu + 18 bytes are valid. */
  get mtu(): number {
    return this._mtu;
  }

  /** Change the link MTU. */
  setMtu(mtu: number): void {
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65521) throw new InvalidConfigError('mtu', `must be an integer in 68..65521, got ${mtu}`);
    native().linkSet(this.name, mtu, 0, 0);
    this._mtu = mtu;
  }

  override start(pool: BufferPool, sink: BatchSink): void {
    if (this.vnetHdr && pool.headroom < VNET_HDR_LEN) throw new InvalidConfigError('pool.headroom', `vnetHdr needs at least ${VNET_HDR_LEN}`);
    if (!this.tso) return super.start(pool, sink);
    // Reads land in large private slots; the segmenter copies frames into the caller's pool.
    const jumbo = new BufferPool({ count: this.batchSize * 2, frameCapacity: 65535, headroom: 64, tailroom: 64 });
    const seg = new TcpSegmenter(pool, sink, this.batchSize);
    this.jumbo = jumbo;
    this.segmenter = seg;
    super.start(jumbo, (b) => seg.consume(jumbo, b));
  }

  /** Write each frame with write(2), in one native call. Returns how many were written. */
  write(pool: BufferPool, batch: PacketBatch): number {
    const c = this.coalescer;
    if (!c) return this.transmit(pool, batch);
    const n = c.plan(pool, batch); // may grow c.groups: read it after
    return this.transmitGroups(pool, batch, c.groups, n);
  }

  protected capacity(pool: BufferPool): number {
    // A TSO read is up to 64 KiB of IP plus Ethernet: the whole large slot.
    return pool === this.jumbo ? pool.stride - pool.headroom : pool.frameCapacity;
  }

  protected describe(): string {
    return `TAP device ${this.name}`;
  }
}
