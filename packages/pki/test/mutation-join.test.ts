/**
 * 40 000 mutated join tokens, join requests and revocations, every one refused with the code its
 * mutation calls for (with mutation-cert-bytes and mutation-cert-fields, 30 000 certificates each: the 10^5).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { JoinSigner, PkiError, RevocationSet, TrustedCas, answerJoin, createRevocation, makeJoinRequest, parseRevocation, parseToken } from '@overlay/pki';
import { Types, decode, encode } from '../src/codec.js';
import { validPrefix } from '../src/prefix.js';
import { T0, newCa, nodeKeys } from './helpers.js';

const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (!(e instanceof PkiError)) throw e;
    return e.code;
  }
};
const flip = (b: Uint8Array, at: number, bit: number) => {
  const c = new Uint8Array(b);
  c[at] ^= 1 << bit;
  return c;
};
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

describe('mutated join tokens, join requests and revocations', () => {
  const ca = newCa('join-ca');
  const signer = new JoinSigner({ ca, groups: ['web'], within: ['198.19.0.0/16'] });
  const token = signer.token();
  const t = parseToken(token);
  const keys = nodeKeys();

  it('10 000 mutated tokens: refused as bad_token, wrong_issuer or bad_secret', () => {
    const seen: Record<string, number> = {};
    const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF-OVLxz '.split(''));
    fc.assert(
      fc.property(fc.nat(token.length - 1), alphabet, fc.constantFrom('replace', 'insert', 'delete'), (at, ch, op) => {
        const m = op === 'replace' ? token.slice(0, at) + ch + token.slice(at + 1) : op === 'insert' ? token.slice(0, at) + ch + token.slice(at) : token.slice(0, at) + token.slice(at + 1);
        fc.pre(m.trim() !== token);
        let want: string;
        let got: string;
        const p = (() => {
          try {
            return parseToken(m);
          } catch {
            return null;
          }
        })();
        if (!p) {
          want = 'bad_token';
          got = codeOf(() => makeJoinRequest(m, keys, { name: 'n', now: T0 }));
        } else {
          want = !same(p.caDigest, t.caDigest) ? 'wrong_issuer' : 'bad_secret';
          expect(same(p.secret, t.secret) && same(p.caDigest, t.caDigest)).toBe(false);
          got = answerJoin(signer, makeJoinRequest(m, keys, { name: 'n', now: T0 }).bytes, T0).outcome;
        }
        expect(got).toBe(want);
        seen[want] = (seen[want] ?? 0) + 1;
      }),
      { numRuns: 10_000 },
    );
    for (const c of ['bad_token', 'wrong_issuer', 'bad_secret']) expect(seen[c], c).toBeGreaterThan(100);
    console.log('mutated tokens refused, by code:', JSON.stringify(seen));
  }, 600_000);

  it('15 000 mutated join requests: refused with the code of the part hit; none issues a certificate', () => {
    const base = makeJoinRequest(token, keys, { name: 'web-9', prefixes: ['198.19.0.9/32'], now: T0 }).bytes;
    const n = base.length;
    const baseBody = decode<{ caDigest: Uint8Array }>(Types.JoinRequestBody, decode<{ body: Uint8Array }>(Types.JoinRequest, base, 'r').body, 'b');
    const expected = (at: number, x: Uint8Array) => {
      if (at >= n - 64) return 'bad_signature'; // the identity key's signature
      if (at >= n - 98 && at < n - 66) return 'bad_secret'; // the HMAC proof
      let body: { caDigest: Uint8Array; nonce: Uint8Array; signKey: Uint8Array; wgKey: Uint8Array; version: number; prefixes: { addr: Uint8Array; bits: number }[] };
      try {
        const outer = decode<{ body: Uint8Array; proof: Uint8Array; sig: Uint8Array }>(Types.JoinRequest, x, 'r');
        body = decode(Types.JoinRequestBody, outer.body, 'b');
        if (outer.sig.length !== 64 || body.version !== 1 || body.nonce.length !== 16 || body.signKey.length !== 32 || body.wgKey.length !== 32 || !body.prefixes.every(validPrefix)) return 'malformed';
      } catch {
        return 'malformed';
      }
      return same(body.caDigest, baseBody.caDigest) ? 'bad_secret' : 'wrong_issuer';
    };
    const seen: Record<string, number> = {};
    fc.assert(
      fc.property(fc.nat(n - 1), fc.nat(7), (at, bit) => {
        const x = flip(base, at, bit);
        const want = expected(at, x);
        expect(answerJoin(signer, x, T0).outcome).toBe(want);
        seen[want] = (seen[want] ?? 0) + 1;
      }),
      { numRuns: 15_000 },
    );
    expect(signer.counts.issued).toBe(0);
    for (const c of ['malformed', 'bad_secret', 'bad_signature']) expect(seen[c], c).toBeGreaterThan(100);
    console.log('mutated join requests refused, by code:', JSON.stringify(seen));
    // The unmutated request is accepted once, so the refusals above were the mutations' doing.
    expect(answerJoin(signer, base, T0).outcome).toBe('issued');
  }, 600_000);

  it('15 000 mutated revocations: refused, and the set never grows', () => {
    const rogue = newCa('rogue');
    const trust = new TrustedCas([ca.cert]);
    const victim = nodeKeys();
    const base = createRevocation(ca, { kind: 'signKey', key: victim.signKey, now: T0, reason: 'test' });
    const n = base.bytes.length;
    expect(parseRevocation(base.bytes, trust).kind).toBe('signKey');
    const outer = decode<{ body: Uint8Array; sig: Uint8Array }>(Types.Revocation, base.bytes, 'r');
    const body = decode<Record<string, unknown>>(Types.RevocationBody, outer.body, 'b');
    const set = new RevocationSet();
    type Case = { bytes: Uint8Array; want: string };
    const cases: fc.Arbitrary<Case> = fc.oneof(
      fc.record({ at: fc.nat(n - 1), bit: fc.nat(7) }).map(({ at, bit }): Case => {
        const x = flip(base.bytes, at, bit);
        if (at >= n - 64) return { bytes: x, want: 'bad_signature' };
        let want = 'bad_signature';
        try {
          const o = decode<{ body: Uint8Array; sig: Uint8Array }>(Types.Revocation, x, 'r');
          const b = decode<{ version: number; kind: number; key: Uint8Array; issuer: Uint8Array; reason: string }>(Types.RevocationBody, o.body, 'b');
          if (o.sig.length !== 64 || b.version !== 1 || ![1, 2, 3].includes(b.kind) || b.key.length !== 32 || b.issuer.length !== 32) want = 'malformed';
          else if (!same(b.issuer, ca.cert.digest)) want = 'wrong_issuer';
        } catch {
          want = 'malformed';
        }
        return { bytes: x, want };
      }),
      // Another key, kind or time under the original signature.
      fc.constantFrom<Record<string, unknown>>({ key: nodeKeys().signKey }, { kind: 2 }, { kind: 3 }, { time: T0 + 1 }, { reason: 'other' }).map((ch): Case => ({
        bytes: encode(Types.Revocation, { body: encode(Types.RevocationBody, { ...body, ...ch }), sig: outer.sig }),
        want: 'bad_signature',
      })),
      // Signed by an untrusted CA, under its own name or the trusted one's.
      fc.boolean().map((claim): Case => {
        const r = createRevocation(rogue, { kind: 'signKey', key: victim.signKey, now: T0 });
        if (!claim) return { bytes: r.bytes, want: 'wrong_issuer' };
        const o = decode<{ body: Uint8Array; sig: Uint8Array }>(Types.Revocation, r.bytes, 'r');
        const b = decode<Record<string, unknown>>(Types.RevocationBody, o.body, 'b');
        return { bytes: encode(Types.Revocation, { body: encode(Types.RevocationBody, { ...b, issuer: ca.cert.digest }), sig: o.sig }), want: 'bad_signature' };
      }),
    );
    const seen: Record<string, number> = {};
    fc.assert(
      fc.property(cases, (c) => {
        expect(codeOf(() => set.add(c.bytes, trust))).toBe(c.want);
        seen[c.want] = (seen[c.want] ?? 0) + 1;
      }),
      { numRuns: 15_000 },
    );
    expect(set.size).toBe(0);
    expect(set.isRevoked(victim.signKey)).toBe(false);
    for (const c of ['malformed', 'bad_signature', 'wrong_issuer']) expect(seen[c], c).toBeGreaterThan(100);
    console.log('mutated revocations refused, by code:', JSON.stringify(seen));
    expect(set.add(base.bytes, trust)).toBe(true);
    expect(set.isRevoked(victim.signKey)).toBe(true);
  }, 600_000);
});
