/**
 * Freshness of service answers with real agents in 5 network-namespace hosts (LAN profile), read
 * with dig at the resolver address on every host (test/lib/service-cluster.ts: `web` on hosts
 * 1-3 with an exec health check every 500 ms, 2 retries; a service of its own on every host):
 *
 * - unhealthy: a `web` instance's check starts failing → ms until it is gone from every host's
 *   answer (target ≤ 7 s);
 * - kill -9: an instance's agent is killed → ms until every other agent says dead (kill
 *   detection) and until the instance is gone from every answer (target ≤ detection + 1 s); the
 *   agent is restarted between trials;
 * - partition: hosts {1,2} and {3,4,5} cut apart for `--partition-s` (30) s, then healed → ms
 *   until every host answers every live service (no NXDOMAIN), and the NXDOMAINs still seen
 *   after two push-pull intervals (target 0). No operator action.
 *
 * Prints median/p90/max per measure. Root; `node --conditions=source --import tsx
 * bench/services-freshness.ts [--trials 10] [--partitions 3] [--partition-s 30]`.
 */
import { parseArgs } from 'node:util';
import { LAN } from '@overlay/agent';
import { createTestbed } from '../test/lib/testbed.js';
import { ServiceCluster, dig, summary, untilAnswers } from '../test/lib/service-cluster.js';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '10' }, partitions: { type: 'string', default: '3' }, 'partition-s': { type: 'string', default: '30' } } });
const TRIALS = Number(values.trials);
const PARTITIONS = Number(values.partitions);
const PARTITION_MS = Number(values['partition-s']) * 1000;
const N = 5;
const WEB = [0, 1, 2];
const line = (what: string, xs: number[]) => {
  const s = summary(xs);
  console.log(`${what.padEnd(44)} median ${String(s.median).padStart(6)}  p90 ${String(s.p90).padStart(6)}  max ${String(s.max).padStart(6)}  (n=${s.n})`);
};

const tb = await createTestbed({ hosts: N, prefix: 'svf' });
const c = new ServiceCluster(tb.hosts, { profile: 'lan', web: WEB });
let code = 0;
try {
  for (let i = 0; i < N; i++) await c.start(i);
  const webIps = WEB.map((i) => c.ip(i)).sort().join();
  await untilAnswers(tb.hosts, 'web', (a) => a.addrs.join() === webIps, Date.now(), 60_000);

  const unhealthy: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const i = WEB[t % WEB.length];
    c.setHealthy(i, false);
    unhealthy.push(await untilAnswers(tb.hosts, 'web', (a) => a.addrs.length === 2 && !a.addrs.includes(c.ip(i)), Date.now(), 30_000));
    c.setHealthy(i, true);
    await untilAnswers(tb.hosts, 'web', (a) => a.addrs.join() === webIps, Date.now(), 30_000);
  }

  const detect: number[] = [];
  const gone: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const victim = WEB[t % WEB.length];
    const name = (await c.procs[victim]!.status()).name;
    const live = c.procs.filter((_, j) => j !== victim);
    const others = tb.hosts.filter((_, j) => j !== victim);
    const t0 = Date.now();
    await c.procs[victim]!.kill('SIGKILL');
    c.procs[victim] = null;
    const seenDead = (async () => {
      for (;;) {
        const st = await Promise.all(live.map((p) => p!.status().catch(() => null)));
        if (st.every((x) => x?.members.find((m) => m.name === name)?.state === 'dead')) return Date.now() - t0;
        if (Date.now() - t0 > 60_000) throw new Error('kill not detected in 60 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    gone.push(await untilAnswers(others, 'web', (a) => a.addrs.length === 2 && !a.addrs.includes(c.ip(victim)), t0, 60_000));
    detect.push(await seenDead);
    await c.start(victim);
    await untilAnswers(tb.hosts, 'web', (a) => a.addrs.join() === webIps, Date.now(), 60_000);
  }

  const heal: number[] = [];
  const lateNx: number[] = [];
  const names = ['web', ...tb.hosts.map((_, i) => `own-${i}`)];
  const twoPushPulls = 2 * LAN.pushPullIntervalMs;
  for (let t = 0; t < PARTITIONS; t++) {
    await tb.partition(tb.hosts.slice(0, 2), tb.hosts.slice(2));
    await new Promise((r) => setTimeout(r, PARTITION_MS));
    await tb.heal();
    const t0 = Date.now();
    let healed = -1;
    let nx = 0;
    while (Date.now() - t0 < twoPushPulls + 5_000) {
      const rounds = await Promise.all(tb.hosts.flatMap((h) => names.map((n) => dig(h, n))));
      const bad = rounds.filter((a) => a.status !== 'NOERROR' || a.addrs.length === 0).length;
      if (healed < 0 && bad === 0) healed = Date.now() - t0;
      if (Date.now() - t0 > twoPushPulls) nx += bad;
      else if (healed >= 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    heal.push(healed < 0 ? Infinity : healed);
    lateNx.push(nx);
  }

  console.log(`\nservices freshness: ${N} namespace hosts, real agents (LAN), web on 3 hosts (exec check every 500 ms, 2 retries), dig at the resolver on every host`);
  line('unhealthy → gone from every answer (ms)', unhealthy);
  line('kill -9 → dead at every agent (ms)', detect);
  line('kill -9 → gone from every answer (ms)', gone);
  line('gone − detected (ms)', gone.map((g, k) => g - detect[k]));
  if (PARTITIONS > 0) {
    line(`${PARTITION_MS / 1000} s partition healed → all answer (ms)`, heal);
    console.log(`NXDOMAIN/empty answers for live services after two push-pull intervals (${twoPushPulls} ms): ${lateNx.reduce((a, b) => a + b, 0)} over ${PARTITIONS} partitions`);
  }
  if (summary(unhealthy).max > 7_000 || gone.some((g, k) => g > detect[k] + 1_000) || lateNx.some((x) => x > 0) || heal.some((h) => !Number.isFinite(h))) code = 1;
} finally {
  await c.stopAll();
  await tb.destroy();
}
process.exit(code);
