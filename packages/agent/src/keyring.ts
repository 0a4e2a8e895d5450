/**
 * Cluster-key encryption for every gossip packet and push-pull chunk.
 *
 * AEAD: ChaCha20-Poly1305 (IETF, RFC 8439) from Node's OpenSSL, a fresh random 96-bit nonce per
 * packet. A keyring holds several 32-byte keys: the primary seals, every key is tried to open, so
 * keys rotate without downtime (install the new key everywhere, make it primary everywhere, then
 * remove the old one). Keys never appear in logs or errors: `toString()` shows only fingerprints.
 *
 * Layout: [version 0x01][nonce 12][ciphertext][tag 16]; the version byte is authenticated data.
 */
import { createCipheriv, createDecipheriv, createHash, randomFillSync } from 'node:crypto';
import { OverlayError } from '@overlay/dataplane';

export const SEAL_VERSION = 1;
export const SEAL_OVERHEAD = 1 + 12 + 16;
const AAD = Buffer.from([SEAL_VERSION]);

/**
 * A cluster key is not 32 bytes, or a key to use/remove is not installed or is the primary.
 * (Named apart from @overlay/crypto's InvalidKeyError, which is about WireGuard keys.)
 */
export class InvalidClusterKeyError extends OverlayError {
  constructor(message: string) {
    super('OVL_ERR_AGENT_INVALID_KEY', message);
  }
}

/** Seals and opens packets. Stateless apart from the keys; safe to share within one thread. */
export interface Sealer {
  readonly overhead: number;
  seal(plain: Uint8Array): Uint8Array;
  /** Returns the plaintext, or null when no key authenticates the packet (caller counts a drop). */
  open(packet: Uint8Array): Uint8Array | null;
}

export class Keyring implements Sealer {
  readonly overhead = SEAL_OVERHEAD;
  private keys: Buffer[] = [];

  /** `keys[0]` becomes primary. Each key is 32 bytes or its base64. */
  constructor(keys: (Uint8Array | string)[]) {
    if (keys.length === 0) throw new InvalidClusterKeyError('keyring needs at least one key');
    for (const k of keys) this.add(k);
  }

  static parseKey(k: Uint8Array | string): Buffer {
    const b = typeof k === 'string' ? Buffer.from(k, 'base64') : Buffer.from(k);
    if (b.length !== 32) throw new InvalidClusterKeyError(`cluster key must be 32 bytes (base64 of 32 bytes), got ${b.length} bytes`);
    return b;
  }

  /** Add a key (not primary) so packets sealed with it are accepted. */
  add(k: Uint8Array | string): void {
    const b = Keyring.parseKey(k);
    if (!this.keys.some((x) => x.equals(b))) this.keys.push(b);
  }
  /** Make an installed key primary. */
  use(k: Uint8Array | string): void {
    const b = Keyring.parseKey(k);
    const i = this.keys.findIndex((x) => x.equals(b));
    if (i < 0) throw new InvalidClusterKeyError('key to use is not installed');
    this.keys.unshift(...this.keys.splice(i, 1));
  }
  /** Remove a key that is not primary. */
  remove(k: Uint8Array | string): void {
    const b = Keyring.parseKey(k);
    const i = this.keys.findIndex((x) => x.equals(b));
    if (i === 0) throw new InvalidClusterKeyError('cannot remove the primary key');
    if (i > 0) this.keys.splice(i, 1);
  }
  /** SHA-256 prefix of each key, primary first: safe to show. */
  fingerprints(): string[] {
    return this.keys.map((k) => createHash('sha256').update(k).digest('hex').slice(0, 12));
  }
  toString(): string {
    return `Keyring(${this.fingerprints().join(',')})`;
  }

  seal(plain: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(SEAL_OVERHEAD + plain.length);
    out[0] = SEAL_VERSION;
    const nonce = out.subarray(1, 13);
    randomFillSync(nonce);
    const c = createCipheriv('chacha20-poly1305', this.keys[0], nonce, { authTagLength: 16 });
    c.setAAD(AAD, { plaintextLength: plain.length });
    const n = c.update(plain).copy(out, 13);
    c.final();
    c.getAuthTag().copy(out, 13 + n);
    return out;
  }

  open(packet: Uint8Array): Uint8Array | null {
    if (packet.length < SEAL_OVERHEAD || packet[0] !== SEAL_VERSION) return null;
    const b = Buffer.from(packet.buffer, packet.byteOffset, packet.length);
    const nonce = b.subarray(1, 13);
    const ct = b.subarray(13, b.length - 16);
    const tag = b.subarray(b.length - 16);
    for (const key of this.keys) {
      const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      d.setAAD(AAD, { plaintextLength: ct.length });
      d.setAuthTag(tag);
      const p = d.update(ct);
      try {
        d.final();
        return p;
      } catch {
        // wrong key or forged: try the next
      }
    }
    return null;
  }
}

/**
 * No encryption, for the in-process simulation and tests only: [0x00][plaintext]. A real agent
 * refuses to start with encryption off unless the config says `insecure: true`.
 */
export class PlainSealer implements Sealer {
  readonly overhead = 1;
  seal(plain: Uint8Array): Uint8Array {
    const out = new Uint8Array(plain.length + 1);
    out.set(plain, 1);
    return out;
  }
  open(packet: Uint8Array): Uint8Array | null {
    if (packet.length < 1 || packet[0] !== 0) return null;
    return packet.subarray(1);
  }
}
