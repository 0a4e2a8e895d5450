import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { createTestbed, type TestHost, type Testbed } from './lib/testbed.js';
import { AgentCluster } from './lib/agent-cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssMiB = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const aliveNames = (s: { members: { name: string; state: string }[] } | null) => (s ? s.members.filter((m) => m.state === 'alive').length : -1);

// Hardening issue 5: an unpaced connect flood on the push-pull port must not keep a restarted node
// from joining through that seed, nor grow the seed's memory without bound.
// Host 1 is the seed, host 2 the node that restarts and rejoins, hosts 3–5 flood.
describe('agent push-pull port under a connect flood', () => {
  let tb: Testbed;
  let c: AgentCluster;
  const flooders = new Set<ChildProcess>();
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 5, prefix: 'fld' });
    c = new AgentCluster(tb.hosts, { profile: 'lan' });
  }, 60_000);
  afterAll(async () => {
    for (const f of flooders) f.kill('SIGKILL');
    await c?.stopAll();
    await tb?.destroy();
  });

  const bothAlive = (s: Awaited<ReturnType<AgentCluster['statuses']>>) => aliveNames(s[0]) === 2 && aliveNames(s[1]) === 2;

  /** Stop host 2's agent (gracefully: the seed records it as left at once) and wait until the seed sees it gone. */
  async function stopJoiner(): Promise<void> {
    if (!c.procs[0]) throw new Error('the seed is not running (the first test failed)');
    await c.procs[1]?.kill('SIGTERM');
    c.procs[1] = null;
    await c.until((s) => aliveNames(s[0]) === 1, 15_000);
  }

  /**
   * Flood the seed from `sources` (bounded: ≤ 60 s and ≤ 400 000 connects, 256 open, per source),
   * restart host 2's agent after 3 s and time its join. Prints and returns the figures.
   */
  async function rejoinUnderFlood(sources: TestHost[], label: string) {
    const seed = c.procs[0]!;
    const rssBefore = rssMiB(seed.proc.pid!);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      try {
        rssPeak = Math.max(rssPeak, rssMiB(seed.proc.pid!));
      } catch {
        // the seed exited: the status check below fails
      }
    }, 200);
    const outs: string[] = sources.map(() => '');
    const exits: Promise<void>[] = [];
    try {
      for (const [i, h] of sources.entries()) {
        const f = h.spawn('node', ['--import', 'tsx', 'test/lib/connect-flood.ts', tb.hosts[0].underlay, '7946', '400000', '60000', '256'], { cwd: process.cwd() });
        flooders.add(f);
        f.stdout?.on('data', (d) => (outs[i] += d));
        exits.push(new Promise<void>((r) => f.once('exit', () => (flooders.delete(f), r()))));
      }
      await sleep(3000); // let the flood fill whatever it can
      const t1 = Date.now();
      await c.start(1);
      const up1 = Date.now();
      let fromSpawnMs = Infinity;
      let fromUpMs = Infinity;
      try {
        await c.until(bothAlive, 50_000);
        fromSpawnMs = Date.now() - t1;
        fromUpMs = Date.now() - up1;
      } catch {
        // reported below
      }
      for (const f of flooders) f.kill('SIGTERM');
      await Promise.all(exits);
      let connects = 0;
      let closed = 0;
      for (const o of outs) {
        const m = /FLOOD (\d+) (\d+) (\d+)/.exec(o);
        connects += Number(m?.[1] ?? 0);
        closed += Number(m?.[2] ?? 0);
      }
      const join = Number.isFinite(fromSpawnMs) ? `${fromSpawnMs} ms from spawn (${fromUpMs} ms once up)` : 'not within 50 s';
      console.log(`flood (${label}): join ${join}; seed RSS ${rssBefore.toFixed(1)} MiB before, ${rssPeak.toFixed(1)} MiB peak (+${(rssPeak - rssBefore).toFixed(1)}); ${connects} connects, ${closed} closed by the seed`);
      const st = await seed.status();
      // The push-pull port's refusals show in the seed's status as stream.<reason>.
      const streamDrops = Object.entries(st.drops).reduce((n, [k, v]) => n + (k.startsWith('stream.') ? v : 0), 0);
      return { fromUpMs, connects, seedMembers: aliveNames(st), streamDrops };
    } finally {
      clearInterval(sampler);
    }
  }

  // The seed's RSS rise is printed, not asserted: it follows the connect rate the machine allows
  // (+6.9 MiB at 5 671 connects, +26.6 at 28 468 on an idle machine, over a flood of a few seconds),
  // and memory targets live in benchmarks. What the test holds: the join gets through, the seed
  // keeps serving, and it counts what it refused.
  it('a restarted node rejoins through a seed flooded from one source, and the seed counts what it refused', async () => {
    await c.start(0);
    const t0 = Date.now();
    await c.start(1);
    const up0 = Date.now();
    await c.until(bothAlive, 30_000);
    console.log(`flood (none): join ${Date.now() - t0} ms from spawn (${Date.now() - up0} ms once up)`);
    await stopJoiner();
    const r = await rejoinUnderFlood([tb.hosts[2]], 'one source');
    expect(r.connects).toBeGreaterThan(1000); // the flood really ran
    // Once the restarted agent is up, its join is one push-pull: the flood may slow the seed (the
    // cores are shared) but must not keep the join out for the join retries or push-pull timer.
    expect(r.fromUpMs).toBeLessThan(10_000);
    expect(r.seedMembers).toBe(2); // the seed kept serving
    expect(r.streamDrops).toBeGreaterThan(0); // and said what it refused
  }, 180_000);

  it('the same with three sources, which together exceed the unauthenticated slots', async () => {
    await stopJoiner();
    const r = await rejoinUnderFlood(tb.hosts.slice(2, 5), 'three sources');
    expect(r.connects).toBeGreaterThan(1000);
    expect(r.fromUpMs).toBeLessThan(10_000);
    expect(r.seedMembers).toBe(2);
  }, 180_000);
});
