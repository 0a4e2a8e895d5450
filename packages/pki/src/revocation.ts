/**
 * Revocations: a CA-signed record naming an Ed25519 identity key, a WireGuard X25519 key, or a
 * CA (by digest). A RevocationSet holds the verified ones and answers in O(1) (hash sets keyed by
 * the key bytes); verifyCert consults it, so a revoked key's certificates and every certificate a
 * revoked CA issued fail. Records are kept as bytes so they can be gossiped on unchanged.
 *
 * A record stops mattering at `revocationKeepUntil`: its issuing CA's notAfter (every certificate
 * that CA signed ends by then, and it can sign no new one), for a revoked CA no later than that
 * CA's own end. `prune(now)` drops records past it, so the set is bounded by what can still matter.
 */
import { Types, decode, encode } from './codec.js';
import { fail } from './errors.js';
import { edSign, edVerify, hex, KEY_LEN, SIG_LEN } from './keys.js';
import { TrustedCas, caPrivateKey, keyOf, type CaKeyPair, type Certificate } from './cert.js';

export const REVOCATION_VERSION = 1;
export const RevocationKind = { signKey: 1, wgKey: 2, ca: 3 } as const;
export type RevocationKindName = keyof typeof RevocationKind;
const KIND_NAMES: Record<number, RevocationKindName> = { 1: 'signKey', 2: 'wgKey', 3: 'ca' };
const MAX_REASON = 200;

export interface Revocation {
  kind: RevocationKindName;
  key: Uint8Array;
  time: number;
  /** Digest of the CA that signed it. */
  issuer: Uint8Array;
  reason: string;
  /** The encoded record (what is gossiped). */
  bytes: Uint8Array;
}

interface RawBody { version: number; kind: number; key: Uint8Array; time: number; issuer: Uint8Array; reason: string }

/** Sign a revocation with a CA's key. `key` is the public key, or the CA digest for kind `ca`. */
export function createRevocation(ca: CaKeyPair, o: { kind: RevocationKindName; key: Uint8Array; now: number; reason?: string }): Revocation {
  if (!(o.kind in RevocationKind)) fail('invalid_argument', `revocation kind must be one of ${Object.keys(RevocationKind).join(', ')}`);
  if (o.key.length !== KEY_LEN) fail('invalid_argument', `a revoked key or CA digest is ${KEY_LEN} bytes`);
  const reason = o.reason ?? '';
  if (reason.length > MAX_REASON) fail('invalid_argument', `reason is over ${MAX_REASON} characters`);
  const body = encode(Types.RevocationBody, { version: REVOCATION_VERSION, kind: RevocationKind[o.kind], key: o.key, time: o.now, issuer: ca.cert.digest, reason });
  const bytes = encode(Types.Revocation, { body, sig: edSign(caPrivateKey(ca), body) });
  return { kind: o.kind, key: new Uint8Array(o.key), time: o.now, issuer: ca.cert.digest, reason, bytes };
}

/**
 * Parse and verify a revocation: canonical (`malformed`), signed by a trusted CA named in it
 * (`wrong_issuer`, `bad_signature`).
 */
export function parseRevocation(bytes: Uint8Array, trusted: TrustedCas | readonly (Uint8Array | Certificate)[]): Revocation {
  const outer = decode<{ body: Uint8Array; sig: Uint8Array }>(Types.Revocation, bytes, 'revocation');
  if (outer.sig.length !== SIG_LEN) fail('malformed', `revocation signature must be ${SIG_LEN} bytes`);
  const b = decode<RawBody>(Types.RevocationBody, outer.body, 'revocation body');
  if (b.version !== REVOCATION_VERSION) fail('malformed', `revocation version ${b.version} is not ${REVOCATION_VERSION}`);
  const kind = KIND_NAMES[b.kind];
  if (!kind) fail('malformed', `revocation kind ${b.kind} is unknown`);
  if (b.key.length !== KEY_LEN) fail('malformed', `revoked key must be ${KEY_LEN} bytes`);
  if (b.issuer.length !== KEY_LEN) fail('malformed', 'revocation issuer must be a 32-byte CA digest');
  if (b.reason.length > MAX_REASON) fail('malformed', `revocation reason is over ${MAX_REASON} characters`);
  const trust = trusted instanceof TrustedCas ? trusted : new TrustedCas(trusted);
  const ca = trust.get(b.issuer);
  if (!ca) fail('wrong_issuer', 'revocation: its issuer is not a trusted CA');
  if (!edVerify(keyOf(ca!), outer.body, outer.sig)) fail('bad_signature', 'revocation: signature does not verify');
  return { kind, key: new Uint8Array(b.key), time: b.time, issuer: new Uint8Array(b.issuer), reason: b.reason, bytes: new Uint8Array(bytes) };
}

/**
 * Until when a revocation can matter (ms): the issuing CA's notAfter; for a revoked CA, no later
 * than that CA's own notAfter when it is trusted. 0 when the issuer is not trusted.
 */
export function revocationKeepUntil(r: Pick<Revocation, 'kind' | 'key' | 'issuer'>, trusted: TrustedCas): number {
  const issuer = trusted.get(r.issuer);
  if (!issuer) return 0;
  const revokedCa = r.kind === 'ca' ? trusted.get(r.key) : undefined;
  return Math.min(issuer.notAfter, revokedCa?.notAfter ?? Infinity);
}

/**
 * Verified revocations; `isRevoked` and `isCaRevoked` are one or two hash lookups. Each record is
 * kept until `revocationKeepUntil` (the latest of the records naming the same key); `prune`
 * drops the ones past it.
 */
export class RevocationSet {
  private readonly records = new Map<string, { rev: Revocation; until: number }>();
  private earliest = Infinity;

  /**
   * Verify and add a record (bytes from a peer, or one built here). Returns false when it was
   * already known (a later horizon from another issuer is kept) or, given `now`, when it no
   * longer matters; throws PkiError when it does not verify.
   */
  add(rev: Uint8Array | Revocation, trusted: TrustedCas | readonly (Uint8Array | Certificate)[], now?: number): boolean {
    const trust = trusted instanceof TrustedCas ? trusted : new TrustedCas(trusted);
    const r = parseRevocation(rev instanceof Uint8Array ? rev : rev.bytes, trust);
    const until = revocationKeepUntil(r, trust);
    if (now !== undefined && now >= until) return false;
    const id = `${r.kind}:${hex(r.key)}`;
    const known = this.records.get(id);
    if (known) {
      if (until > known.until) this.records.set(id, { rev: r, until });
      return false;
    }
    this.records.set(id, { rev: r, until });
    if (until < this.earliest) this.earliest = until;
    return true;
  }

  /** An identity or WireGuard public key is revoked. */
  isRevoked(key: Uint8Array): boolean {
    if (key.length !== KEY_LEN) return false;
    const h = hex(key);
    return this.records.has(`signKey:${h}`) || this.records.has(`wgKey:${h}`);
  }

  isCaRevoked(digest: Uint8Array): boolean {
    return this.records.has(`ca:${hex(digest)}`);
  }

  /** Drop the records that no longer matter at `now`; returns them. */
  prune(now: number): Revocation[] {
    if (now < this.earliest) return [];
    const gone: Revocation[] = [];
    this.earliest = Infinity;
    for (const [id, e] of this.records) {
      if (now >= e.until) {
        this.records.delete(id);
        gone.push(e.rev);
      } else if (e.until < this.earliest) this.earliest = e.until;
    }
    return gone;
  }

  /** When the next record stops mattering (for the caller's one timer), or undefined when empty. */
  nextExpiry(): number | undefined {
    return this.earliest === Infinity ? undefined : this.earliest;
  }

  /** Until when the record naming `key` (of `kind`) is kept, or undefined when none is. */
  keptUntil(kind: RevocationKindName, key: Uint8Array): number | undefined {
    return this.records.get(`${kind}:${hex(key)}`)?.until;
  }

  /** Every record, as gossiped. */
  list(): Revocation[] {
    return [...this.records.values()].map((e) => e.rev);
  }

  get size(): number {
    return this.records.size;
  }
}
