import { describe, expect, it } from 'vitest';
import { SimCluster } from '../src/simcluster.js';
import { recordKey } from '../src/records.js';
import { ENDPOINT_KIND } from '../src/endpoints.js';
import { LOCAL } from '../src/presets.js';

const nets = [
  { name: 'blue', vni: 100 },
  { name: 'red', vni: 200 },
  { name: 'green', vni: 300 },
];
const mac = (i: number) => Uint8Array.of(2, 0, 0, 0, i >> 8, i & 255);

describe('per-network gossip', () => {
  it('a host receives only the endpoint records of the networks it joins, by gossip and by push-pull', () => {
    // node i joins nets[i % 3]; node 9 joins blue and red.
    const c = new SimCluster({ n: 10, seed: 61, config: LOCAL, agent: (i) => ({ networks: i === 9 ? [nets[0], nets[1]] : [nets[i % 3]] }) });
    c.bootstrapAll();
    c.run(2000);
    for (let i = 0; i < 9; i++) c.agents[i].publish(nets[i % 3], { id: `ep-${i}`, mac: mac(i) });
    c.run(40_000); // gossip, then at least one push-pull round each (LOCAL: 15 s)
    for (let i = 0; i < 10; i++) {
      const mine = i === 9 ? ['blue', 'red'] : [nets[i % 3].name];
      for (let j = 0; j < 9; j++) {
        const has = c.agents[i].endpoint(nets[j % 3].name, `ep-${j}`) !== undefined;
        expect(has, `node ${i} has ep-${j} (${nets[j % 3].name})`).toBe(mine.includes(nets[j % 3].name));
      }
    }
    expect(c.agents[9].membership.metaOf('node-9')!.networks).toEqual(['blue', 'red']);
  });

  it('an agent gossiping cluster-wide (as before) still takes and spreads every record', () => {
    const c = new SimCluster({ n: 6, seed: 62, config: LOCAL, agent: (i) => (i === 5 ? { networks: [nets[0]], gossipScope: 'cluster' } : { networks: [nets[i % 2]] }) });
    c.bootstrapAll();
    c.run(1000);
    c.agents[1].publish(nets[1], { id: 'r1', mac: mac(1) });
    c.agents[0].publish(nets[0], { id: 'b0', mac: mac(2) });
    const t = c.clock.runUntilTrue(() => c.agents[5].endpoint('red', 'r1') !== undefined && c.agents[5].endpoint('blue', 'b0') !== undefined, 40_000, 50);
    expect(t).toBeGreaterThanOrEqual(0);
    expect(c.agents[5].membership.metaOf('node-5')!.scoped).toBeUndefined();
    expect(c.agents[2].endpoint('red', 'r1')).toBeUndefined(); // blue node
  });

  it('a host joining a network pulls its records at once and then receives its gossip', () => {
    const c = new SimCluster({ n: 6, seed: 65, config: LOCAL, agent: (i) => ({ networks: [nets[i % 2]] }) });
    c.bootstrapAll();
    c.run(1000);
    for (const i of [1, 3]) c.agents[i].publish(nets[1], { id: `red-${i}`, mac: mac(i) });
    c.run(3000);
    const a0 = c.agents[0]; // blue only
    expect(a0.endpoint('red', 'red-1')).toBeUndefined();
    a0.setNetworks([nets[0], nets[1]]);
    const pulled = c.clock.runUntilTrue(() => a0.endpoint('red', 'red-1') !== undefined && a0.endpoint('red', 'red-3') !== undefined, 5000, 10);
    expect(pulled).toBeGreaterThanOrEqual(0);
    expect(pulled).toBeLessThan(500); // one push-pull, not the next anti-entropy round (15 s)
    c.agents[5].publish(nets[1], { id: 'red-5', mac: mac(5) });
    expect(c.clock.runUntilTrue(() => a0.endpoint('red', 'red-5') !== undefined, 5000, 10)).toBeGreaterThanOrEqual(0);
    expect(c.agents[2].membership.metaOf('node-0')!.networks).toEqual(['blue', 'red']);
  });
});

describe('delta push-pull', () => {
  it('a protocol-2 peer (pmax 2, no network list) gets full exchanges and every record', () => {
    const c = new SimCluster({ n: 5, seed: 66, config: LOCAL, agent: (i) => (i === 4 ? { gossipScope: 'cluster', deltaPushPull: false } : { networks: [nets[i % 2]] }) });
    const old = c.agents[4];
    old.membership.setMeta({ ...old.membership.selfAlive().meta, pmax: 2 });
    c.bootstrapAll();
    c.run(1000);
    for (let i = 0; i < 4; i++) {
      c.agents[i].publish(nets[i % 2], { id: `ep-${i}`, mac: mac(i) });
      c.agents[i].queue.drop(`r:${recordKey(ENDPOINT_KIND, nets[i % 2].name, `ep-${i}`)}`); // push-pull only
    }
    const t = c.clock.runUntilTrue(() => [0, 1, 2, 3].every((i) => old.endpoint(nets[i % 2].name, `ep-${i}`) !== undefined), 60_000, 50);
    expect(t).toBeGreaterThanOrEqual(0);
    const stats = (a: unknown) => (a as { pushPulls: { stats: { delta: number; full: number } } }).pushPulls.stats;
    expect(stats(old).delta).toBe(0);
    expect(c.agents.slice(0, 4).reduce((s, a) => s + stats(a).full, 0)).toBeGreaterThan(0); // exchanges with the old peer
    expect(c.agents.slice(0, 4).reduce((s, a) => s + stats(a).delta, 0)).toBeGreaterThan(0); // among new peers
  });

  function quiet(delta: boolean) {
    const c = new SimCluster({ n: 20, seed: 63, config: LOCAL, networks: [nets[0]], extra: { deltaPushPull: delta } });
    c.bootstrapAll();
    for (let i = 0; i < 20; i++) for (let k = 0; k < 5; k++) c.agents[i].publish(nets[0], { id: `ep-${i}-${k}`, mac: mac(i * 8 + k) });
    c.run(30_000);
    const s0 = c.net.streamBytes;
    c.run(90_000);
    return { c, bytes: c.net.streamBytes - s0 };
  }

  it('a quiet cluster exchanges digests, not its state: push-pull bytes drop by 4× or more', () => {
    const full = quiet(false);
    const delta = quiet(true);
    expect(full.c.agents.reduce((s, a) => s + a.table.count(), 0)).toBe(20 * 100);
    expect(new Set(delta.c.agents.map((a) => a.table.digest())).size).toBe(1);
    expect(delta.c.agents.reduce((s, a) => s + (a as unknown as { pushPulls: { stats: { delta: number } } }).pushPulls.stats.delta, 0)).toBeGreaterThan(50);
    expect(delta.bytes * 4).toBeLessThan(full.bytes);
  });

  it('repairs what gossip lost, in both directions', () => {
    const c = new SimCluster({ n: 2, seed: 64, config: LOCAL, networks: [nets[0]] });
    c.bootstrapAll();
    c.run(500);
    // Each side publishes a record whose gossip is lost: only push-pull can carry it.
    for (const [i, id] of [[0, 'a'], [1, 'b']] as const) {
      c.agents[i].publish(nets[0], { id, mac: mac(i) });
      c.agents[i].queue.drop(`r:${recordKey(ENDPOINT_KIND, 'blue', id)}`);
    }
    const [a0, a1] = c.agents;
    const s0 = c.net.streamBytes;
    const ok = c.clock.runUntilTrue(() => a0.endpoint('blue', 'b') !== undefined && a1.endpoint('blue', 'a') !== undefined, 40_000, 50);
    expect(ok).toBeGreaterThanOrEqual(0);
    expect(c.net.streamBytes).toBeGreaterThan(s0);
    const stats = (a: unknown) => (a as { pushPulls: { stats: { delta: number; deltaPush: number; full: number } } }).pushPulls.stats;
    expect(stats(a0).delta + stats(a1).delta).toBeGreaterThan(0);
    expect(stats(a0).deltaPush + stats(a1).deltaPush).toBeGreaterThan(0); // the initiator's own record went in phase 2
    expect(a0.table.digest()).toBe(a1.table.digest());
  });
});

describe('signing with node:crypto', () => {
  it('signs exactly as tweetnacl, with the keys SimCluster derives', async () => {
    const nacl = (await import('tweetnacl')).default;
    const { signBytes } = await import('../src/records.js');
    const c = new SimCluster({ n: 3, seed: 67 });
    for (let i = 0; i < 3; i++) {
      const seed = new Uint8Array(32);
      new DataView(seed.buffer).setUint32(0, i + 1);
      new DataView(seed.buffer).setUint32(4, 67);
      expect(Buffer.from(c.keys[i]).equals(Buffer.from(nacl.sign.keyPair.fromSeed(seed).secretKey))).toBe(true);
      const body = Uint8Array.from({ length: 50 + i }, (_, k) => k * 7 + i);
      expect(Buffer.from(signBytes(body, c.keys[i])).equals(Buffer.from(nacl.sign.detached(body, c.keys[i])))).toBe(true);
    }
  });
});
