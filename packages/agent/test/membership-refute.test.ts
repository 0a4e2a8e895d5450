/**
 * Refutation under loss (issue 16): a suspicion or death of ours is answered with our alive
 * straight to whoever sent it, and 5 members at 19 % path loss (10 % each way at both hosts, TCP
 * segments lost alike) declare no one dead in 10 simulated minutes. Deterministic: SimCluster runs
 * the production code on a virtual clock with seeded loss, so each test has one fixed outcome (it
 * cannot flake; a change that breaks the mechanism changes it for good).
 */
import { describe, expect, it } from 'vitest';
import { SimCluster } from '../src/simcluster.js';
import { LAN } from '../src/presets.js';

const net = { name: 'blue', vni: 100 };

describe('refutation under loss', () => {
  it('a suspicion of us is answered with our alive straight to its sender, also when it is stale', () => {
    const c = new SimCluster({ n: 5, seed: 11, config: LAN, networks: [net] });
    c.bootstrapAll();
    c.run(3000);
    const [a, b] = c.agents;
    const inc0 = a.membership.incarnation;
    // b suspects a; nobody's queue carries it, so a hears it only in the message below.
    b.membership.suspect({ name: a.name, incarnation: inc0, from: b.name });
    for (const x of c.agents) x.queue.drop(`n:${a.name}`);
    // The suspicion reaches a from b's address (relayed: `from` names another member).
    a.membership.handle(c.addrs[1], { suspect: { name: a.name, incarnation: inc0, from: c.agents[3].name } });
    expect(a.membership.incarnation).toBe(inc0 + 1);
    expect(a.membership.counters.get('alive_sent_direct')).toBe(1);
    // The refutation's gossip is taken away too: only the direct answer can tell b.
    for (const x of c.agents) x.queue.drop(`n:${a.name}`);
    c.run(20);
    expect(b.membership.stateOf(a.name)).toBe('alive');
    expect(b.membership.get(a.name)?.incarnation).toBe(inc0 + 1);
    // A stale copy (already refuted) from c is answered as well, once per address per 250 ms.
    a.membership.handle(c.addrs[2], { suspect: { name: a.name, incarnation: inc0, from: b.name } });
    a.membership.handle(c.addrs[2], { suspect: { name: a.name, incarnation: inc0, from: b.name } });
    expect(a.membership.incarnation).toBe(inc0 + 1);
    expect(a.membership.counters.get('alive_sent_direct')).toBe(2);
    for (let i = 0; i < 5; i++) c.kill(i);
  });

  it('5 members at 19 % path loss, TCP-like streams, 10 simulated minutes: suspicions refuted, no false death', () => {
    // Seed 4243: before the direct answers this run declared a live member dead (a refutation that
    // gossip's 4 transmissions all lost for one member, until its 6 s suspicion ran out).
    const c = new SimCluster({ n: 5, loss: 0.19, streamLoss: 0.19, seed: 4243, config: LAN, networks: [net] });
    c.bootstrapAll();
    c.run(5000);
    const sum = (k: 'declared_dead' | 'suspicions' | 'refutations' | 'alive_sent_direct') => c.agents.reduce((s, a) => s + a.membership.counters.get(k), 0);
    c.run(600_000);
    // The loss bites (tens of suspicions, each refuted), yet no one is declared dead.
    expect(sum('suspicions')).toBeGreaterThan(20);
    expect(sum('refutations')).toBeGreaterThan(10);
    expect(sum('alive_sent_direct')).toBeGreaterThan(0);
    expect(sum('declared_dead')).toBe(0);
    for (const a of c.agents) for (const m of a.membership.all()) expect(m.state).toBe('alive');
    for (let i = 0; i < 5; i++) c.kill(i);
  });
});
