/**
 * Join tokens, swarm-style: `OVL1-<CA digest, 64 hex>-<secret, 64 hex>`. The joiner pins the CA
 * by the digest; the signer checks the secret and issues a certificate for the joiner's keys.
 *
 * The secret never travels. A request carries `proof` = HMAC-SHA256(K, "req" ‖ body) with
 * K = HKDF-SHA256(secret, salt = CA digest, "overlay join v1"), where body holds the joiner's
 * keys, name, prefixes, a random nonce and its clock; the joiner also signs body with its
 * Ed25519 identity key (it holds that key). A captured request therefore cannot be replayed for
 * another key (the proof covers the keys) nor again (the signer remembers nonces for the time
 * window and refuses requests outside it). The signer's answer carries an HMAC under the same K
 * over the request and the answer, so the joiner knows the signer held the secret too.
 *
 * The signer reads revocations: a join or renewal for a revoked identity or WireGuard key is
 * `revoked`, and every request is `ca_revoked` once its own CA is (its RevocationSet, fed by
 * `revoke`; records are dropped when they stop mattering, at the CA's notAfter).
 */
import { randomBytes } from 'node:crypto';
import { Types, decode, encode } from './codec.js';
import { fail, PkiError, type PkiErrorCode } from './errors.js';
import { checkWireGuardKey, edPrivateKey, edPublicKey, edSign, edVerify, equalBytes, hex, hkdf, hmac, KEY_LEN, sha256, SIG_LEN } from './keys.js';
import { parseCa, signCert, verifyCert, type CaKeyPair, type Certificate } from './cert.js';
import { parsePrefix, prefixContains, validPrefix, type Prefix } from './prefix.js';
import { RevocationSet, type Revocation } from './revocation.js';

export const TOKEN_PREFIX = 'OVL1';
export const JOIN_VERSION = 1;
const NONCE_LEN = 16;
const TOKEN_RE = /^OVL1-([0-9a-f]{64})-([0-9a-f]{64})$/;

export interface JoinToken {
  caDigest: Uint8Array;
  secret: Uint8Array;
}

export function formatToken(t: JoinToken): string {
  return `${TOKEN_PREFIX}-${hex(t.caDigest)}-${hex(t.secret)}`;
}

/** Parse a token; anything else is `bad_token` (the message never repeats the input). */
export function parseToken(text: string): JoinToken {
  const m = typeof text === 'string' ? TOKEN_RE.exec(text.trim()) : null;
  if (!m) return fail('bad_token', `a join token is ${TOKEN_PREFIX}-<64 hex>-<64 hex>`);
  return { caDigest: new Uint8Array(Buffer.from(m[1], 'hex')), secret: new Uint8Array(Buffer.from(m[2], 'hex')) };
}

const joinKey = (t: JoinToken) => hkdf(t.secret, t.caDigest, 'overlay join v1');
const te = new TextEncoder();
const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
/** Length-prefixed parts, so that no two different answers hash alike. */
const framed = (...parts: Uint8Array[]) => parts.flatMap((p) => [u32(p.length), p]);
function responseProof(k: Uint8Array, reqBody: Uint8Array, cert: Uint8Array, ca: Uint8Array, error: string): Uint8Array {
  return hmac(k, te.encode('resp'), ...framed(sha256(reqBody), cert, ca, te.encode(error)));
}

interface RawRequestBody { version: number; caDigest: Uint8Array; name: string; prefixes: Prefix[]; wgKey: Uint8Array; signKey: Uint8Array; nonce: Uint8Array; time: number }
interface RawResponse { version: number; cert: Uint8Array; ca: Uint8Array; error: string; proof: Uint8Array }

export interface JoinerKeys {
  /** Ed25519 identity: the 32-byte seed and its public key. */
  signSeed: Uint8Array;
  signKey: Uint8Array;
  /** WireGuard X25519 public key. */
  wgKey: Uint8Array;
}

/**
 * Build a join request for `name` (and the prefixes it asks for). `finish` checks the signer's
 * answer: its proof, the CA against the pinned digest, the certificate against that CA at `now`
 * and that it is for these keys; returns them or throws PkiError (the signer's refusal code, or
 * bad_response / wrong_issuer / what verifyCert says).
 */
export function makeJoinRequest(token: JoinToken | string, keys: JoinerKeys, o: { name: string; prefixes?: string[]; now: number }) {
  const t = typeof token === 'string' ? parseToken(token) : token;
  const body = encode(Types.JoinRequestBody, {
    version: JOIN_VERSION, caDigest: t.caDigest, name: o.name, prefixes: (o.prefixes ?? []).map(parsePrefix),
    wgKey: keys.wgKey, signKey: keys.signKey, nonce: randomBytes(NONCE_LEN), time: o.now,
  });
  const k = joinKey(t);
  const bytes = encode(Types.JoinRequest, { body, proof: hmac(k, te.encode('req'), body), sig: edSign(edPrivateKey(keys.signSeed), body) });
  const finish = (response: Uint8Array, now: number): { cert: Certificate; ca: Certificate } => {
    const r = decode<RawResponse>(Types.JoinResponse, response, 'join response');
    if (r.error) {
      const code = (KNOWN_REFUSALS as readonly string[]).includes(r.error) ? (r.error as PkiErrorCode) : 'bad_response';
      throw new PkiError(code, `the signer refused the join (${code})`);
    }
    if (!equalBytes(r.proof, responseProof(k, body, r.cert, r.ca, r.error))) fail('bad_response', 'the answer does not prove the signer knows the token secret');
    if (!equalBytes(sha256(r.ca), t.caDigest)) fail('wrong_issuer', 'the signer\'s CA is not the one the token pins');
    const ca = parseCa(r.ca);
    const { cert } = verifyCert(r.cert, [ca], now);
    if (!equalBytes(cert.signKey, keys.signKey) || !equalBytes(cert.wgKey, keys.wgKey) || cert.name !== o.name) fail('bad_response', 'the certificate is not for the keys and name asked for');
    return { cert, ca };
  };
  return { bytes, finish };
}

/** Codes a signer answers with; anything else from a peer is reported as bad_response. */
export const KNOWN_REFUSALS = ['malformed', 'wrong_issuer', 'bad_secret', 'stale', 'bad_signature', 'bad_key', 'replayed', 'prefix_not_allowed', 'invalid_argument', 'busy', 'name_taken', 'revoked', 'ca_revoked'] as const;

export interface JoinSignerOptions {
  ca: CaKeyPair;
  /** The current token secret (32 bytes); a fresh one when omitted. */
  secret?: Uint8Array;
  /** Groups every certificate issued through the token gets. */
  groups?: string[];
  /** CIDRs the requested prefixes must lie in; none: a joiner may ask for no prefix. */
  within?: string[];
  lifetimeMs?: number;
  /** Requests whose time is further than this from the signer's clock are `stale` (default 5 min). */
  windowMs?: number;
  /** Nonces remembered at most (default 65 536); when full of unexpired ones, requests are `busy`. */
  maxNonces?: number;
  /**
   * Names issued so far → SHA-256 of the identity key (hex). A name issued to one key is refused to
   * another (`name_taken`); the same key may come back (renewal). The signer adds to this map; pass
   * a persisted one to keep the rule across restarts, and `onIssue` to persist additions.
   */
  issued?: Map<string, string>;
  onIssue?: (name: string, keyDigest: string) => void;
  /**
   * Revocations the signer refuses by (its CA's are added with `revoke`; a shared set may hold
   * other trusted CAs' too): a request for a revoked identity or WireGuard key is `revoked`, and
   * every request is `ca_revoked` once the signer's CA is revoked.
   */
  revocations?: RevocationSet;
}

/** The signer side: the CA key, the token secret, the nonces seen; counts every outcome. */
export class JoinSigner {
  readonly ca: CaKeyPair;
  private secret: Uint8Array;
  private key: Uint8Array;
  private readonly groups: string[];
  private readonly within: Prefix[];
  private readonly lifetimeMs: number | undefined;
  private readonly windowMs: number;
  private readonly maxNonces: number;
  private readonly nonces = new Map<string, number>();
  private readonly issued: Map<string, string>;
  private readonly onIssue: ((name: string, keyDigest: string) => void) | undefined;
  readonly revocations: RevocationSet;
  /** Outcome counts: `issued` and one per refusal code. */
  readonly counts: Record<string, number> = { issued: 0 };

  constructor(o: JoinSignerOptions) {
    this.ca = o.ca;
    this.secret = o.secret ?? randomBytes(32);
    if (this.secret.length !== 32) fail('invalid_argument', 'a token secret is 32 bytes');
    this.key = joinKey(this.tokenParts());
    this.groups = o.groups ?? [];
    this.within = (o.within ?? []).map(parsePrefix);
    this.lifetimeMs = o.lifetimeMs;
    this.windowMs = o.windowMs ?? 5 * 60_000;
    this.maxNonces = o.maxNonces ?? 65_536;
    this.issued = o.issued ?? new Map();
    this.onIssue = o.onIssue;
    this.revocations = o.revocations ?? new RevocationSet();
  }

  /**
   * Refuse the key (or CA) a revocation names from now on: verified against the signer's CA
   * (PkiError when it does not verify). False when it was known already or no longer matters.
   */
  revoke(rev: Uint8Array | Revocation, now: number): boolean {
    return this.revocations.add(rev, [this.ca.cert], now);
  }

  private tokenParts(): JoinToken {
    return { caDigest: this.ca.cert.digest, secret: this.secret };
  }

  /** The current token text (contains the secret: show it to the operator, never log it). */
  token(): string {
    return formatToken(this.tokenParts());
  }

  /** The current secret, for persisting. */
  secretBytes(): Uint8Array {
    return new Uint8Array(this.secret);
  }

  /** Replace the secret: requests proven with the old one are `bad_secret` from now on. */
  rotate(secret: Uint8Array = randomBytes(32)): string {
    if (secret.length !== 32) fail('invalid_argument', 'a token secret is 32 bytes');
    this.secret = new Uint8Array(secret);
    this.key = joinKey(this.tokenParts());
    return this.token();
  }

  /** Answer request bytes at time `now`; never throws on peer input. */
  handle(request: Uint8Array, now: number): Uint8Array {
    return handleJoinRequest(this, request, now);
  }

  /** @internal */ check(request: Uint8Array, now: number): { body: Uint8Array; cert?: Certificate } {
    const req = decode<{ body: Uint8Array; proof: Uint8Array; sig: Uint8Array }>(Types.JoinRequest, request, 'join request');
    const b = decode<RawRequestBody>(Types.JoinRequestBody, req.body, 'join request body');
    if (b.version !== JOIN_VERSION || b.nonce.length !== NONCE_LEN || b.signKey.length !== KEY_LEN || b.wgKey.length !== KEY_LEN || req.sig.length !== SIG_LEN || !b.prefixes.every(validPrefix)) {
      fail('malformed', 'join request fields out of range');
    }
    if (!equalBytes(b.caDigest, this.ca.cert.digest)) fail('wrong_issuer', 'the request pins another CA');
    if (!equalBytes(req.proof, hmac(this.key, te.encode('req'), req.body))) fail('bad_secret', 'the proof of the token secret is wrong');
    if (Math.abs(now - b.time) > this.windowMs) fail('stale', 'the request time is outside the accepted window');
    if (!edVerify(edPublicKey(b.signKey), req.body, req.sig)) fail('bad_signature', 'the identity key did not sign the request');
    checkWireGuardKey(b.wgKey);
    this.revocations.prune(now);
    if (this.revocations.isCaRevoked(this.ca.cert.digest)) fail('ca_revoked', 'the signer\'s CA is revoked');
    if (this.revocations.isRevoked(b.signKey) || this.revocations.isRevoked(b.wgKey)) fail('revoked', 'a key of the request is revoked');
    const id = hex(b.nonce);
    if (this.nonces.has(id)) fail('replayed', 'this request was seen already');
    const keyDigest = hex(sha256(b.signKey));
    const holder = this.issued.get(b.name);
    if (holder !== undefined && holder !== keyDigest) fail('name_taken', `the name ${JSON.stringify(b.name.slice(0, 64))} belongs to another identity key`);
    if (this.nonces.size >= this.maxNonces) {
      for (const [n, exp] of this.nonces) if (exp <= now) this.nonces.delete(n);
      if (this.nonces.size >= this.maxNonces) fail('busy', 'too many joins in the time window');
    }
    this.nonces.set(id, b.time + this.windowMs);
    const prefixes = b.prefixes.map((p) => ({ addr: new Uint8Array(p.addr), bits: p.bits }));
    if (!prefixes.every((p) => this.within.some((w) => prefixContains(w, p)))) fail('prefix_not_allowed', 'a requested prefix lies outside what the token allows');
    const cert = signCert(this.ca, { name: b.name, prefixes, groups: this.groups, wgKey: b.wgKey, signKey: b.signKey, now, lifetimeMs: this.lifetimeMs });
    if (holder === undefined) {
      this.issued.set(b.name, keyDigest);
      this.onIssue?.(b.name, keyDigest);
    }
    return { body: req.body, cert };
  }

  /** @internal */ prove(reqBody: Uint8Array, cert: Uint8Array, ca: Uint8Array, error: string): Uint8Array {
    return responseProof(this.key, reqBody, cert, ca, error);
  }
}

/** Signer side of the exchange over bytes: a JoinResponse with a certificate or a refusal code. */
export function handleJoinRequest(signer: JoinSigner, request: Uint8Array, now: number): Uint8Array {
  return answerJoin(signer, request, now).response;
}

/** handleJoinRequest with the outcome: `issued` or the refusal code (counted in signer.counts). */
export function answerJoin(signer: JoinSigner, request: Uint8Array, now: number): { response: Uint8Array; outcome: string } {
  try {
    const { body, cert } = signer.check(request, now);
    signer.counts.issued++;
    const ca = signer.ca.cert.bytes;
    return { response: encode(Types.JoinResponse, { version: JOIN_VERSION, cert: cert!.bytes, ca, proof: signer.prove(body, cert!.bytes, ca, '') }), outcome: 'issued' };
  } catch (e) {
    if (!(e instanceof PkiError)) throw e;
    const code = (KNOWN_REFUSALS as readonly string[]).includes(e.code) ? e.code : 'invalid_argument';
    signer.counts[code] = (signer.counts[code] ?? 0) + 1;
    return { response: encode(Types.JoinResponse, { version: JOIN_VERSION, error: code }), outcome: code };
  }
}
