/**
 * 30 000 certificates with bytes mutated (bit flips, truncation, extension): every one refused with
 * the code the mutation calls for. With mutation-cert-fields (30 000) and mutation-join (40 000):
 * the 10^5.
 */
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { parseCert, type Certificate } from '@overlay/pki';
import { expectAllRefused, mutationSetup, type Case } from './mutation-setup.js';

describe('certificates with mutated bytes', () => {
  const s = mutationSetup();
  const bytes = s.base.cert.bytes;
  const sigStart = bytes.length - 64;
  const arb: fc.Arbitrary<Case> = fc.oneof(
    // A bit flipped anywhere: a flip in the signature is bad_signature; elsewhere the bytes either stop
    // parsing (malformed) or parse to a different issuer (wrong_issuer) or a different body (bad_signature).
    fc.record({ at: fc.nat(bytes.length - 1), bit: fc.nat(7) }).map(({ at, bit }): Case => {
      const b = new Uint8Array(bytes);
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
          return Buffer.compare(p.issuer, s.base.cert.issuer) ? 'wrong_issuer' : 'bad_signature';
        },
      };
    }),
    // Truncated or extended.
    fc.oneof(
      fc.nat(bytes.length - 1).map((n) => bytes.subarray(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((t) => Uint8Array.from([...bytes, ...t])),
    ).map((b): Case => ({ bytes: b, want: 'malformed' })),
  );

  it('30 000 mutations: 100 % refused, each with the right code', () => {
    expectAllRefused(arb, 30_000, ['malformed', 'bad_signature', 'wrong_issuer'], s, 'certificates with mutated bytes');
    // ~10 s on an idle 2-core machine; the margin is for a shared, loaded one.
  }, 600_000);
});
