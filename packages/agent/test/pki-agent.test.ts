/**
 * Admission by certificate in the simulated cluster (SimCluster, virtual clock and network): who
 * is admitted, what records are taken, what a revocation and an expiry remove, and that a forged
 * or replayed claim cannot evict an admitted member. The netns version is test/pki-agents.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createCa, createRevocation, generateWireGuardKey } from '@overlay/pki';
import { SimCluster } from '../src/simcluster.js';
import { epIp, epMac, NET, pkiCluster, START, type PkiSetup } from './pki-sim.js';

import { encodeMessageField } from '../src/wire.js';

const SEED = 3;
const ip = epIp;
const mac = epMac;
type Setup = PkiSetup;

/** n agents (pki-sim.ts); node `rogue` holds another CA's certificate; `lifetime(i)` is node i's. */
const setup = (n: number, o: { rogue?: number; lifetime?: (i: number) => number | undefined } = {}): Setup => pkiCluster(n, { seed: SEED, ...o });

function publishAll(s: Setup, skip = -1): void {
  for (let i = 0; i < s.c.agents.length; i++) if (i !== skip) s.c.agents[i].publish(NET, { id: `ep-${i}`, mac: mac(i), ipv4: ip(i) });
}

describe('agent admission by certificate (simulated cluster)', () => {
  it('admits certificate holders only: a foreign CA gets no peer, no membership, no records; records outside a certificate\'s prefixes are refused', () => {
    const s = setup(5, { rogue: 4 });
    const { c } = s;
    c.bootstrapAll();
    publishAll(s);
    // Node 3 claims an address its certificate does not cover.
    c.agents[3].publish(NET, { id: 'stolen', mac: new Uint8Array([2, 0, 0, 0, 9, 9]), ipv4: new Uint8Array([198, 19, 0, 1]) });
    c.run(10_000);
    for (let i = 0; i < 4; i++) {
      const a = c.agents[i];
      expect(a.membership.get(SimCluster.nameOf(4)), `node ${i} knows the rogue`).toBeUndefined();
      expect([...s.tunnels[i].set.keys()].sort(), `node ${i} peers`).toEqual(s.wg.slice(0, 4).filter((_, j) => j !== i).sort());
      for (let j = 0; j < 4; j++) expect(a.endpoint('blue', `ep-${j}`)?.owner, `node ${i} has ep-${j}`).toBe(SimCluster.nameOf(j));
      expect(a.endpoint('blue', 'ep-4')).toBeUndefined();
      if (i !== 3) expect(a.endpoint('blue', 'stolen')).toBeUndefined();
      const st = a.status();
      expect(st.drops.member_not_admitted, `node ${i} refusals`).toBeGreaterThan(0);
      expect(st.pki!.counters.refused_wrong_issuer).toBeGreaterThan(0);
      expect(st.pki!.admitted).toBe(4);
      if (i !== 3) expect(st.drops.record_claim_refused).toBeGreaterThan(0);
    }
    // The rogue admits nobody either (its trust is the other CA).
    expect(c.agents[4].status().pki!.admitted).toBe(1);
  });

  it('a replayed alive with another WireGuard key is refused and leaves the member admitted', () => {
    const s = setup(3);
    const { c } = s;
    c.bootstrapAll();
    c.run(3000);
    const victim = c.agents[1].membership.selfAlive();
    const forged = { ...victim, incarnation: victim.incarnation + 5, meta: { ...victim.meta, wgKey: Buffer.from(generateWireGuardKey().publicKey).toString('base64') } };
    c.agents[0].handlePacket(c.addrs[2], encodeAliveFrom(c, 2, forged));
    const a = c.agents[0];
    expect(a.pki!.isAdmitted(SimCluster.nameOf(1))).toBe(true);
    expect(a.membership.get(SimCluster.nameOf(1))!.meta.wgKey).toBe(s.wg[1]);
    expect(a.status().pki!.counters.refused_key_mismatch).toBe(1);
    expect(s.tunnels[0].set.has(s.wg[1])).toBe(true);
  });

  it('a revocation published on one node evicts the member everywhere within 2 s: peer and records gone, its gossip ignored', () => {
    const s = setup(6);
    const { c } = s;
    c.bootstrapAll();
    publishAll(s);
    c.run(10_000);
    for (let i = 0; i < 6; i++) expect(c.agents[i].table.count()).toBe(6);
    const rev = createRevocation(s.ca, { kind: 'wgKey', key: Buffer.from(s.wg[2], 'base64'), now: c.clock.now(), reason: 'test' });
    const t0 = c.clock.now();
    expect(c.agents[0].revoke(rev.bytes).evicted).toEqual([SimCluster.nameOf(2)]);
    const done = () => c.agents.every((a, i) => i === 2 || (!s.tunnels[i].set.has(s.wg[2]) && a.endpoint('blue', 'ep-2') === undefined));
    while (!done() && c.clock.now() - t0 < 10_000) c.run(50);
    const took = c.clock.now() - t0;
    console.log(`sim: revocation applied on every host (peer and records gone) ${took} ms after it was published`);
    expect(took).toBeLessThanOrEqual(2000);
    for (let i = 0; i < 6; i++) {
      if (i === 2) continue;
      const st = c.agents[i].status();
      expect(st.pki!.counters.evicted_revoked, `node ${i}`).toBe(1);
      expect(st.pki!.revocations).toBe(1);
    }
    // Node 2 keeps publishing: nobody takes it.
    c.agents[2].publish(NET, { id: 'ep-2b', mac: mac(9), ipv4: ip(2) });
    c.run(5000);
    for (let i = 0; i < 6; i++) if (i !== 2) expect(c.agents[i].endpoint('blue', 'ep-2b')).toBeUndefined();
    expect(c.agents.filter((a, i) => i !== 2).every((a) => a.status().drops.gossip_not_admitted + a.status().drops.member_not_admitted > 0)).toBe(true);
    // A revocation not signed by the CA is refused.
    const fake = createRevocation(createCa({ name: 'sim-ca', now: START }), { kind: 'wgKey', key: Buffer.from(s.wg[3], 'base64'), now: c.clock.now() });
    expect(() => c.agents[0].revoke(fake.bytes)).toThrow(/trusted CA|wrong_issuer|signature/);
    expect(c.agents[0].pki!.isAdmitted(SimCluster.nameOf(3))).toBe(true);
  });

  it('a certificate that expires is dropped at its notAfter: no peer, no records', () => {
    const s = setup(4, { lifetime: (i) => (i === 1 ? 20_000 : undefined) });
    const { c } = s;
    c.bootstrapAll();
    publishAll(s);
    c.run(5000);
    expect(c.agents[0].endpoint('blue', 'ep-1')).toBeDefined();
    const notAfter = START - 500 + 20_000;
    const gone = () => c.agents.every((a, i) => i === 1 || (!s.tunnels[i].set.has(s.wg[1]) && a.endpoint('blue', 'ep-1') === undefined));
    c.run(notAfter - c.clock.now() - 100);
    expect(gone()).toBe(false);
    while (!gone() && c.clock.now() < notAfter + 20_000) c.run(50);
    console.log(`sim: expired certificate dropped everywhere ${c.clock.now() - notAfter} ms after notAfter`);
    expect(c.clock.now() - notAfter).toBeLessThanOrEqual(10_000);
    for (let i = 0; i < 4; i++) if (i !== 1) expect(c.agents[i].status().pki!.counters.evicted_expired).toBe(1);
    expect(c.agents[0].endpoint('blue', 'ep-2')).toBeDefined();
  });
});

/** One gossip packet from agent `from` carrying `alive` (as a forger holding the cluster key would send). */
function encodeAliveFrom(c: SimCluster, from: number, alive: ReturnType<SimCluster['agents'][0]['membership']['selfAlive']>): Uint8Array {
  // The agent's envelope builder is private: send through the sender agent's own packet path.
  const sent: Uint8Array[] = [];
  const a = c.agents[from] as unknown as { envelopes: { header(): Uint8Array; seal(h: Uint8Array, f: Uint8Array[]): Uint8Array } };
  sent.push(a.envelopes.seal(a.envelopes.header(), [encodeMessageField({ alive })]));
  return sent[0];
}

