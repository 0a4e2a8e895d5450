/**
 * The AEAD seam of the transport-data path: a run of pool slots sealed or opened under one key
 * per call. Two implementations: `sodiumAead` here (one libsodium call per packet; the reference
 * and the default) and the native addon's batch entry points, which @overlay/native exposes
 * (`nativeAead()`) and openHost passes in through WireGuardDeviceOptions.aead. Both produce
 * WireGuard transport-data messages byte for byte alike (type 4, receiver index, 64-bit
 * little-endian counter, ChaCha20-Poly1305 with the counter as nonce, no associated data).
 */
import { createRequire } from 'node:module';
import type sodiumNative from 'sodium-native';
import { DATA_HEADER_LEN, MSG_DATA } from './messages.js';
import { TAG_LEN } from './primitives.js';

export interface AeadBatch {
  /**
   * Seals slots[first .. first+count) in place under `key`: header into the 16 bytes before
   * off, tag after the payload, counters counterLo/Hi (two int32 halves of a 64-bit counter) + i,
   * off/len updated to the whole message. The caller checked head- and tailroom.
   */
  seal(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, remoteIndex: number, counterLo: number, counterHi: number): void;
  /**
   * Opens transport-data messages slots[first .. first+count) (len ≥ 32, counter read from each
   * header) in place: ok[first + i] = 1 and off/len on the plaintext when authentic, else
   * ok[first + i] = 0 and off/len unchanged (the native path also restores the bytes; libsodium
   * clears the body). Returns how many opened.
   */
  open(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, ok: Uint8Array): number;
}

/** Views into a slab cached per slot (keyed by offset and length), so steady traffic of repeated sizes creates none. */
class ViewCache {
  private readonly views: (Buffer | undefined)[] = [];
  private readonly off: number[] = [];
  private readonly len: number[] = [];
  private data: Buffer | null = null;
  get(data: Uint8Array, slot: number, start: number, length: number): Buffer {
    if (this.data === null || this.data.buffer !== data.buffer) {
      this.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      this.views.length = this.off.length = this.len.length = 0;
    }
    const v = this.views[slot];
    if (v !== undefined && this.off[slot] === start && this.len[slot] === length) return v;
    const fresh = this.data.subarray(start, start + length);
    this.views[slot] = fresh;
    this.off[slot] = start;
    this.len[slot] = length;
    return fresh;
  }
}

/**
 * One libsodium call per packet over cached views of the pool slab. Single-threaded, like the pool.
 * sodium-native is loaded here, on the first call, not when the package is imported: an agent whose
 * host passes the native addon's AEAD never loads it (its JS, its dependencies' sources and the
 * shared library cost about 1 MiB resident; issue 15, docs/agent-memory.md).
 */
export function sodiumAead(): AeadBatch {
  const sodium = createRequire(import.meta.url)('sodium-native') as typeof sodiumNative;
  const nonce = Buffer.alloc(12);
  const body = new ViewCache();
  const tag = new ViewCache();
  let hdr: DataView | null = null;
  const header = (data: Uint8Array): DataView => (hdr !== null && hdr.buffer === data.buffer && hdr.byteOffset === data.byteOffset ? hdr : (hdr = new DataView(data.buffer, data.byteOffset, data.byteLength)));
  return {
    seal(data, off, len, slots, first, count, key, remoteIndex, counterLo, counterHi) {
      const h = header(data);
      for (let i = 0; i < count; i++) {
        const slot = slots[first + i];
        const o = off[slot];
        const l = len[slot];
        // lo + i may carry into hi (counters cross 2^32 only after 4 G messages; kept exact anyway).
        const lo = ((counterLo >>> 0) + i) >>> 0;
        const hi = (counterHi + ((counterLo >>> 0) + i > 0xffffffff ? 1 : 0)) >>> 0;
        nonce.writeUInt32LE(lo, 4);
        nonce.writeUInt32LE(hi, 8);
        const b = body.get(data, slot, o, l);
        sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(b, tag.get(data, slot, o + l, TAG_LEN), b, null, null, nonce, key as Buffer);
        const at = o - DATA_HEADER_LEN;
        h.setUint32(at, MSG_DATA, true);
        h.setUint32(at + 4, remoteIndex, true);
        h.setUint32(at + 8, lo, true);
        h.setUint32(at + 12, hi, true);
        off[slot] = at;
        len[slot] = l + DATA_HEADER_LEN + TAG_LEN;
      }
    },
    open(data, off, len, slots, first, count, key, ok) {
      const h = header(data);
      let opened = 0;
      for (let i = 0; i < count; i++) {
        const slot = slots[first + i];
        const o = off[slot];
        const n = len[slot] - DATA_HEADER_LEN - TAG_LEN;
        nonce.writeUInt32LE(h.getUint32(o + 8, true), 4);
        nonce.writeUInt32LE(h.getUint32(o + 12, true), 8);
        const b = body.get(data, slot, o + DATA_HEADER_LEN, n);
        ok[first + i] = 0;
        try {
          // libsodium verifies before it decrypts; on failure it clears the body (off/len stay).
          sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(b, null, b, tag.get(data, slot, o + DATA_HEADER_LEN + n, TAG_LEN), null, nonce, key as Buffer);
        } catch {
          continue;
        }
        ok[first + i] = 1;
        off[slot] = o + DATA_HEADER_LEN;
        len[slot] = n;
        opened++;
      }
      return opened;
    },
  };
}
