import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import {
  CA_EXPIRY_WARNING_MS, DEFAULT_NODE_LIFETIME_MS, checkWireGuardKey, generateWireGuardKey, wireGuardPublicOf, PkiError, RevocationSet, TrustedCas, checkCert, covers, createRevocation,
  decodePem, encodePem, parseCa, parseCert, renewAt, shouldRenew, signCert, verifyCert,
} from '@overlay/pki';
import { DAY, T0, issue, keyTexts, newCa, nodeKeys } from './helpers.js';

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PkiError);
    return (e as PkiError).code;
  }
  return 'ok';
};

describe('certificates', () => {
  it('a signed certificate verifies, carries its fields, and tweetnacl verifies the node:crypto signature', () => {
    const ca = newCa();
    const { cert, keys } = issue(ca, { name: 'db-1', prefixes: ['2001:db8:1::/64', '198.19.0.20/32'], groups: ['db', 'ops', 'db'] });
    const v = verifyCert(cert.bytes, new TrustedCas([ca.cert.bytes]), T0 + 1);
    expect(v.cert.name).toBe('db-1');
    expect(v.cert.groups).toEqual(['db', 'ops']);
    expect(v.ca.name).toBe('ca-1');
    expect(v.warnings).toEqual([]);
    expect(Buffer.from(v.cert.wgKey)).toEqual(Buffer.from(keys.wgKey));
    expect(Buffer.from(v.cert.issuer)).toEqual(Buffer.from(ca.cert.digest));
    expect(covers(v.cert.prefixes, '198.19.0.20')).toBe(true);
    expect(covers(v.cert.prefixes, '2001:db8:1::7')).toBe(true);
    expect(covers(v.cert.prefixes, '198.19.0.21')).toBe(false);
    expect(covers(v.cert.prefixes, '2001:db8:2::7')).toBe(false);
    // Independent Ed25519 implementation over the same bytes: the CA's self-signature and the node cert.
    expect(nacl.sign.detached.verify(cert.body, cert.sig, ca.cert.signKey)).toBe(true);
    expect(nacl.sign.detached.verify(ca.cert.body, ca.cert.sig, ca.cert.signKey)).toBe(true);
    const flipped = cert.body.slice();
    flipped[flipped.length - 1] ^= 1;
    expect(nacl.sign.detached.verify(flipped, cert.sig, ca.cert.signKey)).toBe(false);
    // And the signing key pair matches tweetnacl's derivation from the same seed.
    expect(Buffer.from(nacl.sign.keyPair.fromSeed(ca.seed).publicKey)).toEqual(Buffer.from(ca.cert.signKey));
  });

  it('encoding is deterministic: the same fields give the same body bytes', () => {
    const ca = newCa();
    const k = nodeKeys();
    const o = { name: 'n', prefixes: ['198.19.1.0/24', '198.19.0.1/32'], groups: ['b', 'a'], wgKey: k.wgKey, signKey: k.signKey, now: T0 };
    const a = signCert(ca, o);
    const b = signCert(ca, { ...o, prefixes: ['198.19.0.1/32', '198.19.1.0/24'], groups: ['a', 'b'] });
    expect(Buffer.from(a.body)).toEqual(Buffer.from(b.body));
    expect(Buffer.from(parseCert(a.bytes).body)).toEqual(Buffer.from(a.body));
  });

  it('each failure has its code', () => {
    const ca = newCa();
    const other = newCa('ca-2');
    const trust = new TrustedCas([ca.cert]);
    const { cert } = issue(ca);
    expect(codeOf(() => verifyCert(cert.bytes, new TrustedCas([other.cert]), T0))).toBe('wrong_issuer');
    expect(codeOf(() => verifyCert(cert.bytes, trust, T0 - 1))).toBe('not_yet_valid');
    expect(codeOf(() => verifyCert(cert.bytes, trust, T0 + DEFAULT_NODE_LIFETIME_MS))).toBe('expired');
    expect(codeOf(() => verifyCert(cert.bytes, trust, T0 + DEFAULT_NODE_LIFETIME_MS - 1))).toBe('ok');
    expect(codeOf(() => verifyCert(ca.cert.bytes, trust, T0))).toBe('not_a_node_cert');
    expect(codeOf(() => verifyCert(cert.bytes.subarray(1), trust, T0))).toBe('malformed');
    expect(codeOf(() => parseCa(cert.bytes))).toBe('not_a_ca');
    // A CA whose own window ended voids its certificates (even ones still inside theirs).
    const short = newCa('short', { lifetimeMs: 2 * DAY });
    const long = signCert(short, { ...issue(short).cert, prefixes: [], now: T0, notAfter: T0 + 10 * DAY });
    expect(long.notAfter).toBe(short.cert.notAfter); // clamped to the CA
    const c2 = issue(short, { lifetimeMs: DAY }).cert;
    expect(codeOf(() => verifyCert(c2.bytes, [short.cert], short.cert.notAfter))).toBe('ca_expired');
    // Bad keys are refused at signing: an all-zero X25519 key gives an all-zero shared secret.
    expect(codeOf(() => issue(ca, { wgKey: new Uint8Array(32) }))).toBe('bad_key');
    expect(codeOf(() => issue(ca, { wgKey: new Uint8Array(31) }))).toBe('malformed');
    expect(codeOf(() => issue(ca, { prefixes: ['198.19.0.1/24'] }))).toBe('invalid_argument');
    expect(codeOf(() => issue(ca, { name: 'a b' }))).toBe('invalid_argument');
  });

  it('two CAs trusted at once (rollover): certificates of both verify; a CA near its end warns', () => {
    const old = newCa('old', { lifetimeMs: 40 * DAY });
    const next = newCa('next');
    const trust = new TrustedCas([old.cert, next.cert]);
    const a = issue(old).cert;
    const b = issue(next).cert;
    expect(verifyCert(a.bytes, trust, T0 + DAY).ca.name).toBe('old');
    expect(verifyCert(b.bytes, trust, T0 + DAY).ca.name).toBe('next');
    expect(verifyCert(a.bytes, trust, T0 + DAY).warnings).toEqual([]);
    const late = issue(old, { now: T0 + 20 * DAY }).cert;
    const w = verifyCert(late.bytes, trust, T0 + 20 * DAY).warnings;
    expect(w).toEqual([{ code: 'ca_expiring', ca: 'old', remainingMs: old.cert.notAfter - (T0 + 20 * DAY) }]);
    expect(w[0].remainingMs).toBeLessThan(CA_EXPIRY_WARNING_MS);
    expect(verifyCert(issue(next, { now: T0 + 20 * DAY }).cert.bytes, trust, T0 + 20 * DAY).warnings).toEqual([]);
    trust.remove(old.cert.digest);
    expect(checkCert(late.bytes, trust, T0 + 20 * DAY)).toMatchObject({ ok: false, code: 'wrong_issuer' });
  });

  it('node certificates last 7 days by default and renew at 2/3 of their lifetime (fake clock)', () => {
    const ca = newCa();
    let now = T0 + 12_345;
    const { cert } = issue(ca, { now });
    expect(cert.notAfter - cert.notBefore).toBe(7 * DAY);
    const at = renewAt(cert);
    expect(at).toBe(cert.notBefore + Math.floor((14 * DAY) / 3));
    const renewed: number[] = [];
    // Tick a fake clock an hour at a time over the whole life: renewal starts exactly at `at`.
    for (now = cert.notBefore; now < cert.notAfter; now += 3_600_000) if (shouldRenew(cert, now)) renewed.push(now);
    expect(renewed[0]).toBeGreaterThanOrEqual(at);
    expect(renewed[0] - at).toBeLessThan(3_600_000);
    expect(shouldRenew(cert, at - 1)).toBe(false);
    expect(shouldRenew(cert, at)).toBe(true);
    const short = issue(ca, { now: T0, lifetimeMs: 30_000 }).cert;
    expect(shouldRenew(short, T0 + 19_999)).toBe(false);
    expect(shouldRenew(short, T0 + 20_000)).toBe(true);
  });

  it('revocation by identity key, by WireGuard key, and of a CA voids what it issued', () => {
    const ca = newCa();
    const ca2 = newCa('ca-2');
    const trust = new TrustedCas([ca.cert, ca2.cert]);
    const x = issue(ca);
    const y = issue(ca);
    const z = issue(ca2);
    const set = new RevocationSet();
    expect(set.add(createRevocation(ca, { kind: 'signKey', key: x.keys.signKey, now: T0 }), trust)).toBe(true);
    expect(set.add(createRevocation(ca, { kind: 'signKey', key: x.keys.signKey, now: T0 }).bytes, trust)).toBe(false);
    expect(set.isRevoked(x.keys.signKey)).toBe(true);
    expect(checkCert(x.cert, trust, T0, set)).toMatchObject({ ok: false, code: 'revoked' });
    expect(checkCert(y.cert, trust, T0, set).ok).toBe(true);
    set.add(createRevocation(ca2, { kind: 'wgKey', key: y.keys.wgKey, now: T0, reason: 'host retired' }), trust);
    expect(checkCert(y.cert, trust, T0, set)).toMatchObject({ ok: false, code: 'revoked' });
    expect(checkCert(z.cert, trust, T0, set).ok).toBe(true);
    set.add(createRevocation(ca, { kind: 'ca', key: ca2.cert.digest, now: T0 }), trust);
    expect(set.isCaRevoked(ca2.cert.digest)).toBe(true);
    expect(checkCert(z.cert, trust, T0, set)).toMatchObject({ ok: false, code: 'ca_revoked' });
    expect(set.size).toBe(3);
    // A record from an untrusted CA is refused and changes nothing.
    const rogue = newCa('rogue');
    expect(codeOf(() => set.add(createRevocation(rogue, { kind: 'signKey', key: z.keys.signKey, now: T0 }), trust))).toBe('wrong_issuer');
    expect(set.isRevoked(z.keys.signKey)).toBe(false);
  });

  it('error messages never contain key bytes', () => {
    const ca = newCa();
    const { cert, keys } = issue(ca);
    const msgs: string[] = [];
    for (const f of [() => verifyCert(cert.bytes, [newCa('x').cert], T0), () => verifyCert(cert.bytes, [ca.cert], T0 + 8 * DAY), () => issue(ca, { wgKey: new Uint8Array(32) })]) {
      try {
        f();
      } catch (e) {
        msgs.push((e as Error).message);
      }
    }
    expect(msgs).toHaveLength(3);
    for (const m of msgs) for (const k of [keys.signKey, keys.wgKey, ca.seed, ca.cert.signKey, ca.cert.digest]) for (const t of keyTexts(k)) expect(m).not.toContain(t);
  });

  it('WireGuard keys: generated pairs agree with tweetnacl\'s X25519; low-order points are refused', () => {
    const w = generateWireGuardKey();
    expect(Buffer.from(nacl.scalarMult.base(w.privateKey))).toEqual(Buffer.from(w.publicKey));
    expect(Buffer.from(wireGuardPublicOf(w.privateKey))).toEqual(Buffer.from(w.publicKey));
    expect(() => checkWireGuardKey(w.publicKey)).not.toThrow();
    // RFC 7748 low-order points (0, 1, and a point of order 8): each gives an all-zero shared secret.
    for (const h of ['00'.repeat(32), '01' + '00'.repeat(31), 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800']) {
      expect(codeOf(() => checkWireGuardKey(Uint8Array.from(Buffer.from(h, 'hex'))))).toBe('bad_key');
    }
  });

  it('PEM files hold several certificates (a trust file during rollover)', () => {
    const a = newCa('a');
    const b = newCa('b');
    const text = encodePem('CERTIFICATE', a.cert.bytes) + encodePem('CERTIFICATE', b.cert.bytes);
    const back = decodePem('CERTIFICATE', text).map((x) => parseCa(x).name);
    expect(back).toEqual(['a', 'b']);
  });
});
