/** Shared fixtures of the mutated-certificate tests: two trusted CAs, a rogue one, a base cert, a revoked key. */
import { expect } from 'vitest';
import fc from 'fast-check';
import { RevocationSet, TrustedCas, checkCert, createRevocation, type Certificate } from '@overlay/pki';
import { Types, encode } from '../src/codec.js';
import { DAY, T0, issue, newCa, nodeKeys } from './helpers.js';

export function mutationSetup() {
  const ca = newCa('ca-main');
  const ca2 = newCa('ca-next');
  const rogue = newCa('ca-rogue');
  const trust = new TrustedCas([ca.cert, ca2.cert]);
  const base = issue(ca, { name: 'db-7', prefixes: ['198.19.0.7/32', '2001:db8::7/128'], groups: ['db', 'ops'] });
  const revoked = issue(ca2, { name: 'gone' });
  const revs = new RevocationSet();
  revs.add(createRevocation(ca2, { kind: 'signKey', key: revoked.keys.signKey, now: T0 }), trust);
  const NOW = T0 + DAY;
  expect(checkCert(base.cert, trust, NOW, revs).ok).toBe(true);
  /** The body fields of `c` as the encoder takes them, with some replaced; wrapped with c's own signature. */
  const tampered = (c: Certificate, change: Record<string, unknown>) => {
    const f = { version: c.version, name: c.name, prefixes: c.prefixes, groups: c.groups, wgKey: c.wgKey, signKey: c.signKey, notBefore: c.notBefore, notAfter: c.notAfter, issuer: c.issuer, isCa: c.isCa, ...change };
    return encode(Types.Certificate, { body: encode(Types.CertBody, f), sig: c.sig });
  };
  return { ca, ca2, rogue, trust, base, revoked, revs, NOW, tampered, keys: nodeKeys() };
}

export type Case = { bytes: Uint8Array; want: string | ((b: Uint8Array) => string) };

/** Run `runs` cases: each refused with its code; every code in `codes` seen over 100 times. */
export function expectAllRefused(arb: fc.Arbitrary<Case>, runs: number, codes: string[], s: ReturnType<typeof mutationSetup>, label: string) {
  const seen: Record<string, number> = {};
  fc.assert(
    fc.property(arb, (m) => {
      const r = checkCert(m.bytes, s.trust, s.NOW, s.revs);
      const want = typeof m.want === 'string' ? m.want : m.want(m.bytes);
      expect(r.ok ? 'ok' : r.code).toBe(want);
      seen[want] = (seen[want] ?? 0) + 1;
    }),
    { numRuns: runs },
  );
  expect(Object.values(seen).reduce((a, b) => a + b, 0)).toBe(runs);
  for (const c of codes) expect(seen[c], c).toBeGreaterThan(100);
  console.log(`${label} refused, by code:`, JSON.stringify(seen));
}
