/**
 * Transport-data messages on pool memory: seal (encrypt in place, 16-byte header into the
 * headroom, tag into the tailroom) and open (authenticate and decrypt in place, strip header and
 * tag), a run of slots under one keypair per AEAD call (aead.ts). Nothing is allocated per packet.
 */
import type { BufferPool } from '@overlay/dataplane';
import type { IndexEntry } from './engine.js';
import { sodiumAead, type AeadBatch } from './aead.js';
import { DATA_HEADER_LEN } from './messages.js';
import { ReplayWindow } from './replay.js';
import { TAG_LEN, wipe } from './primitives.js';

/** One direction pair of session keys with its indices and counters (a WireGuard "keypair"). */
export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  constructor(
    readonly send: Buffer,
    readonly recv: Buffer,
    readonly localIndex: number,
    readonly remoteIndex: number,
    /** We sent the initiation: only the initiator rekeys on age. */
    readonly initiator: boolean,
    readonly createdAt: number,
    /** Opaque owner (the peer); typed by the device. */
    readonly owner: unknown,
  ) {}

  /** Set by wipe(): a packet opened under this keypair before it was dropped is not delivered. */
  dead = false;

  wipe(): void {
    this.dead = true;
    wipe(this.send);
    wipe(this.recv);
  }
}

/**
 * Transport data admitted for opening (receive path): slot, index entry and counter per datagram,
 * in arrival order, and after the AEAD call whether each authenticated. Reused per batch.
 */
export class OpenQueue {
  count = 0;
  busy = false;
  slots: Int32Array;
  counters: Float64Array;
  ok: Uint8Array;
  entries: (IndexEntry | null)[];

  constructor(capacity: number) {
    this.slots = new Int32Array(capacity);
    this.counters = new Float64Array(capacity);
    this.ok = new Uint8Array(capacity);
    this.entries = new Array<IndexEntry | null>(capacity).fill(null);
  }

  /** This queue, emptied and grown to hold `n` (growing allocates; steady batches do not). */
  reserve(n: number): this {
    this.count = 0;
    if (this.slots.length < n) {
      this.slots = new Int32Array(n);
      this.counters = new Float64Array(n);
      this.ok = new Uint8Array(n);
      this.entries = new Array<IndexEntry | null>(n).fill(null);
    }
    return this;
  }

  push(slot: number, entry: IndexEntry, counter: number): void {
    const i = this.count++;
    this.slots[i] = slot;
    this.entries[i] = entry;
    this.counters[i] = counter;
  }
}

/** Per-pool sealing and opening through an AeadBatch. Single-threaded, like the pool. */
export class DataCipher {
  private readonly one = new Int32Array(1);
  private readonly oneOk = new Uint8Array(1);

  constructor(
    readonly pool: BufferPool,
    readonly aead: AeadBatch = sodiumAead(),
  ) {}

  /**
   * Makes the slot ready to seal: zero padding to a multiple of `padTo` (1 for none) and the
   * padded length in pool.len. False, leaving the slot unchanged, when head- or tailroom is too
   * small for header, padding and tag.
   */
  reserve(slot: number, padTo: number): boolean {
    const pool = this.pool;
    const off = pool.off[slot];
    const len = pool.len[slot];
    const padded = padTo > 1 ? Math.ceil(len / padTo) * padTo : len;
    if (off - DATA_HEADER_LEN < pool.base(slot) || off + padded + TAG_LEN > pool.limit(slot)) return false;
    if (padded > len) {
      pool.data.fill(0, off + len, off + padded);
      pool.len[slot] = padded;
    }
    return true;
  }

  /**
   * Seals slots[first .. first+count), each made ready by reserve(), for `kp` with the counters
   * counter0 .. counter0 + count − 1 (the caller took them from kp.sendCounter): one AEAD call.
   */
  sealRun(slots: Int32Array, first: number, count: number, kp: Keypair, counter0: number): void {
    if (count === 0) return;
    const pool = this.pool;
    this.aead.seal(pool.data, pool.off, pool.len, slots, first, count, kp.send, kp.remoteIndex | 0, counter0 | 0, (counter0 / 0x100000000) | 0);
  }

  /**
   * Opens slots[first .. first+count) (each a transport-data message for `kp`, length ≥ 32
   * checked): ok[first + i] tells which authenticated; those hold their plaintext. Returns how many.
   */
  openRun(slots: Int32Array, first: number, count: number, kp: Keypair, ok: Uint8Array): number {
    if (count === 0) return 0;
    const pool = this.pool;
    return this.aead.open(pool.data, pool.off, pool.len, slots, first, count, kp.recv, ok);
  }

  /** reserve() and sealRun() for one slot, taking the next counter of `kp`. */
  seal(slot: number, kp: Keypair, padTo: number): boolean {
    if (!this.reserve(slot, padTo)) return false;
    this.one[0] = slot;
    this.sealRun(this.one, 0, 1, kp, kp.sendCounter++);
    return true;
  }

  /** openRun() for one slot. */
  open(slot: number, kp: Keypair): boolean {
    this.one[0] = slot;
    return this.openRun(this.one, 0, 1, kp, this.oneOk) === 1;
  }
}
