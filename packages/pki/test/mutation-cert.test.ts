/**
 * 60 000 mutated certificates, every one refused with the code its mutation calls for. With
 * mutation-join.test.ts (tokens, join requests, revocations: 40 000) this is the issue's 10^5.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RevocationSet, TrustedCas, checkCert, createRevocation, parseCert, signCert, type Certificate } from '@overlay/pki';
import { Types, encode } from '../src/codec.js';
import { DAY, T0, issue, newCa, nodeKeys } from './helpers.js';

const RUNS = 60_000;

describe('mutated certificates', () => {
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
  const sigStart = base.cert.bytes.length - 64;
  const keys = nodeKeys();

  type Case = { bytes: Uint8Array; want: string | ((b: Uint8Array) => string) };
  const group = fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/);
  const mutation: fc.Arbitrary<Case> = fc.oneof(
    // A bit flipped anywhere: a flip in the signature is bad_signature; elsewhere the bytes either stop
    // parsing (malformed) or parse to a different issuer (wrong_issuer) or a different body (bad_signature).
    fc.record({ at: fc.nat(base.cert.bytes.length - 1), bit: fc.nat(7) }).map(({ at, bit }): Case => {
      const b = base.cert.bytes.slice();
      b[at] ^= 1 << bit;
      return {
        bytes: b,
        want: (x) => {
          if (at >= sigStart) return 'bad_signature';
          let p: Certificate;
          try {
            p = parseCert(x);
          } catch {
            return 'malformed';
          }
          return Buffer.compare(p.issuer, base.cert.issuer) ? 'wrong_issuer' : 'bad_signature';
        },
      };
    }),
    // Tampered groups: one added, one removed, or the set replaced (kept sorted, so still canonical).
    fc.oneof(
      group.filter((g) => !base.cert.groups.includes(g)).map((g) => [...base.cert.groups, g].sort()),
      fc.constant(['db']),
      fc.uniqueArray(group, { minLength: 0, maxLength: 5 }).map((g) => g.sort()),
    ).filter((g) => g.join() !== base.cert.groups.join()).map((groups): Case => ({ bytes: tampered(base.cert, { groups }), want: 'bad_signature' })),
    // Other fields tampered under the original signature.
    fc.constantFrom<Record<string, unknown>>(
      { name: 'db-8' },
      { notAfter: base.cert.notAfter + DAY },
      { notBefore: base.cert.notBefore - DAY },
      { wgKey: keys.wgKey },
      { signKey: keys.signKey },
      { prefixes: [{ addr: Uint8Array.from([198, 19, 0, 0]), bits: 16 }] },
    ).map((change): Case => ({ bytes: tampered(base.cert, change), want: 'bad_signature' })),
    // Signed by an untrusted CA: under its own digest (wrong_issuer) or claiming a trusted one (bad_signature).
    fc.boolean().map((claim): Case => {
      const c = signCert(rogue, { name: 'evil', prefixes: ['198.19.0.7/32'], groups: ['ops'], wgKey: keys.wgKey, signKey: keys.signKey, now: T0 });
      return claim ? { bytes: tampered(c, { issuer: ca.cert.digest }), want: 'bad_signature' } : { bytes: c.bytes, want: 'wrong_issuer' };
    }),
    // Correctly signed, wrong time: ended at or before now, or starting after now.
    fc.record({ past: fc.boolean(), by: fc.integer({ min: 0, max: 30 * DAY }), len: fc.integer({ min: 1, max: 7 * DAY }), which: fc.boolean() }).map(({ past, by, len, which }): Case => {
      const notBefore = past ? NOW - by - len : NOW + by + 1;
      const c = signCert(which ? ca : ca2, { name: 'late', groups: ['web'], wgKey: keys.wgKey, signKey: keys.signKey, now: T0, notBefore, notAfter: notBefore + len });
      return { bytes: c.bytes, want: past ? 'expired' : 'not_yet_valid' };
    }),
    // A revoked identity key, whatever else its certificate says.
    fc.nat(1000).map((n): Case => ({ bytes: signCert(ca2, { name: `gone-${n}`, wgKey: keys.wgKey, signKey: revoked.keys.signKey, now: T0 }).bytes, want: 'revoked' })),
    // Truncated or extended.
    fc.oneof(
      fc.nat(base.cert.bytes.length - 1).map((n) => base.cert.bytes.subarray(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((t) => Uint8Array.from([...base.cert.bytes, ...t])),
    ).map((bytes): Case => ({ bytes, want: 'malformed' })),
  );

  it(`${RUNS} mutations: 100 % refused, each with the right code`, () => {
    const seen: Record<string, number> = {};
    fc.assert(
      fc.property(mutation, (m) => {
        const r = checkCert(m.bytes, trust, NOW, revs);
        const want = typeof m.want === 'string' ? m.want : m.want(m.bytes);
        expect(r.ok ? 'ok' : r.code).toBe(want);
        seen[want] = (seen[want] ?? 0) + 1;
      }),
      { numRuns: RUNS },
    );
    const total = Object.values(seen).reduce((a, b) => a + b, 0);
    expect(total).toBe(RUNS);
    for (const c of ['malformed', 'bad_signature', 'wrong_issuer', 'expired', 'not_yet_valid', 'revoked']) expect(seen[c], c).toBeGreaterThan(100);
    console.log('mutated certificates refused, by code:', JSON.stringify(seen));
    // ~15 s on an idle 2-core machine; the margin is for a shared, loaded one.
  }, 600_000);
});
