/**
 * Key handling on node:crypto only: Ed25519 (RFC 8032) for signatures, X25519 (RFC 7748) for the
 * WireGuard key check, SHA-256, HMAC-SHA256 and HKDF-SHA256. Raw 32-byte keys are wrapped in the
 * fixed DER prefixes of RFC 8410 to become KeyObjects. Nothing here logs or prints key bytes.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { fail } from './errors.js';

const ED_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const ED_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const X_SPKI = Buffer.from('302a300506032b656e032100', 'hex');

export const KEY_LEN = 32;
export const SIG_LEN = 64;

/** An Ed25519 key pair as raw bytes: `seed` is the 32-byte private key (RFC 8032). */
export interface SigningKeyPair {
  publicKey: Uint8Array;
  seed: Uint8Array;
}

export function generateSigningKey(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey: rawPublic(publicKey), seed: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(ED_PKCS8.length)) };
}

function rawPublic(k: KeyObject): Uint8Array {
  return new Uint8Array(k.export({ format: 'der', type: 'spki' }).subarray(ED_SPKI.length));
}

export function edPrivateKey(seed: Uint8Array): KeyObject {
  if (seed.length !== KEY_LEN) fail('invalid_argument', `an Ed25519 private key is ${KEY_LEN} bytes`);
  return createPrivateKey({ key: Buffer.concat([ED_PKCS8, seed]), format: 'der', type: 'pkcs8' });
}

export function edPublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY_LEN) fail('malformed', `an Ed25519 public key is ${KEY_LEN} bytes`);
  try {
    return createPublicKey({ key: Buffer.concat([ED_SPKI, raw]), format: 'der', type: 'spki' });
  } catch {
    return fail('bad_key', 'not an Ed25519 public key');
  }
}

/** The public key of an Ed25519 seed. */
export function publicOfSeed(seed: Uint8Array): Uint8Array {
  return rawPublic(createPublicKey(edPrivateKey(seed)));
}

export function edSign(key: KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, data, key));
}

export function edVerify(key: KeyObject, data: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== SIG_LEN) return false;
  try {
    return verify(null, data, key, sig);
  } catch {
    return false;
  }
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function hkdf(secret: Uint8Array, salt: Uint8Array, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, salt, info, 32));
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A scratch X25519 private key, only for checking peers' public keys (its secret protects nothing). */
let probe: KeyObject | undefined;

/**
 * A WireGuard (X25519) public key is usable: 32 bytes, and a Diffie-Hellman with it gives a
 * non-zero shared secret (low-order points give all zeros, RFC 7748 §6.1).
 */
export function checkWireGuardKey(raw: Uint8Array): void {
  if (raw.length !== KEY_LEN) fail('malformed', `a WireGuard public key is ${KEY_LEN} bytes`);
  const id = hex(raw);
  if (goodWireGuardKeys.has(id)) return;
  probe ??= generateKeyPairSync('x25519').privateKey;
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: probe, publicKey: createPublicKey({ key: Buffer.concat([X_SPKI, raw]), format: 'der', type: 'spki' }) });
  } catch {
    return fail('bad_key', 'the WireGuard key gives no shared secret');
  }
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) fail('bad_key', 'the WireGuard key is a low-order point (all-zero shared secret)');
  if (goodWireGuardKeys.size >= GOOD_KEYS_MAX) goodWireGuardKeys.clear();
  goodWireGuardKeys.add(id);
}

/** Keys that passed checkWireGuardKey (a Diffie-Hellman each is the costly part of signing). */
const goodWireGuardKeys = new Set<string>();
const GOOD_KEYS_MAX = 4096;

/** The X25519 public key of a WireGuard private key (32 raw bytes). */
export function wireGuardPublicOf(priv: Uint8Array): Uint8Array {
  const X_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
  const k = createPrivateKey({ key: Buffer.concat([X_PKCS8, priv]), format: 'der', type: 'pkcs8' });
  return new Uint8Array(createPublicKey(k).export({ format: 'der', type: 'spki' }).subarray(X_SPKI.length));
}

export function generateWireGuardKey(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const X_PKCS8_LEN = 16;
  return {
    privateKey: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(X_PKCS8_LEN)),
    publicKey: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(X_SPKI.length)),
  };
}

export const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
