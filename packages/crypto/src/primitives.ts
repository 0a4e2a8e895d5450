/**
 * The cryptographic building blocks of WireGuard, each from a maintained library:
 * ChaCha20-Poly1305, XChaCha20-Poly1305 and X25519 from libsodium (sodium-native), BLAKE2s and
 * HMAC-BLAKE2s from @noble/hashes (neither node:crypto nor libsodium exposes BLAKE2s).
 *
 * These helpers allocate and are for the handshake; the per-packet transport path in
 * transport-data.ts calls libsodium directly on pool memory.
 */
import sodium from 'sodium-native';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';

export const KEY_LEN = 32;
export const HASH_LEN = 32;
export const TAG_LEN = 16;
export const MAC_LEN = 16;

export function hash(...parts: Uint8Array[]): Buffer {
  const h = blake2s.create({});
  for (const p of parts) h.update(p);
  return Buffer.from(h.digest());
}

/** Keyed BLAKE2s with a 16-byte output: WireGuard's MAC (mac1, mac2, cookie). */
export function mac(key: Uint8Array, input: Uint8Array): Buffer {
  return Buffer.from(blake2s(input, { key, dkLen: MAC_LEN }));
}

export function hmacBlake2s(key: Uint8Array, input: Uint8Array): Buffer {
  return Buffer.from(hmac(blake2s, key, input));
}

/** HKDF over HMAC-BLAKE2s, as the Noise framework defines it: n outputs of 32 bytes. */
export function kdf(n: 1 | 2 | 3, chainingKey: Uint8Array, input: Uint8Array): Buffer[] {
  const t0 = hmacBlake2s(chainingKey, input);
  const out: Buffer[] = [];
  let prev: Buffer = Buffer.alloc(0);
  for (let i = 1; i <= n; i++) {
    const input = Buffer.concat([prev, Buffer.from([i])]);
    prev = hmacBlake2s(t0, input);
    input.fill(0);
    out.push(prev);
  }
  t0.fill(0);
  return out;
}

/** X25519. Throws when the result is all zeros (a low-order point): the caller drops. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
  const out = Buffer.alloc(KEY_LEN);
  sodium.crypto_scalarmult(out, privateKey, publicKey);
  return out;
}

export function publicFromPrivate(privateKey: Uint8Array): Buffer {
  const out = Buffer.alloc(KEY_LEN);
  sodium.crypto_scalarmult_base(out, privateKey);
  return out;
}

/** A fresh clamped X25519 private key. */
export function generatePrivate(): Buffer {
  const k = randomBytes(KEY_LEN);
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  sodium.randombytes_buf(b);
  return b;
}

/** The 12-byte nonce: 32 zero bits then the 64-bit little-endian counter. */
function nonce12(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(counter >>> 0, 4);
  n.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  return n;
}

export function aeadEncrypt(key: Uint8Array, counter: number, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const out = Buffer.alloc(plaintext.length + TAG_LEN);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce12(counter), key);
  return out;
}

/** Returns null when authentication fails. */
export function aeadDecrypt(key: Uint8Array, counter: number, ciphertext: Uint8Array, ad: Uint8Array): Buffer | null {
  if (ciphertext.length < TAG_LEN) return null;
  const out = Buffer.alloc(ciphertext.length - TAG_LEN);
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce12(counter), key);
  } catch {
    return null;
  }
  return out;
}

export function xaeadEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const out = Buffer.alloc(plaintext.length + TAG_LEN);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key);
  return out;
}

export function xaeadDecrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Buffer | null {
  if (ciphertext.length < TAG_LEN) return null;
  const out = Buffer.alloc(ciphertext.length - TAG_LEN);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce, key);
  } catch {
    return null;
  }
  return out;
}

/** Constant-time comparison of equal-length byte strings. */
export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Zeroes each buffer given (nulls skipped). */
export function wipe(...bs: (Uint8Array | null | undefined)[]): void {
  for (const b of bs) if (b) b.fill(0);
}
