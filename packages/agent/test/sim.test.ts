import { describe, expect, it } from 'vitest';
import { formatIpAddress, formatMac } from '@overlay/dataplane';
import { LAN, LOCAL, SimCluster, suspicionTimeoutMs, type DataplaneControl, type Vtep } from '@overlay/agent';

const blue = { name: 'blue', vni: 100 };

/** The agent programs binary keys: MAC as a 48-bit number, IPs as 4/16 bytes. */
const mac = (m: string | number | Uint8Array) => { if (typeof m !== 'number') throw new TypeError(`text/bytes MAC ${String(m)}`); return formatMac(m); };
const ip = (a: string | Uint8Array) => { if (!(a instanceof Uint8Array)) throw new TypeError(`text IP ${a}`); return formatIpAddress(a.length === 4 ? 4 : 6, a); };

/** Records every dataplane call and keeps the resulting tables (keys as text for the asserts). */
class RecordingDataplane implements DataplaneControl {
  fdb = new Map<string, string>();
  neigh = new Map<string, string>();
  flood = new Set<string>();
  calls: string[] = [];
  setFdb(vni: number, m: string | number | Uint8Array, v: Vtep) { this.calls.push(`setFdb ${vni} ${mac(m)}`); this.fdb.set(`${vni}/${mac(m)}`, v.address); }
  deleteFdb(vni: number, m: string | number | Uint8Array) { this.calls.push(`deleteFdb ${vni} ${mac(m)}`); this.fdb.delete(`${vni}/${mac(m)}`); }
  setNeighbour(vni: number, a: string | Uint8Array, m: string | number | Uint8Array) { this.neigh.set(`${vni}/${ip(a)}`, mac(m)); }
  deleteNeighbour(vni: number, a: string | Uint8Array) { this.neigh.delete(`${vni}/${ip(a)}`); }
  addFloodVtep(vni: number, v: Vtep) { this.flood.add(`${vni}/${v.address}`); }
  removeFloodVtep(vni: number, v: Vtep) { this.flood.delete(`${vni}/${v.address}`); }
}

function cluster(n: number, loss = 0, config = LAN) {
  const dps = Array.from({ length: n }, () => new RecordingDataplane());
  const c = new SimCluster({ n, loss, seed: 5, config, networks: [blue], dataplane: (i) => dps[i] });
  return { c, dps };
}

const ep = (i: number) => ({ id: `ep-${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, i), ipv4: Uint8Array.of(198, 19, 0, i) });

describe('simulated cluster', () => {
  it('nodes join through one seed and learn every endpoint; dataplanes are programmed', async () => {
    const { c, dps } = cluster(12, 0.01);
    for (const a of c.agents) a.start();
    for (let i = 1; i < 12; i++) {
      const p = c.agents[i].join([c.addrs[0]]);
      c.run(20);
      expect(await p).toBe(1);
    }
    for (let i = 0; i < 12; i++) c.agents[i].publish(blue, ep(i));
    const t = c.clock.runUntilTrue(() => c.agents.every((a) => a.membership.aliveCount() === 12 && a.table.count() === 12), 20_000);
    expect(t).toBeGreaterThanOrEqual(0);
    c.run(2000);
    for (let i = 0; i < 12; i++) {
      expect(dps[i].fdb.size).toBe(11); // every remote endpoint, not its own
      expect(dps[i].fdb.has(`100/02:00:00:00:00:0${(i + 1) % 12 === 0 ? 0 : ((i + 1) % 12).toString(16)}`)).toBe(true);
      expect(dps[i].neigh.get(`100/198.19.0.${(i + 3) % 12}`)).toBeDefined();
      expect(dps[i].flood.size).toBe(11);
    }
    const digests = new Set(c.agents.map((a) => a.table.digest()));
    expect(digests.size).toBe(1);
  });

  it('a killed node is declared dead within the suspicion bound, its endpoints leave every dataplane; restarted, it rejoins with a higher incarnation and its endpoints return', async () => {
    const n = 10;
    const { c, dps } = cluster(n);
    c.bootstrapAll();
    for (let i = 0; i < n; i++) c.agents[i].publish(blue, ep(i));
    c.run(5000);
    expect(dps[0].fdb.has('100/02:00:00:00:00:04')).toBe(true);
    const inc0 = c.agents[4].membership.incarnation;
    c.kill(4);
    // Bound: detection (≤ 2 probe rounds of every member) + the max suspicion timeout + gossip.
    const bound = 2 * n * LAN.probeIntervalMs + LAN.suspicionMaxTimeoutMult * suspicionTimeoutMs(LAN, n) + 2000;
    const took = c.clock.runUntilTrue(() => c.agents.every((a, i) => i === 4 || a.membership.stateOf('node-4') === 'dead'), bound, 50);
    expect(took).toBeGreaterThan(0);
    for (let i = 0; i < n; i++) if (i !== 4) {
      expect(dps[i].fdb.has('100/02:00:00:00:00:04')).toBe(false);
      expect(dps[i].neigh.has('100/198.19.0.4')).toBe(false);
      expect(dps[i].flood.has('100/198.18.0.4')).toBe(false);
    }
    // The record is still in the tables (not a tombstone): it is the owner that decides.
    expect(c.agents[0].endpoint('blue', 'ep-4')!.deleted).toBe(false);
    const oldVersion = c.agents[0].endpoint('blue', 'ep-4')!.version;

    const a4 = await c.restart(4, 0);
    a4.publish(blue, ep(4));
    const back = c.clock.runUntilTrue(() => c.agents.every((a, i) => i === 4 || (a.membership.stateOf('node-4') === 'alive' && a.endpoint('blue', 'ep-4')!.version > oldVersion)), 30_000, 50);
    expect(back).toBeGreaterThanOrEqual(0);
    expect(a4.membership.incarnation).toBeGreaterThan(inc0);
    c.run(1000);
    for (let i = 0; i < n; i++) if (i !== 4) expect(dps[i].fdb.get('100/02:00:00:00:00:04')).toBe('198.18.0.4');
  });

  it('a restarted node that lost an endpoint tombstones its old record with a newer version', async () => {
    const { c } = cluster(5, 0, LOCAL);
    c.bootstrapAll();
    c.agents[2].publish(blue, ep(2));
    c.run(3000);
    c.kill(2);
    c.run(20_000);
    await c.restart(2, 0); // comes back without ep-2
    const t = c.clock.runUntilTrue(() => c.agents.every((a) => a.endpoint('blue', 'ep-2')?.deleted === true), 30_000, 50);
    expect(t).toBeGreaterThanOrEqual(0);
  });

  it('refutes a suspicion about itself and nobody declares it dead', () => {
    const { c } = cluster(8);
    c.bootstrapAll();
    c.run(2000);
    const inc = c.agents[3].membership.incarnation;
    c.agents[0].membership.suspect({ name: 'node-3', incarnation: inc, from: 'node-0' });
    c.run(30_000);
    expect(c.agents[3].membership.incarnation).toBeGreaterThan(inc);
    expect(c.agents[3].membership.counters.get('refutations')).toBeGreaterThan(0);
    expect(c.agents.every((a, i) => i === 3 || a.membership.stateOf('node-3') === 'alive')).toBe(true);
    expect(c.agents.reduce((s, a) => s + a.membership.counters.get('declared_dead'), 0)).toBe(0);
  });

  it('graceful leave is seen as left, not dead', async () => {
    const { c } = cluster(6);
    c.bootstrapAll();
    c.run(2000);
    const live = c.agents[5].membership.aliveCount();
    const p = c.agents[5].leave(1000);
    const again = c.agents[5].leave(1000); // a second caller: self is counted out once
    expect(c.agents[5].membership.aliveCount()).toBe(live - 1);
    c.run(1500);
    await Promise.all([p, again]);
    c.net.detach(c.addrs[5]);
    c.run(5000);
    expect(c.agents.slice(0, 5).every((a) => a.membership.stateOf('node-5') === 'left')).toBe(true);
    expect(c.agents.reduce((s, a) => s + a.membership.counters.get('declared_dead'), 0)).toBe(0);
  });

  it('a leave during a partition reaches every live member on its side, not only random (recently dead) gossip targets', async () => {
    // The 2 | 3 split of the netns cluster test: on side B a member leaves gracefully while A's
    // members are still gossip targets (dead within gossipToTheDead). Random gossip alone missed a
    // live member in some runs; that member then found the leaver gone by probing and held it as
    // dead: 12 of 300 seeds before the leave was also sent straight to live members, 0 of 1000
    // after. Over 200 seeds every live member on its side must see "left" (the old code passes
    // all 200 with probability 0.96^200 ≈ 3 × 10⁻⁴).
    for (let seed = 1; seed <= 200; seed++) {
      const c = new SimCluster({ n: 5, seed, config: LAN, networks: [blue] });
      c.bootstrapAll();
      c.run(2000);
      c.net.partition([['198.18.0.0', '198.18.0.1'], ['198.18.0.2', '198.18.0.3', '198.18.0.4']]);
      // Leave as soon as side B holds both of A's members as dead (as the netns test does).
      const bDone = () => [2, 3, 4].every((i) => [0, 1].every((j) => c.agents[i].membership.stateOf(`node-${j}`) === 'dead'));
      for (let t = 0; t < 600 && !bDone(); t++) c.run(100);
      expect(bDone(), `seed ${seed}`).toBe(true);
      const p = c.agents[3].leave(1000);
      c.run(1500);
      await p;
      c.net.detach(c.addrs[3]);
      c.run(10_000);
      expect([2, 4].map((i) => c.agents[i].membership.stateOf('node-3')), `seed ${seed}`).toEqual(['left', 'left']);
    }
  });

  it("a member held as dead that then sends its own leave is corrected to left (and the correction is passed on)", () => {
    const { c } = cluster(4);
    c.bootstrapAll();
    c.run(2000);
    const m = c.agents[0].membership;
    const inc = c.agents[3].membership.incarnation;
    c.kill(3); // gone for good: it cannot refute, and the others find it gone by probing too
    m.dead({ name: 'node-3', incarnation: inc, from: 'node-1' });
    expect(m.stateOf('node-3')).toBe('dead');
    m.dead({ name: 'node-3', incarnation: inc, from: 'node-3' });
    expect(m.stateOf('node-3')).toBe('left');
    c.run(10_000); // node 0 passes the correction on, whether the others hold node 3 as suspect or dead by then
    expect([1, 2].map((i) => c.agents[i].membership.stateOf('node-3'))).toEqual(['left', 'left']);
  });

  it('an isolated node raises its own local-health score instead of killing others (Lifeguard)', () => {
    const { c } = cluster(6);
    c.bootstrapAll();
    c.run(2000);
    c.net.partition([['198.18.0.0'], ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4', '198.18.0.5']]);
    c.run(4000);
    expect(c.agents[0].membership.awareness).toBeGreaterThan(0);
    expect(c.agents[1].membership.awareness).toBe(0);
  });

  it('partition 2 | 3 and heal: tables converge to the same digest everywhere', () => {
    const { c } = cluster(5, 0, LOCAL);
    c.bootstrapAll();
    for (let i = 0; i < 5; i++) c.agents[i].publish(blue, ep(i));
    c.run(3000);
    c.net.partition([['198.18.0.0', '198.18.0.1'], ['198.18.0.2', '198.18.0.3', '198.18.0.4']]);
    c.run(40_000);
    expect(c.agents[0].membership.stateOf('node-3')).toBe('dead');
    // Changes on both sides while split.
    c.agents[0].publish(blue, { ...ep(0), ipv4: Uint8Array.of(198, 19, 1, 0) });
    c.agents[3].unpublish('blue', 'ep-3');
    c.agents[4].publish(blue, ep(9));
    c.run(5000);
    expect(c.agents[0].table.digest()).not.toBe(c.agents[4].table.digest());
    c.net.heal();
    const t = c.clock.runUntilTrue(() => new Set(c.agents.map((a) => a.table.digest())).size === 1 && c.agents.every((a) => a.membership.aliveCount() === 5), 120_000, 100);
    expect(t).toBeGreaterThanOrEqual(0);
    expect(c.agents[1].endpoint('blue', 'ep-3')!.deleted).toBe(true);
    expect(c.agents[1].endpoint('blue', 'ep-9')).toBeDefined();
  });
});
