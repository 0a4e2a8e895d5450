/**
 * The gossip EndpointStore (store-gossip.ts) on an in-process SimCluster: the store conformance
 * suite (writer: node-0's store; observer: node-1's), plus what only gossip does: foreign keys are
 * read-only, a forged value is refused, a dead owner's keys go from the others' views and come
 * back with it, and VIP allocation follows the agent's deterministic rule.
 */
import { describe, expect, it } from 'vitest';
import { Keys, isStoreError, openSealed, sealSigned } from '@overlay/store';
import { type Harness, conformance, readUntil } from '../../store/test/conformance.js';
import { ENDPOINTS, type EndpointData } from '../src/endpoints.js';
import { signRecord } from '../src/records.js';
import { SimCluster } from '../src/simcluster.js';
import { GossipStore, agentRecordCodec, gossipAllocate } from '../src/store-gossip.js';
import { allocateVips } from '../src/services-vip.js';
import { decodeRecordBody } from '../src/wire.js';

const CLUSTER = 'gsp';
const keys = new Keys(CLUSTER);

function cluster(n: number) {
  const stores = Array.from({ length: n }, () => new GossipStore({ cluster: CLUSTER }));
  const c = new SimCluster({ n, seed: 3, networks: [{ name: 'net-a', vni: 7 }], events: (i) => stores[i].events() });
  c.agents.forEach((a, i) => stores[i].attach(a));
  c.bootstrapAll();
  c.run(1000);
  return { c, stores };
}

const data = (i: number, n: number): EndpointData => ({ vni: 7, mac: Uint8Array.of(2, 0, 0, 0, i, n), ipv4: Uint8Array.of(198, 19, i, n), ipv6: new Uint8Array(0), vtep: '' });
const sealed = (owner: string, i: number, n: number, sk: Uint8Array) => sealSigned(signRecord(ENDPOINTS, { network: 'net-a', id: `ep-${i}`, owner, version: 1, deleted: false }, data(i, n), sk));
const content = (v: Uint8Array) => {
  const r = openSealed(v)!;
  const f = decodeRecordBody(r.body).fields.endpoint as { mac: Uint8Array; ipv4: Uint8Array };
  return Buffer.concat([f.mac, f.ipv4]).toString('hex');
};

conformance('gossip', async () => {
  const { c, stores } = cluster(2);
  const self = SimCluster.nameOf(0);
  return {
    store: stores[0],
    observer: stores[1],
    prefix: keys.prefix('endpoints', 'net-a'),
    key: (i) => keys.endpoint('net-a', self, `ep-${i}`),
    value: (i, n) => sealed(self, i, n, c.keys[0]),
    same: (a, b) => content(a) === content(b),
    history: false,
    settle: async () => c.run(500),
    // Membership is the lease: the writer dies, the others declare it dead.
    lapse: async () => c.kill(0),
    leaseTtlMs: 10_000,
    close: async () => {
      for (const s of stores) await s.close();
      for (let i = 0; i < c.agents.length; i++) c.agents[i].stop();
    },
  } satisfies Harness;
});

describe('gossip store', () => {
  it('foreign keys are read-only, values must be this node’s own signed record for that key', async () => {
    const { c, stores } = cluster(2);
    const [s0, s1] = stores;
    const code = async (p: Promise<unknown>) => p.then(() => undefined, (e) => (isStoreError(e) ? e.code : String(e)));
    expect(await code(s0.put(keys.endpoint('net-a', 'node-1', 'ep-1'), sealed('node-1', 1, 1, c.keys[1])))).toBe('STORE_UNSUPPORTED');
    expect(await code(s0.put(keys.node('node-0'), sealed('node-0', 1, 1, c.keys[0])))).toBe('STORE_UNSUPPORTED');
    // Signed by node-1, claiming node-0: refused before anything is published.
    expect(await code(s0.put(keys.endpoint('net-a', 'node-0', 'ep-1'), sealed('node-0', 1, 1, c.keys[1])))).toBe('STORE_BAD_RECORD');
    // A good record for another id than the key's.
    expect(await code(s0.put(keys.endpoint('net-a', 'node-0', 'ep-2'), sealed('node-0', 1, 1, c.keys[0])))).toBe('STORE_BAD_RECORD');
    expect(await code(s0.put(keys.endpoint('net-a', 'node-0', 'ep-1'), new Uint8Array(10)))).toBe('STORE_BAD_RECORD');
    expect((await s0.list(keys.root)).entries).toEqual([]);
    await s0.put(keys.endpoint('net-a', 'node-0', 'ep-1'), sealed('node-0', 1, 1, c.keys[0]));
    c.run(2000);
    const seen = await s1.get(keys.endpoint('net-a', 'node-0', 'ep-1'));
    expect(seen && agentRecordCodec.ownerOf(openSealed(seen.value)!.body)).toBe('node-0');
    for (const s of stores) await s.close();
    c.agents.forEach((a) => a.stop());
  });

  it('a dead owner’s keys leave the others’ views (delete events) and come back when it returns', async () => {
    const { c, stores } = cluster(3);
    for (let i = 0; i < 3; i++) await stores[2].put(keys.endpoint('net-a', 'node-2', `ep-${i}`), sealed('node-2', i, 1, c.keys[2]));
    c.run(3000);
    expect((await stores[0].list(keys.prefix('endpoints'))).entries.length).toBe(3);
    const w = stores[0].watch(keys.prefix('endpoints'));
    c.kill(2);
    const evs = await readUntil(w, (e) => e.filter((x) => x.type === 'delete').length >= 3, 10_000, async () => c.run(500));
    expect(evs.map((e) => e.type)).toEqual(['delete', 'delete', 'delete']);
    expect((await stores[0].list(keys.prefix('endpoints'))).entries).toEqual([]);
    // node-2 restarts (empty state) and publishes again: its keys come back with the new records.
    stores[2] = new GossipStore({ cluster: CLUSTER });
    stores[2].attach(await c.restart(2, 0));
    const back = keys.endpoint('net-a', 'node-2', 'ep-5');
    await stores[2].put(back, sealed('node-2', 5, 1, c.keys[2]));
    // Its old records come back with it for a moment, until it tombstones them (a restarted node
    // re-asserts its own state): in the end node-0 sees exactly the new one.
    let now: string[] = [];
    for (let t = 0; t < 60 && JSON.stringify(now) !== JSON.stringify([back]); t++) {
      c.run(500);
      now = (await stores[0].list(keys.prefix('endpoints'))).entries.map((e) => e.key);
    }
    expect(now).toEqual([back]);
    const after = await readUntil(w, (e) => e.some((x) => x.key === back), 1000);
    expect(after.filter((e) => e.key === back).map((e) => e.type)).toEqual(['put']);
    await w.return!();
    for (const s of stores) await s.close();
    c.agents.forEach((a) => a.stop());
  });

  it('VIP allocation in gossip mode is the agent’s deterministic rule', () => {
    const names = ['web', 'db', 'cache', 'api'];
    const a = gossipAllocate('198.19.0.0/24', names);
    expect(a).toEqual(allocateVips('198.19.0.0/24', [...names].reverse()));
    expect(new Set(a.values()).size).toBe(names.length);
  });
});
