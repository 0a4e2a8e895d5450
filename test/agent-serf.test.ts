import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { createTestbed, type Testbed, type TestHost } from './lib/testbed.js';
import { AgentCluster } from './lib/agent-cluster.js';

// kill -9 detection, our agent next to HashiCorp serf (Debian package), same 5 namespace hosts,
// both LAN profile, killed at the same instant, observed by the same four survivors.
const N = 5;
const TRIALS = 3;
const SERF_PORT = 7947;

async function serfFailed(h: TestHost, node: string): Promise<boolean> {
  const r = await h.run('serf', ['members', '-rpc-addr=127.0.0.1:7373', '-format=json'], { timeoutMs: 5000 });
  if (r.code !== 0) return false;
  const m = (JSON.parse(r.stdout) as { members: { name: string; status: string }[] }).members.find((x) => x.name === node);
  return m?.status === 'failed';
}
async function serfAlive(h: TestHost): Promise<number> {
  const r = await h.run('serf', ['members', '-rpc-addr=127.0.0.1:7373', '-format=json'], { timeoutMs: 5000 });
  if (r.code !== 0) return 0;
  return (JSON.parse(r.stdout) as { members: { status: string }[] }).members.filter((x) => x.status === 'alive').length;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('kill -9 detection: our agent and serf side by side', () => {
  let tb: Testbed;
  let c: AgentCluster;
  const serf: (ChildProcess | null)[] = [];
  const startSerf = (i: number) => {
    const h = tb.hosts[i];
    serf[i] = h.spawn('serf', ['agent', `-node=s${i}`, `-bind=${h.underlay}:${SERF_PORT}`, '-rpc-addr=127.0.0.1:7373', '-profile=lan', `-join=${tb.hosts[0].underlay}:${SERF_PORT}`, '-log-level=err'], { stdio: 'ignore' });
  };
  beforeAll(async () => {
    tb = await createTestbed({ hosts: N, prefix: 'srf' });
    c = new AgentCluster(tb.hosts, { profile: 'lan' });
    for (let i = 0; i < N; i++) {
      startSerf(i);
      await c.start(i);
    }
  }, 120_000);
  afterAll(async () => {
    for (const s of serf) s?.kill('SIGKILL');
    await c?.stopAll();
    await tb?.destroy();
  });

  it('both detect the killed node; times recorded', async () => {
    const ours: number[] = [];
    const theirs: number[] = [];
    const victim = N - 1;
    for (let t = 0; t < TRIALS; t++) {
      const up = async () => (await Promise.all(tb.hosts.map(serfAlive))).every((n) => n === N);
      await c.until((s) => s.every((x) => x !== null && x.members.filter((m) => m.state === 'alive').length === N), 60_000);
      for (let w = 0; w < 120 && !(await up()); w++) await new Promise((r) => setTimeout(r, 250));
      expect(await up()).toBe(true);
      await new Promise((r) => setTimeout(r, 3000)); // settle
      const t0 = Date.now();
      serf[victim]!.kill('SIGKILL');
      serf[victim] = null;
      await c.procs[victim]!.kill('SIGKILL');
      c.procs[victim] = null;
      let oursAt = 0;
      let theirsAt = 0;
      const survivors = tb.hosts.filter((_, i) => i !== victim);
      while ((!oursAt || !theirsAt) && Date.now() - t0 < 120_000) {
        if (!oursAt) {
          const s = await c.statuses();
          if (s.every((x, i) => i === victim || (x !== null && x.members.some((m) => m.state === 'dead')))) oursAt = Date.now() - t0;
        }
        if (!theirsAt && (await Promise.all(survivors.map((h) => serfFailed(h, `s${victim}`)))).every(Boolean)) theirsAt = Date.now() - t0;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(oursAt).toBeGreaterThan(0);
      expect(theirsAt).toBeGreaterThan(0);
      ours.push(oursAt);
      theirs.push(theirsAt);
      startSerf(victim);
      await c.start(victim);
    }
    const line = `| kill -9, ${N} hosts, LAN profile (${TRIALS} trials) | ${median(ours)} (${ours.join(', ')}) | ${median(theirs)} (${theirs.join(', ')}) | ${(median(ours) / median(theirs)).toFixed(2)} |`;
    console.log(line);
    // Record side by side in the agent results (between markers, so the simulation table stays).
    const file = new URL('../bench/results/agent.md', import.meta.url);
    let md = '';
    try {
      md = readFileSync(file, 'utf8');
    } catch {
      // first run
    }
    const section = [
      '<!-- serf -->',
      '## kill -9 detection in network namespaces: our agent vs serf (same run, same hosts)',
      '',
      'All four survivors must mark the killed node dead (ours) / failed (serf 0.8, Debian). Polled every ~200 ms; ms from the kill.',
      '',
      '| scenario | ours: median (trials), ms | serf: median (trials), ms | ratio ours/serf |',
      '| --- | --- | --- | --- |',
      line,
      '<!-- /serf -->',
    ].join('\n');
    md = /<!-- serf -->[\s\S]*<!-- \/serf -->/.test(md) ? md.replace(/<!-- serf -->[\s\S]*<!-- \/serf -->/, section) : `${md.trimEnd()}\n\n${section}\n`;
    writeFileSync(file, md);
  }, 600_000);
});
