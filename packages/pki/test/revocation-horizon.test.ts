/**
 * Revocations where they matter and no longer (docs/pki.md "Revocation", "Join tokens"):
 * - the join signer refuses a request for a revoked identity or WireGuard key (`revoked`), every
 *   request once its own CA is revoked (`ca_revoked`), counts them, and still issues to others;
 *   over bytes and over a real TCP join socket;
 * - a RevocationSet keeps a record until its issuing CA's notAfter (a revoked CA's: no later than
 *   that CA's own), then `prune` drops it; Admission's expiry does the same on an injected clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  Admission, JoinSigner, PkiError, RevocationSet, TrustedCas, createCa, createRevocation, handleJoinRequest, makeJoinRequest, requestJoin, revocationKeepUntil, serveJoin, signCert,
} from '@overlay/pki';
import { DAY, T0, codeOf, newCa, nodeKeys } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('the join signer reads revocations', () => {
  const ca = newCa('signer-ca');
  const join = (s: JoinSigner, k: ReturnType<typeof nodeKeys>, name: string, now = T0) => {
    const r = makeJoinRequest(s.token(), k, { name, prefixes: [], now });
    return codeOf(() => r.finish(handleJoinRequest(s, r.bytes, now), now));
  };

  it('a revoked identity key or WireGuard key is refused (`revoked`), even for a renewal of an issued name; others still join', () => {
    const s = new JoinSigner({ ca });
    const a = nodeKeys();
    const b = nodeKeys();
    const c = nodeKeys();
    expect(join(s, a, 'a')).toBe('ok');
    expect(join(s, b, 'b')).toBe('ok');
    expect(s.revoke(createRevocation(ca, { kind: 'signKey', key: a.signKey, now: T0 }), T0)).toBe(true);
    expect(s.revoke(createRevocation(ca, { kind: 'wgKey', key: b.wgKey, now: T0 }).bytes, T0)).toBe(true);
    expect(join(s, a, 'a', T0 + 1000), 'renewal of a (identity key revoked)').toBe('revoked');
    expect(join(s, b, 'b', T0 + 1000), 'renewal of b (WireGuard key revoked)').toBe('revoked');
    expect(join(s, c, 'c', T0 + 1000), 'an unrevoked joiner').toBe('ok');
    expect(join(s, c, 'c', T0 + 2000), 'and its renewal').toBe('ok');
    expect(s.counts).toEqual({ issued: 4, revoked: 2 });
  });

  it('a revocation of another CA does not verify at the signer; its own CA revoked refuses everyone (`ca_revoked`)', () => {
    const s = new JoinSigner({ ca });
    const other = newCa('other');
    expect(codeOf(() => s.revoke(createRevocation(other, { kind: 'signKey', key: nodeKeys().signKey, now: T0 }), T0))).toBe('wrong_issuer');
    expect(s.revocations.size).toBe(0);
    const k = nodeKeys();
    expect(join(s, k, 'k')).toBe('ok');
    s.revoke(createRevocation(ca, { kind: 'ca', key: ca.cert.digest, now: T0 }), T0);
    expect(join(s, k, 'k', T0 + 1)).toBe('ca_revoked');
    expect(join(s, nodeKeys(), 'fresh', T0 + 1)).toBe('ca_revoked');
    expect(s.counts.ca_revoked).toBe(2);
  });

  it('over a real join socket: the revoked node\'s renewal is refused with `revoked`, an unrevoked node renews', async () => {
    const s = new JoinSigner({ ca, within: ['198.19.0.0/24'] });
    const now = { t: T0 };
    const srv = await serveJoin(s, { host: '127.0.0.1', port: 0, clock: () => now.t });
    cleanups.push(() => srv.close());
    const keys = [nodeKeys(), nodeKeys()];
    const ask = (i: number) => requestJoin({ host: '127.0.0.1', port: srv.address.port, token: s.token(), keys: keys[i], name: `n${i}`, prefixes: [`198.19.0.${i + 1}/32`], clock: () => now.t });
    const first = await Promise.all([ask(0), ask(1)]);
    expect(first.map((g) => g.cert.name)).toEqual(['n0', 'n1']);
    s.revoke(createRevocation(ca, { kind: 'signKey', key: keys[0].signKey, now: now.t }), now.t);
    now.t += DAY;
    const refused = await ask(0).then(() => 'ok', (e: unknown) => (e instanceof PkiError ? e.code : String(e)));
    expect(refused).toBe('revoked');
    const renewed = await ask(1);
    expect(renewed.cert.notBefore).toBe(now.t);
    expect(s.counts).toEqual({ issued: 3, revoked: 1 });
  });
});

describe('revocations leave memory once they no longer matter', () => {
  it('kept until the issuing CA\'s notAfter, dropped at it; a revoked CA\'s record no later than that CA\'s end', () => {
    const ca1 = createCa({ name: 'short', now: T0, lifetimeMs: 10 * DAY });
    const ca2 = createCa({ name: 'long', now: T0, lifetimeMs: 30 * DAY });
    const ca3 = createCa({ name: 'revoked-ca', now: T0, lifetimeMs: 5 * DAY });
    const trusted = new TrustedCas([ca1.cert, ca2.cert, ca3.cert]);
    const set = new RevocationSet();
    const keyA = nodeKeys().signKey;
    const keyB = nodeKeys().wgKey;
    set.add(createRevocation(ca1, { kind: 'signKey', key: keyA, now: T0 }), trusted, T0);
    set.add(createRevocation(ca2, { kind: 'wgKey', key: keyB, now: T0 }), trusted, T0);
    const revCa = createRevocation(ca2, { kind: 'ca', key: ca3.cert.digest, now: T0 });
    set.add(revCa, trusted, T0);
    expect(revocationKeepUntil(revCa, trusted)).toBe(ca3.cert.notAfter);
    expect(set.nextExpiry()).toBe(ca3.cert.notAfter);
    expect(set.prune(ca3.cert.notAfter - 1)).toEqual([]);
    expect(set.isCaRevoked(ca3.cert.digest)).toBe(true);
    expect(set.prune(ca3.cert.notAfter).map((r) => r.kind)).toEqual(['ca']);
    expect(set.isCaRevoked(ca3.cert.digest)).toBe(false);
    expect(set.nextExpiry()).toBe(ca1.cert.notAfter);
    expect(set.prune(ca1.cert.notAfter - 1)).toEqual([]);
    expect(set.isRevoked(keyA)).toBe(true);
    expect(set.prune(ca1.cert.notAfter).length).toBe(1);
    expect(set.isRevoked(keyA)).toBe(false);
    expect(set.isRevoked(keyB)).toBe(true);
    expect(set.prune(ca2.cert.notAfter).length).toBe(1);
    expect(set.size).toBe(0);
    expect(set.nextExpiry()).toBeUndefined();
    // A record that no longer matters is not taken back.
    expect(set.add(createRevocation(ca1, { kind: 'signKey', key: keyA, now: T0 }), trusted, ca1.cert.notAfter)).toBe(false);
    expect(set.size).toBe(0);
  });

  it('the same key revoked by two CAs is kept until the later horizon', () => {
    const ca1 = createCa({ name: 'short', now: T0, lifetimeMs: 10 * DAY });
    const ca2 = createCa({ name: 'long', now: T0, lifetimeMs: 30 * DAY });
    const trusted = new TrustedCas([ca1.cert, ca2.cert]);
    const set = new RevocationSet();
    const key = nodeKeys().signKey;
    expect(set.add(createRevocation(ca1, { kind: 'signKey', key, now: T0 }), trusted, T0)).toBe(true);
    expect(set.add(createRevocation(ca2, { kind: 'signKey', key, now: T0 }), trusted, T0)).toBe(false);
    expect(set.keptUntil('signKey', key)).toBe(ca2.cert.notAfter);
    set.prune(ca1.cert.notAfter);
    expect(set.isRevoked(key)).toBe(true);
    set.prune(ca2.cert.notAfter);
    expect(set.isRevoked(key)).toBe(false);
  });

  it('Admission (injected clock): nextExpiry names the revocation\'s horizon; expire keeps it before and drops it at it', () => {
    const ca = createCa({ name: 'c', now: T0, lifetimeMs: 3 * DAY });
    const trusted = new TrustedCas([ca.cert]);
    let now = T0 + 1000;
    const adm = new Admission({ trusted, clock: () => now });
    const k = nodeKeys();
    const keep = nodeKeys();
    const name = 'n1';
    const cert = signCert(ca, { name, prefixes: [], wgKey: k.wgKey, signKey: k.signKey, now, lifetimeMs: DAY });
    const other = signCert(ca, { name: 'n2', prefixes: [], wgKey: keep.wgKey, signKey: keep.signKey, now, lifetimeMs: 3 * DAY });
    expect(adm.admit({ name, signKey: k.signKey, wgKey: k.wgKey, cert: cert.bytes }).ok).toBe(true);
    expect(adm.admit({ name: 'n2', signKey: keep.signKey, wgKey: keep.wgKey, cert: other.bytes }).ok).toBe(true);
    expect(adm.applyRevocation(createRevocation(ca, { kind: 'signKey', key: k.signKey, now }).bytes)).toEqual([name]);
    expect(adm.revocations.size).toBe(1);
    // The loop a caller runs: one timer at nextExpiry, the clock advancing an hour per tick.
    const dropped: number[] = [];
    while (adm.revocations.size > 0 && now < T0 + 10 * DAY) {
      now += 3_600_000;
      if (now >= adm.nextExpiry()!) {
        const before = adm.revocations.size;
        adm.expire(now);
        if (adm.revocations.size < before) dropped.push(now);
      }
      if (now < ca.cert.notAfter) expect(adm.revocations.isRevoked(k.signKey), 'kept before the CA ends').toBe(true);
    }
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toBeGreaterThanOrEqual(ca.cert.notAfter);
    expect(dropped[0] - ca.cert.notAfter).toBeLessThan(3_600_000);
    expect(adm.counts['revocations.dropped']).toBe(1);
    // Gossip bringing the record back after its horizon changes nothing.
    expect(adm.applyRevocation(createRevocation(ca, { kind: 'signKey', key: k.signKey, now: T0 }).bytes)).toEqual([]);
    expect(adm.revocations.size).toBe(0);
  });
});
