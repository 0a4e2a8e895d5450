/**
 * 30 000 certificates with fields tampered, signed by the wrong key, out of their time, or for a
 * revoked key: every one refused with the code the mutation calls for (bad_signature for tampered
 * groups and other fields, wrong_issuer, expired, not_yet_valid, revoked).
 */
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { signCert } from '@overlay/pki';
import { DAY, T0 } from './helpers.js';
import { expectAllRefused, mutationSetup, type Case } from './mutation-setup.js';

describe('certificates with tampered fields', () => {
  const s = mutationSetup();
  const { base, keys, NOW } = s;
  // Signed once here (signing per case would double the file's time): certificates from the
  // untrusted CA, and certificates for the revoked identity key.
  const rogue = Array.from({ length: 32 }, (_, i) => signCert(s.rogue, { name: `evil-${i}`, prefixes: ['198.19.0.7/32'], groups: ['ops'], wgKey: keys.wgKey, signKey: keys.signKey, now: T0 }));
  const revoked = Array.from({ length: 32 }, (_, i) => signCert(s.ca2, { name: `gone-${i}`, groups: i % 2 ? ['web'] : [], wgKey: keys.wgKey, signKey: s.revoked.keys.signKey, now: T0 }));
  const group = fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/);
  const arb: fc.Arbitrary<Case> = fc.oneof(
    // Tampered groups: one added, one removed, or the set replaced (kept sorted, so still canonical).
    fc.oneof(
      group.filter((g) => !base.cert.groups.includes(g)).map((g) => [...base.cert.groups, g].sort()),
      fc.constant(['db']),
      fc.uniqueArray(group, { minLength: 0, maxLength: 5 }).map((g) => g.sort()),
    ).filter((g) => g.join() !== base.cert.groups.join()).map((groups): Case => ({ bytes: s.tampered(base.cert, { groups }), want: 'bad_signature' })),
    // Other fields tampered under the original signature.
    fc.constantFrom<Record<string, unknown>>(
      { name: 'db-8' },
      { notAfter: base.cert.notAfter + DAY },
      { notBefore: base.cert.notBefore - DAY },
      { wgKey: keys.wgKey },
      { signKey: keys.signKey },
      { prefixes: [{ addr: Uint8Array.from([198, 19, 0, 0]), bits: 16 }] },
    ).map((change): Case => ({ bytes: s.tampered(base.cert, change), want: 'bad_signature' })),
    // Signed by an untrusted CA: under its own digest (wrong_issuer) or claiming a trusted one (bad_signature).
    fc.nat(rogue.length - 1).chain((i) => fc.constantFrom<Case>({ bytes: s.tampered(rogue[i], { issuer: s.ca.cert.digest }), want: 'bad_signature' }, { bytes: rogue[i].bytes, want: 'wrong_issuer' })),
    // Correctly signed, wrong time: ended at or before now, or starting after now.
    fc.record({ past: fc.boolean(), by: fc.integer({ min: 0, max: 30 * DAY }), len: fc.integer({ min: 1, max: 7 * DAY }), which: fc.boolean() }).map(({ past, by, len, which }): Case => {
      const notBefore = past ? NOW - by - len : NOW + by + 1;
      const c = signCert(which ? s.ca : s.ca2, { name: 'late', groups: ['web'], wgKey: keys.wgKey, signKey: keys.signKey, now: T0, notBefore, notAfter: notBefore + len });
      return { bytes: c.bytes, want: past ? 'expired' : 'not_yet_valid' };
    }),
    // A revoked identity key, whatever else its certificate says.
    fc.nat(revoked.length - 1).map((i): Case => ({ bytes: revoked[i].bytes, want: 'revoked' })),
  );

  it('30 000 mutations: 100 % refused, each with the right code', () => {
    expectAllRefused(arb, 30_000, ['bad_signature', 'wrong_issuer', 'expired', 'not_yet_valid', 'revoked'], s, 'certificates with tampered fields');
    // ~10 s on an idle 2-core machine; the margin is for a shared, loaded one.
  }, 600_000);
});
