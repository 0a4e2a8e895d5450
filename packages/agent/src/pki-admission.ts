/**
 * Admission by certificate, the agent's side (issue 13; docs/pki.md "Agent wiring"). Only with
 * `pki:` in the config; without it the agent admits every cluster-key holder as before.
 *
 * - Members: a member's meta carries its certificate; on alive/join/merge `acceptMeta` admits it
 *   through @overlay/pki's `Admission` (CA signature, validity, revocations, and the certificate
 *   being for the member's name, record-signing key and WireGuard key). A refused member is not
 *   added or updated (counted `member_not_admitted`, and by code in PKI_EVENTS), so it gets no
 *   tunnel peer; its gossip is ignored (`senderAdmitted`).
 * - Records: `checkRecord` (called by the record table after the signature verified) accepts an
 *   endpoint or service record only from an admitted owner whose certificate covers each of its
 *   addresses (`record_not_admitted`, `record_claim_refused`).
 * - Revocations: record kind 3 (network "pki") carries a CA-signed Revocation; a record whose
 *   revocation does not verify is refused (`record_revocation_invalid`). Applying one evicts the
 *   members it names at once: `evict` removes their tunnel peers and withdraws their records.
 * - Expiry: one timer at the earliest notAfter of an admitted certificate (or its CA), or the
 *   earliest `keepUntil` of a revocation held; members whose certificate ended are evicted the
 *   same way, and revocations past their horizon leave memory (`revocations_dropped`).
 *
 * Single-threaded; owned by one agent.
 */
import { Admission, checkCert, parseRevocation, revocationKeepUntil, type Certificate, type TrustedCas } from '@overlay/pki';
import { createHash } from 'node:crypto';
import { CounterSet } from '@overlay/dataplane';
import type { Clock, TimerHandle } from './env.js';
import type { AgentDrops } from './counters.js';
import type { RecordKind, SignedRecord } from './records.js';
import { ENDPOINT_KIND } from './endpoints.js';
import { SERVICE_KIND } from './services.js';
import { fieldOf, type NodeMeta } from './wire.js';

export const REVOCATION_KIND = 3;
/** The network name revocation records are filed under. */
export const REVOCATION_NETWORK = 'pki';
const MAX_REVOCATION_BYTES = 16 * 1024;
/** A timer is never armed further out than this (setTimeout's range; a CA's end is months away). */
const MAX_TIMER_MS = 86_400_000;

/** What admission did, by code: refusals (PkiErrorCode or admission's own), evictions, revocations. */
export const PKI_EVENTS = [
  'admitted',
  'refused_no_cert',
  'refused_key_mismatch',
  'refused_name_mismatch',
  'refused_malformed',
  'refused_not_a_node_cert',
  'refused_wrong_issuer',
  'refused_bad_signature',
  'refused_ca_revoked',
  'refused_revoked',
  'refused_ca_expired',
  'refused_not_yet_valid',
  'refused_expired',
  'refused_other',
  'revocations_applied',
  'revocations_invalid',
  'evicted_revoked',
  'evicted_expired',
  'self_evicted',
  'renewed',
  'renew_failures',
  'trust_reloaded',
  'revocations_adopted',
  'revocations_expired',
  'revocations_dropped',
] as const;
export type PkiEvent = (typeof PKI_EVENTS)[number];

export interface RevocationData {
  revocation: Uint8Array;
}

export type RecordRefusal = 'not_admitted' | 'claim_refused' | 'revocation_invalid';

/** What the agent passes to enable admission by certificate. */
export interface PkiOptions {
  trusted: TrustedCas;
  /** This node's certificate bytes (advertised in our meta). */
  cert: Uint8Array;
}

export interface AgentAdmissionDeps extends PkiOptions {
  self: string;
  clock: Clock;
  drops: AgentDrops;
  /** Members evicted by a revocation or expiry (never ourselves): drop their peers and records. */
  evict(names: string[], cause: 'revoked' | 'expired'): void;
}

/** Revocation record id: the kind's letter and the key in base64url (≤ 45 characters). */
export function revocationId(kind: string, key: Uint8Array): string {
  return `${kind === 'ca' ? 'c' : kind === 'wgKey' ? 'w' : 's'}:${Buffer.from(key).toString('base64url')}`;
}

/** How many members adopt an orphaned revocation at once (view differences aside). */
export const ADOPTERS = 2;

/**
 * Whether `self` is one of the ADOPTERS members whose rendezvous hash with the revocation id is
 * lowest among `alive` (every host computes the same from the same membership view).
 */
export function isAdopter(id: string, self: string, alive: readonly string[]): boolean {
  const score = (n: string) => createHash('sha256').update(id).update('\u0000').update(n).digest().readUInt32BE(0);
  const mine = score(self);
  let lower = 0;
  for (const n of alive) if (n !== self && (score(n) < mine || (score(n) === mine && n < self)) && ++lower >= ADOPTERS) return false;
  return true;
}

export class AgentAdmission {
  readonly admission: Admission;
  readonly counters = new CounterSet(PKI_EVENTS);
  /** The record kind carrying revocations (registered with the table when pki is on). */
  readonly revocationKind: RecordKind<RevocationData>;
  private readonly certs = new Map<string, Uint8Array>();
  private timer: TimerHandle | null = null;
  private timerAt = Infinity;
  private stopped = false;

  constructor(private readonly d: AgentAdmissionDeps) {
    this.admission = new Admission({ trusted: d.trusted, clock: () => d.clock.now() });
    this.revocationKind = {
      code: REVOCATION_KIND,
      field: 'revocation',
      decode: (f) => {
        const b = fieldOf.bytes(f.revocation);
        return b.length > 0 && b.length <= MAX_REVOCATION_BYTES ? { revocation: b } : null;
      },
      reconcile: (_key, rec) => {
        if (rec && !rec.deleted && rec.data) this.applyRevocation(rec.data.revocation);
      },
      // A restarted publisher or adopter that finds its revocation again re-signs it, not a tombstone.
      keepOwn: (rec) => !!rec.data && d.clock.now() < this.keepUntil(rec.data.revocation),
    };
  }

  /** Admit ourselves (status and address checks of our own records); false: our certificate is refused. */
  admitSelf(meta: NodeMeta): { ok: true } | { ok: false; code: string } {
    const r = this.admit(this.d.self, meta);
    return r === true ? { ok: true } : { ok: false, code: r };
  }

  /**
   * Our renewed (or re-issued) certificate: checked first (it verifies now and is for our name and
   * keys), then admitted; a refused one leaves the current one in place. Returns the code refused.
   */
  renewSelf(meta: NodeMeta): { ok: true; cert: Certificate } | { ok: false; code: string } {
    const r = checkCert(meta.cert ?? new Uint8Array(0), this.d.trusted, this.d.clock.now(), this.admission.revocations);
    if (!r.ok) return { ok: false, code: r.code };
    if (r.cert.name !== this.d.self) return { ok: false, code: 'name_mismatch' };
    if (Buffer.compare(r.cert.signKey, meta.signKey) !== 0 || Buffer.compare(r.cert.wgKey, Buffer.from(meta.wgKey, 'base64')) !== 0) return { ok: false, code: 'key_mismatch' };
    const a = this.admit(this.d.self, meta);
    return a === true ? { ok: true, cert: r.cert } : { ok: false, code: a };
  }

  /**
   * The trust file changed (a CA rollover step): trust exactly `cas` (already parsed by parseCa).
   * Members whose CA is no longer trusted are evicted as at expiry. Returns the members evicted.
   */
  setTrusted(cas: readonly Certificate[]): string[] {
    const t = this.d.trusted;
    const keep = new Set(cas.map((c) => Buffer.from(c.digest).toString('hex')));
    for (const c of t.list()) if (!keep.has(Buffer.from(c.digest).toString('hex'))) t.remove(c.digest);
    for (const c of cas) if (!t.get(c.digest)) t.add(c);
    this.counters.add(this.counters.at.trust_reloaded);
    const gone = this.expireNow();
    if (gone.length) this.evicted(gone, 'expired');
    return gone;
  }

  /**
   * Until when a revocation record is kept and adopted (docs/pki.md "Revocations outlive their
   * publisher"): the issuing CA's notAfter, since every certificate that CA signs ends by then
   * (signCert clamps) and a revoked key could be issued a fresh certificate until then; for a
   * revoked CA, also no later than that CA's own end when it is trusted. 0 when the issuer is not
   * trusted (any more) or the bytes do not parse: nothing to keep.
   */
  keepUntil(bytes: Uint8Array): number {
    try {
      return revocationKeepUntil(parseRevocation(bytes, this.d.trusted), this.d.trusted);
    } catch {
      return 0;
    }
  }

  private admit(name: string, meta: NodeMeta): true | string {
    const r = this.admission.admit({ name, signKey: meta.signKey, wgKey: Buffer.from(meta.wgKey, 'base64'), cert: meta.cert });
    if (!r.ok) {
      this.certs.delete(name);
      const k = `refused_${r.code}` as PkiEvent;
      this.counters.add(this.counters.at[k] ?? this.counters.at.refused_other);
      return r.code;
    }
    this.certs.set(name, meta.cert!);
    this.counters.add(this.counters.at.admitted);
    this.arm(Math.min(r.cert.notAfter, this.d.trusted.get(r.cert.issuer)?.notAfter ?? r.cert.notAfter));
    return true;
  }

  /**
   * Membership's acceptMeta: admit (or keep) a member for this meta. A claim that fails leaves a
   * member admitted under its previous meta as it was (a replayed or forged alive cannot evict it).
   */
  acceptMeta(name: string, meta: NodeMeta, previous: NodeMeta | undefined): boolean {
    const known = this.certs.get(name);
    if (known && meta.cert && Buffer.compare(known, meta.cert) === 0 && previous && previous.wgKey === meta.wgKey && Buffer.compare(previous.signKey, meta.signKey) === 0 && this.admission.isAdmitted(name)) return true;
    if (this.admit(name, meta) === true) return true;
    this.d.drops.add(this.d.drops.at.member_not_admitted);
    if (known && previous?.cert && Buffer.compare(known, previous.cert) === 0) this.admit(name, previous);
    return false;
  }

  isAdmitted(name: string): boolean {
    return this.admission.isAdmitted(name);
  }

  /** Whether gossip from `name` is taken (an admitted member; its own alive is always looked at). */
  senderAdmitted(name: string): boolean {
    return this.admission.isAdmitted(name);
  }

  /** The record table's check after the signature verified: null accepts. */
  checkRecord(r: SignedRecord): RecordRefusal | null {
    if (!this.admission.isAdmitted(r.owner)) return 'not_admitted';
    if (r.deleted || r.data === undefined) return null;
    if (r.kind === ENDPOINT_KIND || r.kind === SERVICE_KIND) {
      const d = r.data as { ipv4: Uint8Array; ipv6: Uint8Array };
      if (d.ipv4.length > 0 && !this.admission.mayClaim(r.owner, d.ipv4)) return 'claim_refused';
      if (d.ipv6.length > 0 && !this.admission.mayClaim(r.owner, d.ipv6)) return 'claim_refused';
    } else if (r.kind === REVOCATION_KIND) {
      try {
        parseRevocation((r.data as RevocationData).revocation, this.d.trusted);
      } catch {
        return 'revocation_invalid';
      }
    }
    return null;
  }

  /**
   * Verify and apply revocation bytes (a stored record, or `agent revoke`); evicts the members it
   * names. Throws PkiError when the bytes do not verify. Returns the members evicted.
   */
  applyRevocation(bytes: Uint8Array): string[] {
    let gone: string[];
    try {
      gone = this.admission.applyRevocation(bytes);
    } catch (e) {
      this.counters.add(this.counters.at.revocations_invalid);
      throw e;
    }
    // The timer also drops revocations from memory once they no longer matter.
    const next = this.admission.nextExpiry();
    if (next !== undefined) this.arm(next);
    if (gone.length === 0) return gone;
    this.counters.add(this.counters.at.revocations_applied);
    this.evicted(gone, 'revoked');
    return gone;
  }

  private evicted(names: string[], cause: 'revoked' | 'expired'): void {
    const others: string[] = [];
    for (const n of names) {
      this.certs.delete(n);
      if (n === this.d.self) this.counters.add(this.counters.at.self_evicted);
      else {
        this.counters.add(cause === 'revoked' ? this.counters.at.evicted_revoked : this.counters.at.evicted_expired);
        others.push(n);
      }
    }
    if (others.length) this.d.evict(others, cause);
  }

  /**
   * The revocations held now (the set admission refuses by, gossip's included) and the CAs they
   * verify under: what a join signer beside this agent reads (pki-signer.ts, `revoke list`).
   */
  held(): { revocations: Uint8Array[]; trusted: Uint8Array[] } {
    return { revocations: this.admission.revocations.list().map((r) => r.bytes), trusted: this.d.trusted.list().map((c) => c.bytes) };
  }

  /** A member reaped from membership: forget its admission. */
  forget(name: string): void {
    this.certs.delete(name);
    this.admission.forget(name);
  }

  private arm(at: number): void {
    if (this.stopped || at >= this.timerAt) return;
    if (this.timer) this.d.clock.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.d.clock.setTimeout(() => this.expireTick(), Math.min(MAX_TIMER_MS, Math.max(1, at - this.d.clock.now() + 1)));
  }

  private expireTick(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.stopped) return;
    const gone = this.expireNow();
    if (gone.length) this.evicted(gone, 'expired');
    const next = this.admission.nextExpiry();
    if (next !== undefined) this.arm(next);
  }

  /** Admission.expire now, counting the revocations it dropped from memory. */
  private expireNow(): string[] {
    const held = this.admission.revocations.size;
    const gone = this.admission.expire(this.d.clock.now());
    if (held > this.admission.revocations.size) this.counters.add(this.counters.at.revocations_dropped, held - this.admission.revocations.size);
    return gone;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.d.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** For `agent status`: members admitted, revocations known, the next expiry, counters. */
  status(): { admitted: number; revocations: number; nextExpiry: number | null; trusted: number; byIssuer: Record<string, number>; selfNotAfter: number | null; counters: Record<string, number> } {
    const byIssuer: Record<string, number> = {};
    for (const [iss, n] of this.admission.issuerCounts()) byIssuer[this.d.trusted.get(Buffer.from(iss, 'hex'))?.name ?? iss.slice(0, 12)] = n;
    return {
      admitted: this.admission.size, revocations: this.admission.revocations.size, nextExpiry: this.admission.nextExpiry() ?? null,
      trusted: this.d.trusted.size, byIssuer, selfNotAfter: this.admission.certOf(this.d.self)?.notAfter ?? null, counters: this.counters.snapshot(),
    };
  }
}
