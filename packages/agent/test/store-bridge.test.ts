/**
 * Agents with their records in etcd (store-bridge.ts) next to gossip, against a real etcd-server the
 * test starts: the simulated cluster's clock is not run after bootstrap, so nothing is gossiped and
 * whatever reaches another agent came through etcd. A record forged with etcdctl is ignored by
 * every agent; a graceful stop takes the node's keys out of etcd at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore, Keys, sealSigned } from '@overlay/store';
import { EtcdServer } from '../../store/test/etcd-server.js';
import { ENDPOINTS } from '../src/endpoints.js';
import { signRecord } from '../src/records.js';
import { SimCluster } from '../src/simcluster.js';
import { type StoreBridge, openStoreBridge } from '../src/store-bridge.js';

let srv: EtcdServer;
beforeAll(async () => {
  srv = await EtcdServer.start();
}, 30_000);
afterAll(async () => {
  await srv?.stop();
});

const until = async (pred: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
};

describe('agents through etcd', () => {
  it('an endpoint published by one agent is programmed-ready at the others through etcd alone; a forged one is ignored by all; a graceful stop removes its keys', async () => {
    const keys = new Keys('bridge');
    const net = { name: 'net-a', vni: 7 };
    const bridges: StoreBridge[] = [];
    const c = new SimCluster({ n: 3, seed: 5, networks: [net], events: (i) => ({ onRecord: (r) => bridges[i]?.recordChanged(r) }) });
    c.bootstrapAll(); // every member (and its signing key) known; the clock never runs: no gossip
    try {
      // As the runner does for config `store: {kind: etcd, endpoints, prefix}`.
      for (const a of c.agents) bridges.push((await openStoreBridge({ kind: 'etcd', endpoints: [`http://${srv.endpoint}`], prefix: '/bridge/' }, a))!);
      c.agents[0].publish(net, { id: 'ep-0', mac: Uint8Array.of(2, 0, 0, 0, 0, 1), ipv4: Uint8Array.of(198, 19, 0, 1) });
      expect(await until(() => c.agents.every((a) => a.endpoint('net-a', 'ep-0')?.owner === 'node-0'))).toBe(true);
      expect(bridges[1].counters.received_applied).toBeGreaterThanOrEqual(1);

      // node-2 signs an endpoint claiming node-0 owns it and writes it with etcdctl.
      const forged = sealSigned(signRecord(ENDPOINTS, { network: 'net-a', id: 'ep-x', owner: 'node-0', version: Date.now() + 1e6, deleted: false }, { vni: 7, mac: Uint8Array.of(2, 0, 0, 0, 0, 9), ipv4: Uint8Array.of(198, 19, 0, 9), ipv6: new Uint8Array(0), vtep: '' }, c.keys[2]));
      srv.ctl(['put', keys.endpoint('net-a', 'node-0', 'ep-x')], forged);
      expect(await until(() => bridges.every((b) => b.drops.bad_signature >= 1))).toBe(true);
      expect(c.agents.map((a) => a.endpoint('net-a', 'ep-x'))).toEqual([undefined, undefined, undefined]);

      // The key is held by node-0's lease; a graceful stop revokes it: the key goes at once.
      const raw = await EtcdStore.connect({ hosts: srv.endpoint });
      expect((await raw.get(keys.endpoint('net-a', 'node-0', 'ep-0')))?.lease).toBeDefined();
      await bridges[0].stop(true);
      expect(await raw.get(keys.endpoint('net-a', 'node-0', 'ep-0'))).toBeUndefined();
      await raw.close();
    } finally {
      for (const b of bridges) await b.stop(false);
      for (const a of c.agents) a.stop();
    }
  }, 45_000);
});
