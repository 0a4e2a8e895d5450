/**
 * Node certificates and CAs. A certificate binds a name, overlay prefixes, groups, the node's
 * WireGuard X25519 key and its Ed25519 identity key to a validity window; the CA signs the exact
 * CertBody bytes with Ed25519. A CA certificate is self-signed (empty issuer, isCa). A node
 * certificate's issuer is the CA's digest: SHA-256 of the CA's whole Certificate bytes.
 *
 * One level only: a CA signs node certificates, never another CA. Several CAs may be trusted at
 * once (rollover): the issuer digest picks the one that must have signed.
 */
import type { KeyObject } from 'node:crypto';
import { Types, decode, encode } from './codec.js';
import { fail, PkiError } from './errors.js';
import { checkWireGuardKey, edPrivateKey, edPublicKey, edSign, edVerify, equalBytes, hex, KEY_LEN, publicOfSeed, sha256, SIG_LEN, generateSigningKey } from './keys.js';
import { formatPrefix, parsePrefix, validPrefix, type Prefix } from './prefix.js';
import type { RevocationSet } from './revocation.js';

export const CERT_VERSION = 1;
export const DAY_MS = 86_400_000;
/** Node certificates last this long unless the signer says otherwise. */
export const DEFAULT_NODE_LIFETIME_MS = 7 * DAY_MS;
/** A new CA lasts this long unless the caller says otherwise. */
export const DEFAULT_CA_LIFETIME_MS = 365 * DAY_MS;
/** A trusted CA this close to its notAfter makes verifyCert return a `ca_expiring` warning. */
export const CA_EXPIRY_WARNING_MS = 30 * DAY_MS;
export const MAX_NAME_LEN = 64;
export const MAX_GROUPS = 64;
export const MAX_PREFIXES = 64;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

export interface CertFields {
  version: number;
  name: string;
  prefixes: Prefix[];
  /** Sorted, unique. */
  groups: string[];
  /** WireGuard X25519 public key; empty in a CA certificate. */
  wgKey: Uint8Array;
  /** Ed25519 public key: the node's identity, or the CA's signing key. */
  signKey: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** Digest of the issuing CA; empty when self-signed (a CA). */
  issuer: Uint8Array;
  isCa: boolean;
}

export interface Certificate extends CertFields {
  /** The whole encoded Certificate (what travels and what the digest covers). */
  bytes: Uint8Array;
  body: Uint8Array;
  sig: Uint8Array;
  /** SHA-256 of `bytes`: a CA's digest is its node certificates' issuer. */
  digest: Uint8Array;
}

/** A CA certificate with its private key (the 32-byte Ed25519 seed). */
export interface CaKeyPair {
  cert: Certificate;
  seed: Uint8Array;
}

interface RawBody {
  version: number; name: string; prefixes: { addr: Uint8Array; bits: number }[]; groups: string[];
  wgKey: Uint8Array; signKey: Uint8Array; notBefore: number; notAfter: number; issuer: Uint8Array; isCa: boolean;
}

function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.addr.length !== b.addr.length) return a.addr.length - b.addr.length;
  for (let i = 0; i < a.addr.length; i++) if (a.addr[i] !== b.addr[i]) return a.addr[i] - b.addr[i];
  return a.bits - b.bits;
}

/** The rules every certificate body obeys; `fail(code)` names the first broken one (no key bytes). */
function checkFields(f: CertFields, code: 'malformed' | 'invalid_argument'): void {
  const bad = (m: string) => fail(code, `certificate ${m}`);
  if (f.version !== CERT_VERSION) bad(`version ${f.version} is not ${CERT_VERSION}`);
  if (!f.name || f.name.length > MAX_NAME_LEN || !NAME_RE.test(f.name)) bad(`name must be 1..${MAX_NAME_LEN} of [A-Za-z0-9._:-], starting with a letter or digit`);
  if (f.groups.length > MAX_GROUPS) bad(`has over ${MAX_GROUPS} groups`);
  for (let i = 0; i < f.groups.length; i++) {
    const g = f.groups[i];
    if (!g || g.length > MAX_NAME_LEN || !NAME_RE.test(g)) bad(`group names must be 1..${MAX_NAME_LEN} of [A-Za-z0-9._:-]`);
    if (i > 0 && !(f.groups[i - 1] < g)) bad('groups must be sorted and unique');
  }
  if (f.prefixes.length > MAX_PREFIXES) bad(`has over ${MAX_PREFIXES} prefixes`);
  for (let i = 0; i < f.prefixes.length; i++) {
    if (!validPrefix(f.prefixes[i])) bad('prefix is not a network address with a valid length');
    if (i > 0 && comparePrefixes(f.prefixes[i - 1], f.prefixes[i]) >= 0) bad('prefixes must be sorted and unique');
  }
  if (f.signKey.length !== KEY_LEN) bad(`identity key must be ${KEY_LEN} bytes`);
  if (!Number.isSafeInteger(f.notBefore) || !Number.isSafeInteger(f.notAfter) || f.notBefore >= f.notAfter) bad('validity must be notBefore < notAfter');
  if (f.isCa) {
    if (f.wgKey.length) bad('of a CA carries no WireGuard key');
    if (f.issuer.length) bad('of a CA is self-signed (no issuer)');
  } else {
    if (f.wgKey.length !== KEY_LEN) bad(`WireGuard key must be ${KEY_LEN} bytes`);
    if (f.issuer.length !== KEY_LEN) bad('issuer must be a 32-byte CA digest');
  }
}

function encodeBody(f: CertFields): Uint8Array {
  return encode(Types.CertBody, {
    version: f.version, name: f.name, prefixes: f.prefixes.map((p) => ({ addr: p.addr, bits: p.bits })), groups: f.groups,
    wgKey: f.wgKey, signKey: f.signKey, notBefore: f.notBefore, notAfter: f.notAfter, issuer: f.issuer, isCa: f.isCa,
  });
}

function assemble(f: CertFields, body: Uint8Array, sig: Uint8Array): Certificate {
  const bytes = encode(Types.Certificate, { body, sig });
  return { ...f, bytes, body, sig, digest: sha256(bytes) };
}

/**
 * Parse certificate bytes: canonical encoding and field rules only (`malformed`). Says nothing
 * about who signed it; use verifyCert (node) or parseCa (CA).
 */
export function parseCert(bytes: Uint8Array): Certificate {
  const outer = decode<{ body: Uint8Array; sig: Uint8Array }>(Types.Certificate, bytes, 'certificate');
  if (outer.sig.length !== SIG_LEN) fail('malformed', `certificate signature must be ${SIG_LEN} bytes`);
  const b = decode<RawBody>(Types.CertBody, outer.body, 'certificate body');
  const f: CertFields = { ...b, prefixes: b.prefixes.map((p) => ({ addr: new Uint8Array(p.addr), bits: p.bits })) };
  checkFields(f, 'malformed');
  return { ...f, bytes: new Uint8Array(bytes), body: outer.body, sig: outer.sig, digest: sha256(bytes) };
}

/**
 * Certificates parsed from bytes, by those exact bytes (bounded, oldest first out): a member's
 * certificate arrives again with every alive and push-pull, and a simulated cluster holds every
 * node's agent in one process. What comes out is the same as parseCert's (treat it as read-only).
 */
const PARSED_MAX = 8192;
const parsed = new Map<string, Certificate>();
function parseCertCached(bytes: Uint8Array): Certificate {
  const k = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  let c = parsed.get(k);
  if (!c) {
    c = parseCert(bytes);
    if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value!);
    parsed.set(k, c);
  }
  return c;
}
/** The CA key a parsed certificate's signature verified under (that key's object: the digest pins it). */
const verifiedWith = new WeakMap<Certificate, KeyObject>();

const caKeys = new WeakMap<Certificate, KeyObject>();
export function keyOf(ca: Certificate): KeyObject {
  let k = caKeys.get(ca);
  if (!k) caKeys.set(ca, (k = edPublicKey(ca.signKey)));
  return k;
}

/** Parse a CA certificate and check its self-signature (`not_a_ca`, `bad_signature`). */
export function parseCa(bytes: Uint8Array | Certificate): Certificate {
  const c = bytes instanceof Uint8Array ? parseCert(bytes) : bytes;
  if (!c.isCa) fail('not_a_ca', `certificate ${c.name} is not a CA`);
  if (!edVerify(keyOf(c), c.body, c.sig)) fail('bad_signature', `CA ${c.name}: self-signature does not verify`);
  return c;
}

export interface CreateCaOptions {
  name: string;
  now: number;
  lifetimeMs?: number;
  notBefore?: number;
  notAfter?: number;
  groups?: string[];
}

export function createCa(o: CreateCaOptions): CaKeyPair {
  const { publicKey, seed } = generateSigningKey();
  const notBefore = o.notBefore ?? o.now;
  const f: CertFields = {
    version: CERT_VERSION, name: o.name, prefixes: [], groups: [...new Set(o.groups ?? [])].sort(), wgKey: new Uint8Array(0), signKey: publicKey,
    notBefore, notAfter: o.notAfter ?? notBefore + (o.lifetimeMs ?? DEFAULT_CA_LIFETIME_MS), issuer: new Uint8Array(0), isCa: true,
  };
  checkFields(f, 'invalid_argument');
  const body = encodeBody(f);
  const priv = edPrivateKey(seed);
  const pair = { cert: assemble(f, body, edSign(priv, body)), seed };
  caPrivate.set(pair, priv);
  return pair;
}

export interface SignCertOptions {
  name: string;
  /** CIDR text (`198.19.0.5/32`, `2001:db8::/64`) or parsed prefixes. */
  prefixes?: (string | Prefix)[];
  groups?: string[];
  wgKey: Uint8Array;
  signKey: Uint8Array;
  now: number;
  /** Default DEFAULT_NODE_LIFETIME_MS; notAfter never passes the CA's. */
  lifetimeMs?: number;
  notBefore?: number;
  notAfter?: number;
}

/**
 * Issue a node certificate. The WireGuard key must be a usable X25519 key (`bad_key`); notAfter
 * is clamped to the CA's notAfter.
 */
export function signCert(ca: CaKeyPair, o: SignCertOptions): Certificate {
  const key = caPrivateKey(ca);
  // The identity key's length is checked with the other fields; a joiner proves it holds the key by
  // signing its request (token.ts), an operator vouches for it with `agent cert sign`.
  checkWireGuardKey(o.wgKey);
  const notBefore = o.notBefore ?? o.now;
  const prefixes = (o.prefixes ?? []).map((p) => (typeof p === 'string' ? parsePrefix(p) : p)).sort(comparePrefixes);
  const f: CertFields = {
    version: CERT_VERSION, name: o.name, prefixes: prefixes.filter((p, i) => i === 0 || comparePrefixes(prefixes[i - 1], p) !== 0),
    groups: [...new Set(o.groups ?? [])].sort(), wgKey: new Uint8Array(o.wgKey), signKey: new Uint8Array(o.signKey),
    notBefore, notAfter: Math.min(o.notAfter ?? notBefore + (o.lifetimeMs ?? DEFAULT_NODE_LIFETIME_MS), ca.cert.notAfter),
    issuer: ca.cert.digest, isCa: false,
  };
  checkFields(f, 'invalid_argument');
  const body = encodeBody(f);
  return assemble(f, body, edSign(key, body));
}

/** A CA pair's private KeyObject, checked once against its certificate (building one costs more than a signature). */
const caPrivate = new WeakMap<CaKeyPair, KeyObject>();
export function caPrivateKey(ca: CaKeyPair): KeyObject {
  let k = caPrivate.get(ca);
  if (k) return k;
  if (!ca.cert.isCa) fail('not_a_ca', 'the issuer is not a CA certificate');
  if (!equalBytes(publicOfSeed(ca.seed), ca.cert.signKey)) fail('invalid_argument', 'the CA private key does not belong to the CA certificate');
  caPrivate.set(ca, (k = edPrivateKey(ca.seed)));
  return k;
}

export interface VerifyWarning {
  code: 'ca_expiring';
  ca: string;
  /** ms until the CA's notAfter. */
  remainingMs: number;
}

export interface Verified {
  cert: Certificate;
  ca: Certificate;
  warnings: VerifyWarning[];
}

/** Trusted CAs, each already checked by parseCa, looked up by digest. */
export class TrustedCas {
  private readonly byDigest = new Map<string, Certificate>();
  constructor(cas: Iterable<Uint8Array | Certificate> = []) {
    for (const c of cas) this.add(c);
  }
  add(ca: Uint8Array | Certificate): Certificate {
    const c = parseCa(ca);
    this.byDigest.set(hex(c.digest), c);
    return c;
  }
  remove(digest: Uint8Array): boolean {
    return this.byDigest.delete(hex(digest));
  }
  get(digest: Uint8Array): Certificate | undefined {
    return this.byDigest.get(hex(digest));
  }
  list(): Certificate[] {
    return [...this.byDigest.values()];
  }
  get size(): number {
    return this.byDigest.size;
  }
}

/**
 * Verify a node certificate against the trusted CAs at time `now` (ms). Throws PkiError:
 * malformed, not_a_node_cert, wrong_issuer, bad_signature, ca_revoked, revoked, ca_expired,
 * not_yet_valid, expired (checked in that order). A trusted CA within 30 days of its notAfter
 * gives a `ca_expiring` warning, not a failure.
 */
export function verifyCert(cert: Uint8Array | Certificate, trusted: TrustedCas | readonly (Uint8Array | Certificate)[], now: number, revocations?: RevocationSet): Verified {
  const c = cert instanceof Uint8Array ? parseCertCached(cert) : cert;
  if (c.isCa) fail('not_a_node_cert', `certificate ${c.name} is a CA, not a node certificate`);
  const trust = trusted instanceof TrustedCas ? trusted : new TrustedCas(trusted);
  const ca = trust.get(c.issuer);
  if (!ca) fail('wrong_issuer', `certificate ${c.name}: its issuer is not a trusted CA`);
  const caKey = keyOf(ca!);
  if (verifiedWith.get(c) !== caKey) {
    if (!edVerify(caKey, c.body, c.sig)) fail('bad_signature', `certificate ${c.name}: signature does not verify`);
    verifiedWith.set(c, caKey);
  }
  if (revocations?.isCaRevoked(ca!.digest)) fail('ca_revoked', `certificate ${c.name}: its CA ${ca!.name} is revoked`);
  if (revocations && (revocations.isRevoked(c.signKey) || revocations.isRevoked(c.wgKey))) fail('revoked', `certificate ${c.name}: a key of it is revoked`);
  if (now < ca!.notBefore || now >= ca!.notAfter) fail('ca_expired', `certificate ${c.name}: CA ${ca!.name} is outside its validity`);
  if (now < c.notBefore) fail('not_yet_valid', `certificate ${c.name} is not valid for ${c.notBefore - now} ms yet`);
  if (now >= c.notAfter) fail('expired', `certificate ${c.name} expired ${now - c.notAfter} ms ago`);
  const warnings: VerifyWarning[] = [];
  if (ca!.notAfter - now < CA_EXPIRY_WARNING_MS) warnings.push({ code: 'ca_expiring', ca: ca!.name, remainingMs: ca!.notAfter - now });
  return { cert: c, ca: ca!, warnings };
}

/** The same checks as verifyCert, as a value: `{ ok: true, … }` or `{ ok: false, code }`. */
export function checkCert(cert: Uint8Array | Certificate, trusted: TrustedCas | readonly (Uint8Array | Certificate)[], now: number, revocations?: RevocationSet): ({ ok: true } & Verified) | { ok: false; code: PkiError['code']; message: string } {
  try {
    return { ok: true, ...verifyCert(cert, trusted, now, revocations) };
  } catch (e) {
    if (e instanceof PkiError) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

/** When a certificate should be renewed: two thirds into its lifetime. */
export function renewAt(cert: CertFields): number {
  return cert.notBefore + Math.floor(((cert.notAfter - cert.notBefore) * 2) / 3);
}

export function shouldRenew(cert: CertFields, now: number): boolean {
  return now >= renewAt(cert);
}

/** A one-line description without key bytes: name, prefixes, groups, validity. */
export function describeCert(c: CertFields): string {
  const iso = (t: number) => new Date(t).toISOString();
  return `${c.isCa ? 'CA' : 'node'} ${c.name} prefixes=[${c.prefixes.map(formatPrefix).join(',')}] groups=[${c.groups.join(',')}] valid ${iso(c.notBefore)} .. ${iso(c.notAfter)}`;
}
