/** Keys in WireGuard's text form: standard base64 of 32 bytes, as `wg genkey` / `wg pubkey` print. */
import { InvalidKeyError } from './errors.js';
import { generatePrivate, publicFromPrivate, randomBytes } from './primitives.js';

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Decode a base64 key; throws InvalidKeyError naming `field` (never the value). */
export function decodeKey(text: string, field: string): Buffer {
  if (typeof text !== 'string' || !KEY_RE.test(text)) throw new InvalidKeyError(field);
  return Buffer.from(text, 'base64');
}

export function encodeKey(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** A new private key, like `wg genkey`. */
export function generatePrivateKey(): string {
  return encodeKey(generatePrivate());
}

/** The public key of a private key, like `wg pubkey`. */
export function publicKeyOf(privateKey: string): string {
  return encodeKey(publicFromPrivate(decodeKey(privateKey, 'privateKey')));
}

/** A new preshared key, like `wg genpsk`. */
export function generatePresharedKey(): string {
  return encodeKey(randomBytes(32));
}
