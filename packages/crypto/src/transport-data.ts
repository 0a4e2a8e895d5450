/**
 * Transport-data messages on pool memory: seal (encrypt in place, 16-byte header into the
 * headroom, tag into the tailroom) and open (authenticate and decrypt in place, strip header and
 * tag). The per-packet path allocates nothing: libsodium works on views into the pool slab,
 * and those views are cached per slot (keyed by offset and length), so steady traffic of
 * repeated sizes reuses them.
 */
import sodium from 'sodium-native';
import type { BufferPool } from '@overlay/dataplane';
import { DATA_HEADER_LEN, MSG_DATA } from './messages.js';
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

  wipe(): void {
    wipe(this.send);
    wipe(this.recv);
  }
}

class ViewCache {
  private readonly views: (Buffer | undefined)[];
  private readonly off: Int32Array;
  private readonly len: Int32Array;
  constructor(readonly data: Buffer, count: number) {
    this.views = new Array(count);
    this.off = new Int32Array(count).fill(-1);
    this.len = new Int32Array(count).fill(-1);
  }
  get(slot: number, start: number, length: number): Buffer {
    const v = this.views[slot];
    if (v !== undefined && this.off[slot] === start && this.len[slot] === length) return v;
    const fresh = this.data.subarray(start, start + length);
    this.views[slot] = fresh;
    this.off[slot] = start;
    this.len[slot] = length;
    return fresh;
  }
}

/** Per-pool scratch for sealing and opening. Single-threaded, like the pool. */
export class DataCipher {
  private readonly nonce = Buffer.alloc(12);
  private readonly body: ViewCache;
  private readonly tag: ViewCache;

  constructor(readonly pool: BufferPool) {
    this.body = new ViewCache(pool.data, pool.count);
    this.tag = new ViewCache(pool.data, pool.count);
  }

  private setNonce(counter: number): void {
    this.nonce.writeUInt32LE(counter >>> 0, 4);
    this.nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  }

  /**
   * Encrypts the slot's payload for `kp`, padding with zeros to a multiple of `padTo` (1 for
   * none). Returns false, leaving the slot unchanged, when head- or tailroom is too small.
   */
  seal(slot: number, kp: Keypair, padTo: number): boolean {
    const pool = this.pool;
    const data = pool.data;
    const off = pool.off[slot];
    const len = pool.len[slot];
    const padded = padTo > 1 ? Math.ceil(len / padTo) * padTo : len;
    if (off - DATA_HEADER_LEN < pool.base(slot) || off + padded + TAG_LEN > pool.limit(slot)) return false;
    if (padded > len) data.fill(0, off + len, off + padded);
    const counter = kp.sendCounter++;
    this.setNonce(counter);
    const body = this.body.get(slot, off, padded);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(body, this.tag.get(slot, off + padded, TAG_LEN), body, null, null, this.nonce, kp.send);
    const h = off - DATA_HEADER_LEN;
    data.writeUInt32LE(MSG_DATA, h);
    data.writeUInt32LE(kp.remoteIndex, h + 4);
    data.writeUInt32LE(counter >>> 0, h + 8);
    data.writeUInt32LE(Math.floor(counter / 0x100000000), h + 12);
    pool.off[slot] = h;
    pool.len[slot] = DATA_HEADER_LEN + padded + TAG_LEN;
    return true;
  }

  /**
   * Authenticates and decrypts a transport-data datagram in place (caller checked length ≥ 32
   * and parsed `counter`). On success the slot holds the plaintext; on failure it is untouched
   * in length and offset (the ciphertext bytes may not be) and false is returned.
   */
  open(slot: number, kp: Keypair, counter: number): boolean {
    const pool = this.pool;
    const off = pool.off[slot];
    const n = pool.len[slot] - DATA_HEADER_LEN - TAG_LEN;
    this.setNonce(counter);
    const body = this.body.get(slot, off + DATA_HEADER_LEN, n);
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(body, null, body, this.tag.get(slot, off + DATA_HEADER_LEN + n, TAG_LEN), null, this.nonce, kp.recv);
    } catch {
      return false;
    }
    pool.off[slot] = off + DATA_HEADER_LEN;
    pool.len[slot] = n;
    return true;
  }
}
