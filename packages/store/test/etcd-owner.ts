/**
 * A store owner as its own process (etcd.test.ts kills it): connects to etcd, holds a lease with
 * LeaseKeeper (LEASE_TTL_MS, KEEPALIVE_MS), writes `count` endpoint keys under it, prints `ready`
 * and keeps the lease alive until killed (or 120 s pass).
 *   node --conditions=source --import tsx etcd-owner.ts <host:port> <cluster> <node> <count>
 */
import { EtcdStore, Keys, LeaseKeeper } from '../src/index.js';

const [endpoint, cluster, node, count] = process.argv.slice(2);
const keys = new Keys(cluster);
const store = await EtcdStore.connect({ hosts: endpoint });
const keeper = new LeaseKeeper(store, {
  onLease: async (l) => {
    for (let i = 0; i < Number(count); i++) await store.put(keys.endpoint('net-a', node, `ep-${i}`), new TextEncoder().encode(`${node} ${i}`), { lease: l.id });
  },
});
await keeper.start();
process.stdout.write('ready\n');
setTimeout(() => process.exit(0), 120_000);
