/**
 * The agent's resident memory when idle, as shipped (built JS, packages/agent/bin/agent.js): two
 * network-namespace hosts, one agent each with a TAP network and WireGuard on, 15 s after start.
 * Rounds alternate V8's default young generation with `--max-semi-space-size=2` (what bin/agent.js's
 * shebang and the systemd unit pass), so drift hits both alike. Prints RSS, anonymous and
 * file-backed (the node binary's pages, shared by every node process) per agent and round.
 *
 *   bash bench/run.sh agent-rss [--rounds N]      (needs `npx tsc -b` first: it runs dist/)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { AgentCluster } from '../test/lib/agent-cluster.js';
import { createTestbed } from '../test/lib/testbed.js';
import { median } from './lib/stats.js';

const argv = process.argv.slice(2);
const ROUNDS = Number(argv[argv.indexOf('--rounds') + 1] || 2) || 2;
const VARIANTS: [string, string[]][] = [['V8 default', []], ['--max-semi-space-size=2', ['--max-semi-space-size=2']]];

function mem(pid: number): { rss: number; anon: number; file: number } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

const tb = await createTestbed({ hosts: 2, prefix: 'rss' });
const rows: Record<string, number[]> = {};
try {
  console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [label, flags] of VARIANTS) {
      const c = new AgentCluster(tb.hosts, { encrypt: true });
      const procs = tb.hosts.map((h, i) => {
        const f = join(c.dir, `a${i}.yaml`);
        writeFileSync(f, c.config(i), { mode: 0o600 });
        return h.spawn('node', [...flags, 'packages/agent/bin/agent.js', '--config', f], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'ignore'] });
      });
      try {
        await new Promise((res) => setTimeout(res, 15_000));
        const m = procs.map((p) => mem(p.pid!));
        (rows[label] ??= []).push(...m.map((x) => x.rss));
        console.log(`round ${r} ${label}: ${m.map((x) => `RSS ${x.rss.toFixed(0)} MiB (anon ${x.anon.toFixed(0)}, file ${x.file.toFixed(0)})`).join(' | ')}`);
      } finally {
        for (const p of procs) p.kill('SIGTERM');
        await new Promise((res) => setTimeout(res, 1500));
        for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      }
    }
  }
} finally {
  await tb.destroy();
}
for (const [label, xs] of Object.entries(rows)) console.log(`${label}: median RSS ${median(xs).toFixed(1)} MiB over ${xs.length} agents (${xs.map((x) => x.toFixed(0)).join(' ')})`);
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
