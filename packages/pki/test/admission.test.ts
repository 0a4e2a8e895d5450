import { describe, expect, it } from 'vitest';
import { Admission, TrustedCas, createRevocation, signCert } from '@overlay/pki';
import { DAY, T0, issue, newCa, nodeKeys } from './helpers.js';

describe('admission by certificate', () => {
  const ca = newCa('adm-ca');
  const ca2 = newCa('adm-ca-2');
  const claim = (x: ReturnType<typeof issue>, name = x.cert.name) => ({ name, signKey: x.keys.signKey, wgKey: x.keys.wgKey, cert: x.cert.bytes });

  it('admits a member whose certificate is for its name and keys; refuses others with a reason', () => {
    let now = T0;
    const adm = new Admission({ trusted: new TrustedCas([ca.cert]), clock: () => now });
    const a = issue(ca, { name: 'web-1', prefixes: ['198.19.0.1/32', '2001:db8::1/128'] });
    expect(adm.admit(claim(a)).ok).toBe(true);
    expect(adm.mayClaim('web-1', '198.19.0.1')).toBe(true);
    expect(adm.mayClaim('web-1', '2001:db8::1')).toBe(true);
    expect(adm.mayClaim('web-1', '198.19.0.2')).toBe(false);
    expect(adm.mayClaim('db-1', '198.19.0.1')).toBe(false);
    const other = nodeKeys();
    expect(adm.admit({ ...claim(a), wgKey: other.wgKey })).toEqual({ ok: false, code: 'key_mismatch' });
    expect(adm.isAdmitted('web-1')).toBe(false); // a refused re-announcement forgets the member
    expect(adm.admit({ ...claim(a), signKey: other.signKey })).toEqual({ ok: false, code: 'key_mismatch' });
    expect(adm.admit(claim(a, 'web-2'))).toEqual({ ok: false, code: 'name_mismatch' });
    expect(adm.admit({ ...claim(a), cert: undefined })).toEqual({ ok: false, code: 'no_cert' });
    expect(adm.admit(claim(issue(ca2)))).toEqual({ ok: false, code: 'wrong_issuer' });
    now = T0 + 8 * DAY;
    expect(adm.admit(claim(a))).toEqual({ ok: false, code: 'expired' });
    expect(adm.counts).toMatchObject({ 'refused.key_mismatch': 2, 'refused.name_mismatch': 1, 'refused.no_cert': 1, 'refused.wrong_issuer': 1, 'refused.expired': 1 });
  });

  it('a revocation evicts exactly the members it names: by identity key, by WireGuard key, every member of a revoked CA', () => {
    const trust = new TrustedCas([ca.cert, ca2.cert]);
    const adm = new Admission({ trusted: trust, clock: () => T0 });
    const ms = Array.from({ length: 1000 }, (_, i) => issue(i % 2 ? ca2 : ca, { name: `n-${i}` }));
    for (const m of ms) expect(adm.admit(claim(m)).ok).toBe(true);
    const t = performance.now();
    expect(adm.applyRevocation(createRevocation(ca, { kind: 'signKey', key: ms[10].keys.signKey, now: T0 }).bytes)).toEqual(['n-10']);
    const ms1 = performance.now() - t;
    expect(adm.applyRevocation(createRevocation(ca, { kind: 'wgKey', key: ms[12].keys.wgKey, now: T0 }).bytes)).toEqual(['n-12']);
    expect(adm.applyRevocation(createRevocation(ca, { kind: 'wgKey', key: ms[12].keys.wgKey, now: T0 }).bytes)).toEqual([]);
    expect(adm.size).toBe(998);
    // The revoked member cannot come back with the same certificate.
    expect(adm.admit(claim(ms[10]))).toEqual({ ok: false, code: 'revoked' });
    const gone = adm.applyRevocation(createRevocation(ca, { kind: 'ca', key: ca2.cert.digest, now: T0 }).bytes);
    expect(gone.sort()).toEqual(ms.filter((_, i) => i % 2).map((m) => m.cert.name).sort());
    expect(adm.size).toBe(498);
    expect(adm.admit(claim(ms[1]))).toEqual({ ok: false, code: 'ca_revoked' });
    expect(adm.counts['evicted.revoked']).toBe(502);
    console.log(`one revocation applied among 1000 admitted members in ${ms1.toFixed(2)} ms`);
  });

  it('a certificate expiring in 20 s is evicted at its notAfter by a timer armed at nextExpiry (fake clock)', () => {
    let now = T0;
    const adm = new Admission({ trusted: new TrustedCas([ca.cert]), clock: () => now });
    const short = issue(ca, { name: 'short', lifetimeMs: 20_000 });
    const long = issue(ca, { name: 'long' });
    adm.admit(claim(short));
    adm.admit(claim(long));
    expect(adm.nextExpiry()).toBe(T0 + 20_000);
    // The caller's loop: one timer at nextExpiry; the clock advances 250 ms per tick.
    let evictedAt: number | undefined;
    for (; now < T0 + 60_000 && evictedAt === undefined; now += 250) {
      if (now >= adm.nextExpiry()!) {
        const gone = adm.expire();
        if (gone.includes('short')) evictedAt = now;
        expect(gone).toEqual(['short']);
      }
    }
    expect(evictedAt! - (T0 + 20_000)).toBeGreaterThanOrEqual(0);
    expect(evictedAt! - (T0 + 20_000)).toBeLessThanOrEqual(10_000);
    expect(adm.isAdmitted('long')).toBe(true);
    expect(adm.nextExpiry()).toBe(long.cert.notAfter);
    // A renewed certificate re-admits.
    const renewed = signCert(ca, { name: 'short', wgKey: short.keys.wgKey, signKey: short.keys.signKey, now });
    expect(adm.admit({ name: 'short', signKey: short.keys.signKey, wgKey: short.keys.wgKey, cert: renewed.bytes }).ok).toBe(true);
  });
});
