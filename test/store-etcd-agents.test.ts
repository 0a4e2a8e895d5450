/**
 * Real agents in network namespaces with `store: {kind: etcd}` against an etcd-server the test
 * runs in host 1's namespace (its underlay address, a temp data dir removed afterwards): every
 * agent's endpoint reaches etcd under its lease; a record forged with etcdctl under another
 * node's name is dropped (counted) by every agent; a key deleted with `etcdctl del` leaves every
 * other agent's table and dataplane (store-bridge.ts withdraw); an agent killed with SIGKILL has
 * its endpoint key gone from etcd within lease (10 s) + 1 s, and from the other agent's table with it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENDPOINTS, generateSigningKey, signRecord } from '@overlay/agent';
import { Keys, sealSigned } from '@overlay/store';
import { createTestbed, type TestHost, type Testbed } from './lib/testbed.js';
import { AgentCluster } from './lib/agent-cluster.js';

const N = 3;

class EtcdAgents extends AgentCluster {
  constructor(
    hosts: TestHost[],
    private readonly etcdUrl: string,
  ) {
    super(hosts, { profile: 'lan' });
  }
  override config(i: number, endpointIp?: string, seedIndex?: number): string {
    return super.config(i, endpointIp, seedIndex) + ['store:', '  kind: etcd', `  endpoints: ["${this.etcdUrl}"]`, '  prefix: /ovl/', ''].join('\n');
  }
  nameOf(i: number): string {
    return `${this.hosts[i].name.slice(-12)}-a${i}`;
  }
}

type StoreStatus = { store?: { counters: Record<string, number>; drops: Record<string, number> }; counters: { programmed: number }; networks: Record<string, { id: string; deleted: boolean }[]> };
/** The endpoint ids agent status lists as live (the table, not only the dataplane). */
const liveIds = (s: unknown) => ((s as StoreStatus | null)?.networks.blue ?? []).filter((e) => !e.deleted).map((e) => e.id).sort();
// Agents start one after another and join after their store reader listed etcd: agent i found the
// i records already there from owners it did not know yet, kept them and handed them over after
// joining (pending_fed), instead of losing them until their owners write again.

describe('agents with their records in etcd', () => {
  let tb: Testbed;
  let c: EtcdAgents;
  let etcd: ChildProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'overlay-etcd-ns-'));
  const keys = new Keys('ovl');
  let url = '';
  const ctl = (args: string[]) => tb.hosts[0].exec('env', ['ETCDCTL_API=3', 'etcdctl', '--endpoints', url, ...args], { timeoutMs: 10_000 });

  beforeAll(async () => {
    tb = await createTestbed({ hosts: N, prefix: 'ets' });
    const h = tb.hosts[0];
    url = `http://${h.underlay}:2379`;
    const peer = `http://${h.underlay}:2380`;
    etcd = h.spawn('etcd', ['--name', 'e', '--data-dir', join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `e=${peer}`, '--log-level', 'error', '--logger', 'zap'], { stdio: 'ignore' });
    for (let t = 0; ; t++) {
      if ((await h.run('env', ['ETCDCTL_API=3', 'etcdctl', '--endpoints', url, '--dial-timeout', '1s', 'endpoint', 'health'])).code === 0) break;
      if (t > 100) throw new Error('etcd did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    c = new EtcdAgents(tb.hosts, url);
    for (let i = 0; i < N; i++) await c.start(i);
  }, 180_000);
  afterAll(async () => {
    await c?.stopAll();
    etcd?.kill('SIGKILL');
    await tb?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('endpoints in etcd under leases; a forged record is dropped by every agent; an etcd delete withdraws the endpoint at the others; a killed agent’s key goes within lease + 1 s', async () => {
    await c.until((s) => s.every((x) => x !== null && x.counters.programmed === N - 1), 60_000);
    const epKey = (i: number) => keys.endpoint('blue', c.nameOf(i), `ep-${i}`);
    const listed = async () => (await ctl(['get', '--prefix', '--keys-only', keys.prefix('endpoints')])).split('\n').filter((l) => l.length > 0).sort();
    const end = Date.now() + 20_000;
    while ((await listed()).length < N && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(await listed()).toEqual([0, 1, 2].map(epKey).sort());

    // Signed by a key no member has, naming host 1's agent as owner, written with etcdctl.
    const forged = sealSigned(signRecord(ENDPOINTS, { network: 'blue', id: 'ep-forged', owner: c.nameOf(0), version: Date.now() + 1e6, deleted: false }, { vni: 100, mac: Uint8Array.of(2, 0, 0, 0, 9, 9), ipv4: Uint8Array.of(198, 19, 0, 99), ipv6: new Uint8Array(0), vtep: '' }, generateSigningKey()));
    writeFileSync(join(dir, 'forged'), forged);
    // etcdctl reads the value from stdin when none is given: the exact bytes.
    await tb.hosts[0].exec('sh', ['-c', `ETCDCTL_API=3 etcdctl --endpoints ${url} put ${keys.endpoint('blue', c.nameOf(0), 'ep-forged')} < ${join(dir, 'forged')}`], { timeoutMs: 10_000 });
    await c.until((s) => s.every((x) => ((x as unknown as StoreStatus).store?.drops.bad_signature ?? 0) >= 1), 20_000);
    const st = (await c.statuses()) as unknown as StoreStatus[];
    console.log(`store drops per agent: ${st.map((x) => JSON.stringify(x.store!.drops)).join(' ')}`);
    expect(st.every((x) => x.counters.programmed === N - 1)).toBe(true);
    // How many records waited for their owner's membership depends on which arrived first (etcd's
    // watch or the gossip join): a race, so printed, not asserted.
    console.log(`pending records handed over after join: ${st.map((x) => x.store!.counters.pending_fed).join('/')}`);

    // An operator deletes agent 2's endpoint key (agent 2 is alive and keeps it): agents 1 and 3 take
    // it out of their tables and dataplanes; agent 2 still has its own.
    expect(st.map(liveIds)).toEqual([['ep-0', 'ep-1', 'ep-2'], ['ep-0', 'ep-1', 'ep-2'], ['ep-0', 'ep-1', 'ep-2']]);
    await ctl(['del', epKey(1)]);
    await c.until((s) => liveIds(s[0]).join() === 'ep-0,ep-2' && liveIds(s[2]).join() === 'ep-0,ep-2', 10_000);
    const afterDel = (await c.statuses()) as unknown as StoreStatus[];
    expect(afterDel.map(liveIds)).toEqual([['ep-0', 'ep-2'], ['ep-0', 'ep-1', 'ep-2'], ['ep-0', 'ep-2']]);
    expect([afterDel[0].counters.programmed, afterDel[2].counters.programmed]).toEqual([N - 2, N - 2]);
    expect([afterDel[0].store!.counters.withdrawn, afterDel[1].store!.counters.withdrawn, afterDel[2].store!.counters.withdrawn]).toEqual([1, 0, 1]);

    const t0 = Date.now();
    await c.procs[2]!.kill('SIGKILL');
    while ((await listed()).includes(epKey(2)) && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 100));
    const goneMs = Date.now() - t0;
    console.log(`agent killed → its endpoint key gone from etcd after ${goneMs} ms`);
    expect(await listed()).toEqual([epKey(0), keys.endpoint('blue', c.nameOf(0), 'ep-forged')].sort());
    expect(goneMs).toBeLessThanOrEqual(11_000);
    // The lease's delete reaches agent 1's table: ep-2 is withdrawn, not kept as an owner-dead record.
    const tableMs = await c.until((s) => liveIds(s[0]).join() === 'ep-0', 5_000, 100);
    console.log(`… and out of agent 1's table ${tableMs} ms after that`);
    const last = (await c.procs[0]!.status()) as unknown as StoreStatus;
    expect(last.store!.counters.withdrawn).toBe(2);
    expect(last.counters.programmed).toBe(0);
  }, 120_000);
});
