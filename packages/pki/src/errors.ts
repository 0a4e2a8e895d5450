/**
 * One error class for the PKI with a stable `code`. Messages name what was wrong (a field, a
 * limit) and never a key, a secret or a token.
 */
export type PkiErrorCode =
  /** Bytes that do not decode, are not canonical, or break a field's rule (length, range). */
  | 'malformed'
  /** The signature does not verify with the issuer's key (or the CA's own, for a CA cert). */
  | 'bad_signature'
  /** The issuer is not a trusted CA (or a CA digest does not match the pinned one). */
  | 'wrong_issuer'
  /** now ≥ notAfter. */
  | 'expired'
  /** now < notBefore. */
  | 'not_yet_valid'
  /** A revocation names the cert's identity key or WireGuard key. */
  | 'revoked'
  /** A revocation names the CA that issued it. */
  | 'ca_revoked'
  /** The issuing CA's own validity has ended (or not begun). */
  | 'ca_expired'
  /** A CA cert where a node cert is expected, or the reverse. */
  | 'not_a_node_cert'
  | 'not_a_ca'
  /** A key that is not a usable public key (X25519 low-order point: all-zero shared secret). */
  | 'bad_key'
  /** Join: the proof of the token secret is wrong (or the token was rotated). */
  | 'bad_secret'
  /** Join: the request's time is outside the accepted window. */
  | 'stale'
  /** Join: this nonce was seen already. */
  | 'replayed'
  /** Join: a requested prefix lies outside what the token allows. */
  | 'prefix_not_allowed'
  /** Join: the name was issued to another identity key already. */
  | 'name_taken'
  /** Join: the signer remembers too many unexpired nonces to take another request now. */
  | 'busy'
  /** A token string that does not parse. */
  | 'bad_token'
  /** Join: the signer's answer does not prove knowledge of the secret or does not match the request. */
  | 'bad_response'
  /** Join transport: unreachable, timed out, too large. */
  | 'transport'
  /** Invalid argument from the caller (not from a peer). */
  | 'invalid_argument';

export class PkiError extends Error {
  readonly code: PkiErrorCode;
  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
    this.name = 'PkiError';
  }
}

export const fail = (code: PkiErrorCode, message: string): never => {
  throw new PkiError(code, message);
};
