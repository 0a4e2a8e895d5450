/**
 * Admission of cluster members by certificate, for the agent to call (docs/pki.md, "Plan"): a
 * member is admitted when its certificate verifies against the trusted CAs and is for the keys and
 * name the member announces; an address claim is accepted only from the member whose certificate
 * covers it. A revocation evicts the members it names at once (found through an index by key and
 * by issuer, not a scan), and `expire` evicts members whose certificate or CA has ended and drops
 * revocations that no longer matter (RevocationSet.prune); the caller arms one timer at
 * `nextExpiry()`.
 */
import { checkCert, type Certificate, type TrustedCas, type VerifyWarning } from './cert.js';
import type { PkiErrorCode } from './errors.js';
import { equalBytes, hex } from './keys.js';
import { covers } from './prefix.js';
import { parseRevocation, RevocationSet } from './revocation.js';

export interface MemberClaim {
  name: string;
  /** The Ed25519 key the member signs its records with. */
  signKey: Uint8Array;
  /** The WireGuard public key the member announces for tunnels. */
  wgKey: Uint8Array;
  /** Its certificate bytes; absent: not admitted (`no_cert`). */
  cert?: Uint8Array;
}

export type AdmissionRefusal = PkiErrorCode | 'no_cert' | 'key_mismatch' | 'name_mismatch';

export class Admission {
  readonly trusted: TrustedCas;
  readonly revocations: RevocationSet;
  private readonly clock: () => number;
  private readonly members = new Map<string, Certificate>();
  private readonly byKey = new Map<string, string>();
  private readonly byIssuer = new Map<string, Set<string>>();
  /** Refusals by reason, and evictions by cause. */
  readonly counts: Record<string, number> = {};

  constructor(o: { trusted: TrustedCas; revocations?: RevocationSet; clock: () => number }) {
    this.trusted = o.trusted;
    this.revocations = o.revocations ?? new RevocationSet();
    this.clock = o.clock;
  }

  private count(k: string): void {
    this.counts[k] = (this.counts[k] ?? 0) + 1;
  }

  /** Admit (or re-admit with a renewed certificate) a member; a refusal also forgets it. */
  admit(m: MemberClaim): { ok: true; cert: Certificate; warnings: VerifyWarning[] } | { ok: false; code: AdmissionRefusal } {
    const refuse = (code: AdmissionRefusal) => {
      this.forget(m.name);
      this.count(`refused.${code}`);
      return { ok: false as const, code };
    };
    if (!m.cert) return refuse('no_cert');
    const r = checkCert(m.cert, this.trusted, this.clock(), this.revocations);
    if (!r.ok) return refuse(r.code);
    if (r.cert.name !== m.name) return refuse('name_mismatch');
    if (!equalBytes(r.cert.signKey, m.signKey) || !equalBytes(r.cert.wgKey, m.wgKey)) return refuse('key_mismatch');
    this.forget(m.name);
    this.members.set(m.name, r.cert);
    this.byKey.set(hex(r.cert.signKey), m.name);
    this.byKey.set(hex(r.cert.wgKey), m.name);
    const iss = hex(r.cert.issuer);
    let set = this.byIssuer.get(iss);
    if (!set) this.byIssuer.set(iss, (set = new Set()));
    set.add(m.name);
    return { ok: true, cert: r.cert, warnings: r.warnings };
  }

  forget(name: string): boolean {
    const c = this.members.get(name);
    if (!c) return false;
    this.members.delete(name);
    for (const k of [c.signKey, c.wgKey]) if (this.byKey.get(hex(k)) === name) this.byKey.delete(hex(k));
    this.byIssuer.get(hex(c.issuer))?.delete(name);
    return true;
  }

  isAdmitted(name: string): boolean {
    return this.members.has(name);
  }

  certOf(name: string): Certificate | undefined {
    return this.members.get(name);
  }

  get size(): number {
    return this.members.size;
  }

  /** Admitted members per issuing CA (hex digest → count), for status during a rollover. */
  issuerCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [iss, names] of this.byIssuer) if (names.size > 0) out.set(iss, names.size);
    return out;
  }

  /** Whether `name` is admitted and its certificate covers `addr` (an endpoint or service address). */
  mayClaim(name: string, addr: string | Uint8Array): boolean {
    const c = this.members.get(name);
    return !!c && covers(c.prefixes, addr);
  }

  /**
   * Verify and apply a revocation (bytes as gossiped). Returns the admitted members it evicts
   * (empty when it was known already); throws PkiError when it does not verify.
   */
  applyRevocation(bytes: Uint8Array): string[] {
    const r = parseRevocation(bytes, this.trusted);
    if (!this.revocations.add(r, this.trusted, this.clock())) return [];
    const gone = r.kind === 'ca' ? [...(this.byIssuer.get(hex(r.key)) ?? [])] : [this.byKey.get(hex(r.key))].filter((n): n is string => n !== undefined);
    for (const n of gone) {
      this.forget(n);
      this.count('evicted.revoked');
    }
    return gone;
  }

  /**
   * Evict members whose certificate (or its CA) has ended by `now`, and drop the revocations that
   * no longer matter (counted `revocations.dropped`); returns the members evicted.
   */
  expire(now = this.clock()): string[] {
    const dropped = this.revocations.prune(now).length;
    if (dropped) this.counts['revocations.dropped'] = (this.counts['revocations.dropped'] ?? 0) + dropped;
    const gone: string[] = [];
    for (const [name, c] of this.members) {
      const ca = this.trusted.get(c.issuer);
      if (now >= c.notAfter || !ca || now >= ca.notAfter) gone.push(name);
    }
    for (const n of gone) {
      this.forget(n);
      this.count('evicted.expired');
    }
    return gone;
  }

  /**
   * The earliest time an admitted member's certificate or CA ends, or a revocation stops mattering
   * (for one timer), or undefined.
   */
  nextExpiry(): number | undefined {
    let t = this.revocations.nextExpiry();
    for (const c of this.members.values()) {
      const end = Math.min(c.notAfter, this.trusted.get(c.issuer)?.notAfter ?? 0);
      if (t === undefined || end < t) t = end;
    }
    return t;
  }
}
