/**
 * Revocations leave the agents' memory once they no longer matter (docs/pki.md "Revocations
 * outlive their publisher"; pki-admission.ts `keepUntil`): SimCluster, virtual clock. Every host
 * trusts a long CA (nodes 0–3) and a short one (60 s; node 4). Node 4's key is revoked by the short
 * CA through node 0: every host holds the revocation until the short CA's notAfter and has dropped
 * it from its RevocationSet (counted `revocations_dropped`) right after, without a restart; the
 * long CA's members stay admitted; the record itself is tombstoned by its owner within one reap
 * pass.
 */
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { createCa, createRevocation, generateWireGuardKey, signCert, TrustedCas } from '@overlay/pki';
import { SimCluster } from '../src/simcluster.js';
import { REVOCATION_NETWORK } from '../src/pki-admission.js';
import { FakeTunnel, NET, simSeed, START } from './pki-sim.js';

const SEED = 13;
const SHORT_MS = 60_000;
/** The agents' reap pass runs every tombstoneReapMs / 10 (1..60 s). */
const REAP_MS = 20_000;

describe('revocations are dropped from memory at their horizon (simulated cluster, virtual clock)', () => {
  it('held on every host until the issuing CA\'s notAfter, dropped right after; members of the other CA stay', () => {
    const long = createCa({ name: 'long-ca', now: START - 1000 });
    const short = createCa({ name: 'short-ca', now: START - 1000, lifetimeMs: SHORT_MS });
    const n = 5;
    const wg = Array.from({ length: n }, () => Buffer.from(generateWireGuardKey().publicKey).toString('base64'));
    const signPub = Array.from({ length: n }, (_, i) => nacl.sign.keyPair.fromSeed(simSeed(i, SEED)).publicKey);
    const c = new SimCluster({
      n, seed: SEED, networks: [NET], extra: { tombstoneReapMs: REAP_MS * 10 },
      agent: (i) => ({
        pki: {
          trusted: new TrustedCas([long.cert, short.cert]),
          cert: signCert(i === 4 ? short : long, { name: SimCluster.nameOf(i), prefixes: [`198.19.0.${i + 1}/32`], wgKey: Buffer.from(wg[i], 'base64'), signKey: signPub[i], now: START - 500 }).bytes,
        },
        wireguard: { publicKey: wg[i], port: 4789 },
        tunnel: new FakeTunnel(),
      }),
    });
    c.bootstrapAll();
    c.run(3000);
    for (const a of c.agents) expect(a.status().pki!.admitted).toBe(n);

    const rev = createRevocation(short, { kind: 'signKey', key: signPub[4], now: c.clock.now() });
    expect(c.agents[0].revoke(rev.bytes).evicted).toEqual([SimCluster.nameOf(4)]);
    const held = (i: number) => c.agents[i].pki!.admission.revocations.isRevoked(signPub[4]);
    const until = short.cert.notAfter;
    expect(c.agents[0].pki!.keepUntil(rev.bytes)).toBe(until);
    // Spread, then held everywhere up to the horizon (checked every 50 ms for the last second).
    c.run(5000);
    for (let i = 0; i < n; i++) expect(held(i), `node ${i} holds it`).toBe(true);
    c.run(until - 1000 - c.clock.now());
    while (c.clock.now() < until - 50) {
      for (let i = 0; i < 4; i++) expect(held(i), `node ${i} still holds it at ${c.clock.now() - until} ms`).toBe(true);
      c.run(50);
    }
    // Dropped by the expiry timer armed at the horizon (it fires 1 ms after it).
    const t0 = c.clock.now();
    while (c.agents.slice(0, 4).some((_, i) => held(i)) && c.clock.now() - t0 < 5000) c.run(10);
    const after = c.clock.now() - until;
    console.log(`revocation dropped on nodes 0-3 ${after} ms after the short CA's notAfter`);
    expect(after).toBeGreaterThanOrEqual(0);
    expect(after).toBeLessThanOrEqual(100);
    for (let i = 0; i < 4; i++) {
      const st = c.agents[i].status().pki!;
      expect(st.revocations, `node ${i} holds no revocation`).toBe(0);
      expect(st.counters.revocations_dropped, `node ${i} counted the drop`).toBe(1);
      expect(st.admitted, `node ${i} keeps the long CA's members`).toBe(4);
    }
    // The record itself: its owner (node 0) tombstones it in the next reap pass; nobody re-adds it.
    c.run(REAP_MS + 5000);
    for (let i = 0; i < 4; i++) {
      const live = [...c.agents[i].table.ofKind(c.agents[i].pki!.revocationKind, REVOCATION_NETWORK)].filter((r) => !r.deleted);
      expect(live, `node ${i}: no live revocation record`).toEqual([]);
      expect(held(i)).toBe(false);
    }
    expect(c.agents[0].status().pki!.counters.revocations_expired).toBe(1);
  });
});
