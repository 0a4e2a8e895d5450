import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, type Testbed } from './lib/testbed.js';
import type { NodeStatus } from '../packages/agent/src/status.js';
import { RESOLVER, ServiceCluster, dig, summary, untilAnswers } from './lib/service-cluster.js';

const N = 5;
const WEB = [0, 1, 2];
const TRIALS = 3; // bench/services-freshness.ts runs >= 10

const alive = (s: { members: { name: string; state: string }[] } | null, name: string) => s?.members.find((m) => m.name === name)?.state;

// Five namespace hosts run the real agent; hosts 1-3 run an instance of `web` (health: an exec
// check on a flag file), every host a service of its own. Every host asks the resolver address
// of its network with dig: answered inside its own dataplane from the records gossip brought.
describe('services in the agent: records, health, DNS at the resolver address', () => {
  let tb: Testbed;
  let c: ServiceCluster;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: N, prefix: 'svc' });
    c = new ServiceCluster(tb.hosts, { profile: 'lan', web: WEB });
    await c.start(0);
    for (let i = 1; i < N; i++) await c.start(i);
  }, 120_000);
  afterAll(async () => {
    await c?.stopAll();
    await tb?.destroy();
  });

  it('every host answers web with the 3 healthy instances and each host\'s own service; status shows them', async () => {
    const webIps = WEB.map((i) => c.ip(i)).sort();
    await untilAnswers(tb.hosts, 'web', (a) => JSON.stringify(a.addrs) === JSON.stringify(webIps), Date.now(), 45_000);
    // Each host's own service arrives by its own record: wait for all, then check every answer.
    // Gossip brings it in about a second; if every copy of a broadcast missed a host, the next
    // push-pull (60 s in the LAN profile) is the backstop, so allow one interval and a margin.
    for (let j = 0; j < N; j++) await untilAnswers(tb.hosts, `own-${j}`, (x) => x.addrs.join() === c.ip(j), Date.now(), 75_000);
    for (const h of tb.hosts) for (let j = 0; j < N; j++) expect((await dig(h, `own-${j}`)).addrs).toEqual([c.ip(j)]);
    expect(await dig(tb.hosts[3], 'nothing-here')).toMatchObject({ status: 'NXDOMAIN', addrs: [] });
    const s = (await c.procs[4]!.status()) as NodeStatus;
    if (!s.services) throw new Error('status has no services');
    expect(s.services.resolvers).toEqual({ blue: RESOLVER });
    expect(s.services.instances.filter((x) => x.service === 'web').map((x) => `${x.id}:${x.health}`).sort()).toEqual(['web-0:healthy', 'web-1:healthy', 'web-2:healthy']);
  }, 150_000);

  it('an instance turned unhealthy is gone from every host\'s answers within 7 s, and back when healthy', async () => {
    const took: number[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const i = WEB[t % WEB.length];
      c.setHealthy(i, false);
      took.push(await untilAnswers(tb.hosts, 'web', (a) => a.addrs.length === 2 && !a.addrs.includes(c.ip(i)), Date.now(), 20_000));
      c.setHealthy(i, true);
      await untilAnswers(tb.hosts, 'web', (a) => a.addrs.length === 3, Date.now(), 20_000);
    }
    const s = summary(took);
    console.log(`unhealthy → gone from every answer (${N} hosts, ms): median ${s.median} p90 ${s.p90} max ${s.max} over ${s.n}`);
    expect(s.max).toBeLessThanOrEqual(7_000);
  }, 150_000);

  it('kill -9 of an instance\'s agent: gone from every answer within the kill-detection time + 1 s', async () => {
    const victim = 2;
    const name = (await c.procs[victim]!.status()).name;
    const live = c.procs.map((p, j) => ({ p, j })).filter((x) => x.j !== victim);
    const t0 = Date.now();
    await c.procs[victim]!.kill('SIGKILL');
    c.procs[victim] = null;
    // Each live host is asked for its membership view and its DNS answer in the same round, so
    // the two times of one host differ by at most a round's measurement error, not by polling order.
    const dead = new Map<number, number>();
    const gone = new Map<number, number>();
    while ((dead.size < live.length || gone.size < live.length) && Date.now() - t0 < 60_000) {
      await Promise.all(live.map(async ({ p, j }) => {
        const [st, a] = await Promise.all([p!.status().catch(() => null), dig(tb.hosts[j], 'web')]);
        const now = Date.now() - t0;
        if (!dead.has(j) && alive(st, name) === 'dead') dead.set(j, now);
        if (!gone.has(j) && a.addrs.length === 2 && !a.addrs.includes(c.ip(victim))) gone.set(j, now);
      }));
      await new Promise((r) => setTimeout(r, 50));
    }
    const detected = Math.max(...dead.values());
    const goneAll = Math.max(...gone.values());
    console.log(`kill -9: dead at every agent after ${detected} ms, gone from every answer after ${goneAll} ms; per host gone − dead: ${live.map(({ j }) => gone.get(j)! - dead.get(j)!).join(' ')} ms`);
    expect(dead.size).toBe(live.length);
    expect(gone.size).toBe(live.length);
    for (const { j } of live) expect(gone.get(j)!, `host ${j + 1}`).toBeLessThanOrEqual(dead.get(j)! + 1_000);
    for (const { j } of live) expect((await dig(tb.hosts[j], `own-${victim}`)).status).toBe('NXDOMAIN');
  }, 90_000);
});
