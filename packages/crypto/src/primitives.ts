/**
 * The cryptographic building blocks of WireGuard, each from a maintained library: X25519 and
 * ChaCha20-Poly1305 from node:crypto (OpenSSL), BLAKE2s and HMAC-BLAKE2s from @noble/hashes
 * (node:crypto exposes no BLAKE2s), XChaCha20-Poly1305 as HChaCha20 (xchacha.ts) in front of
 * node's ChaCha20-Poly1305. libsodium (sodium-native) stays out of this module so that an agent
 * whose data path runs the native addon's AEAD never loads it (issue 15); test/node-primitives.test.ts
 * checks every function here against libsodium.
 *
 * These helpers allocate and are for the handshake; the per-packet transport path in
 * transport-data.ts calls an AeadBatch (aead.ts) on pool memory.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, randomFillSync, type KeyObject } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hchacha20 } from './xchacha.js';

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

// Raw 32-byte X25519 keys into node:crypto KeyObjects. node takes raw keys only as JWK or DER, and
// with OpenSSL 3 the DER decoders are slow: 782 µs per private and 213 µs per public key against
// 72 and 21 µs as JWK (this machine, load 4.6). A private JWK needs an `x` string, which node does
// not use (it derives the public key from `d`); should a later node insist on it, the DER path
// (PKCS#8 and SPKI prefixes of RFC 8410) takes over.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

function checkLength(key: Uint8Array, what: string): void {
  if (key.length !== KEY_LEN) throw new RangeError(`X25519 ${what} key must be ${KEY_LEN} bytes`);
}

/**
 * The KeyObject for a private key, remembered per buffer (the static key is used for every
 * handshake) and made again if the buffer's bytes changed (a wiped or reused buffer). The copy
 * lives exactly as long as the KeyObject, which holds the same secret.
 */
const privateKeys = new WeakMap<Uint8Array, { bytes: Buffer; key: KeyObject }>();

function privateKeyObject(privateKey: Uint8Array): KeyObject {
  checkLength(privateKey, 'private');
  const cached = privateKeys.get(privateKey);
  if (cached !== undefined && equal(cached.bytes, privateKey)) return cached.key;
  let key: KeyObject;
  const d = Buffer.from(privateKey.buffer, privateKey.byteOffset, KEY_LEN).toString('base64url');
  try {
    key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d, x: '' }, format: 'jwk' });
  } catch {
    const der = Buffer.concat([PKCS8_X25519, privateKey]);
    try {
      key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  }
  privateKeys.set(privateKey, { bytes: Buffer.from(privateKey), key });
  return key;
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  checkLength(publicKey, 'public');
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, KEY_LEN).toString('base64url');
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
  } catch {
    return createPublicKey({ key: Buffer.concat([SPKI_X25519, publicKey]), format: 'der', type: 'spki' });
  }
}

/**
 * X25519. Throws when the result is all zeros (a low-order point, however encoded): callers
 * drop the message or refuse the key. OpenSSL refuses that result too; the check here keeps the
 * rule independent of it.
 */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
  const out = diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: publicKeyObject(publicKey) });
  let d = 0;
  for (let i = 0; i < out.length; i++) d |= out[i];
  if (out.length !== KEY_LEN || d === 0) {
    out.fill(0);
    throw new RangeError('X25519: low-order public key (all-zero shared secret)');
  }
  return out;
}

export function publicFromPrivate(privateKey: Uint8Array): Buffer {
  const { x } = createPublicKey(privateKeyObject(privateKey)).export({ format: 'jwk' });
  return Buffer.from(x!, 'base64url');
}

/** A fresh clamped X25519 private key. */
export function generatePrivate(): Buffer {
  const k = randomBytes(KEY_LEN);
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

/** n bytes from the operating system's CSPRNG (via OpenSSL), in a buffer of their own (not pooled). */
export function randomBytes(n: number): Buffer {
  return randomFillSync(Buffer.alloc(n));
}

/** The 12-byte nonce: 32 zero bits then the 64-bit little-endian counter. */
function nonce12(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(counter >>> 0, 4);
  n.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  return n;
}

/** ChaCha20-Poly1305 (RFC 8439) with a 12-byte nonce: ciphertext then the 16-byte tag. */
function sealIetf(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LEN });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** Opens what sealIetf made; null when the tag does not verify. */
function openIetf(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Buffer | null {
  if (ciphertext.length < TAG_LEN) return null;
  const n = ciphertext.length - TAG_LEN;
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LEN });
  d.setAuthTag(ciphertext.subarray(n));
  d.setAAD(ad, { plaintextLength: n });
  const body = d.update(ciphertext.subarray(0, n));
  try {
    return Buffer.concat([body, d.final()]);
  } catch {
    body.fill(0);
    return null;
  }
}

export function aeadEncrypt(key: Uint8Array, counter: number, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  return sealIetf(key, nonce12(counter), plaintext, ad);
}

/** Returns null when authentication fails. */
export function aeadDecrypt(key: Uint8Array, counter: number, ciphertext: Uint8Array, ad: Uint8Array): Buffer | null {
  return openIetf(key, nonce12(counter), ciphertext, ad);
}

/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2): HChaCha20 of the key and the nonce's first
 * 16 bytes gives a subkey, used with ChaCha20-Poly1305 and the nonce 0000 ‖ nonce[16..24).
 */
function xchachaSubkey(key: Uint8Array, nonce: Uint8Array): { subkey: Buffer; nonce: Buffer } {
  if (key.length !== KEY_LEN || nonce.length !== 24) throw new RangeError('XChaCha20-Poly1305 needs a 32-byte key and a 24-byte nonce');
  const n = Buffer.alloc(12);
  n.set(nonce.subarray(16, 24), 4);
  return { subkey: hchacha20(key, nonce.subarray(0, 16)), nonce: n };
}

export function xaeadEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const x = xchachaSubkey(key, nonce);
  try {
    return sealIetf(x.subkey, x.nonce, plaintext, ad);
  } finally {
    x.subkey.fill(0);
  }
}

export function xaeadDecrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Buffer | null {
  const x = xchachaSubkey(key, nonce);
  try {
    return openIetf(x.subkey, x.nonce, ciphertext, ad);
  } finally {
    x.subkey.fill(0);
  }
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
