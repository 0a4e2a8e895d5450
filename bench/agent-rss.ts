/**
 * The agent's resident memory when idle, as shipped (built JS, packages/agent/bin/agent.js, with the
 * V8 flags of its shebang line): three network-namespace hosts, one agent each with a TAP network,
 * WireGuard and metrics on, every agent a peer of the other two; measured 15 s after it serves metrics.
 *
 * First the floor: an empty node process with the same flags. Per agent: RSS = anonymous +
 * file-backed (the node binary's pages, shared by every node process) from /proc/PID/smaps_rollup,
 * and the agent's own view from its metrics endpoint
 * (overlay_agent_memory_bytes: V8 heap used and total, external, array buffers, the packet pool's
 * slab). With `--compare "FLAGS"` rounds alternate the shipped flags with FLAGS (e.g. the flags
 * before a change), so drift in the machine's load hits both alike. With `--load`, after the idle
 * figure a 3 s TCP stream (iperf3) crosses the encrypted overlay from agent 0 to agent 1, and both
 * are measured again 10 s later: what traffic leaves resident (pool slots, TSO and GRO buffers).
 * `--compare-entry FILE` runs FILE instead of the bin in the compare rounds (with the shipped flags
 * unless `--compare` gives others): `packages/agent/dist/main.js` is the same build unbundled.
 * The shebang's environment (`env -S NAME=VALUE … node`: glibc's malloc settings) is set for the
 * shipped agents and the floor; `--compare-env "NAME=VALUE …"` sets the compare rounds' instead
 * (`--compare-env ""`: none).
 * Prints every agent and the medians. Issue 15's goal is 64 MiB (docs/agent-memory.md says where
 * the MiB go); `--target MiB` exits 1 when the shipped median idle RSS is above MiB.
 *
 *   bash bench/run.sh agent-rss [--rounds N] [--compare "--max-semi-space-size=2"] [--compare-entry FILE] [--compare-env "NAME=VALUE …"] [--load] [--target MiB] [--idle-cpu S]
 *   (run.sh builds first: this runs dist/; the bundle the bin runs, dist/bundle/, is built here)
 *
 * `--idle-cpu S`: after the memory figures, each agent's CPU time (user + system, /proc/PID/stat)
 * over S more seconds of idling, per variant: the cost of a flag that makes V8 redo work
 * (`--bytecode-old-age=1` recompiles what ran less often than full GCs happen).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { AgentCluster } from '../test/lib/agent-cluster.js';
import { createTestbed, type TestHost } from '../test/lib/testbed.js';
import { iperfServer, tcp } from './lib/iperf.js';
import { median } from './lib/stats.js';
import { cpuSeconds } from './lib/proc.js';
import { bundleFresh } from '../packages/agent/scripts/bundle.mjs';

const argv = process.argv.slice(2);
const arg = (k: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const ROUNDS = Math.max(1, Number(arg('--rounds') ?? 3) || 3);
/** Issue 15's goal for the idle agent's RSS; `--target` turns a bound into the exit code. */
const GOAL_MIB = 64;
const TARGET_MIB = arg('--target') === undefined ? undefined : Number(arg('--target'));
const LOAD = argv.includes('--load');
const IDLE_CPU_S = Number(arg('--idle-cpu') ?? 0) || 0;
const idleCpu = new Map<string, number[]>();
const HOSTS = 3;
const IDLE_MS = 15_000;
const BIN = 'packages/agent/bin/agent.js';
const SHEBANG = /^#!.*$/m.exec(readFileSync(BIN, 'utf8'))?.[0] ?? '';
/** The V8 flags the shipped entry point runs with: its shebang's `node` arguments. */
const SHIPPED = /\bnode\b(.*)$/.exec(SHEBANG)?.[1].trim().split(/\s+/).filter(Boolean) ?? [];
/** NAME=VALUE words of a string (`env -S NAME=VALUE … node` in the shebang; `--compare-env`). */
const envOf = (words: string) => Object.fromEntries([...words.matchAll(/(?:^|\s)(\w+)=(\S*)/g)].map((m) => [m[1], m[2]]));
/** The environment the shebang sets for node (glibc's malloc settings), also set by the unit. */
const SHIPPED_ENV = envOf(/-S(.*?)\bnode\b/.exec(SHEBANG)?.[1] ?? '');
const envText = (env: Record<string, string>) => Object.entries(env).map(([k, v]) => `${k}=${v} `).join('');
/**
 * The bin runs the bundle while it is fresh (scripts/bundle.mjs): built from this dist/ here, and
 * again before a round when a `tsc -b` (another build in the same tree) made it stale.
 */
const buildBundle = () => execFileSync(process.execPath, ['packages/agent/scripts/bundle.mjs'], { stdio: 'inherit' });
buildBundle();
const SHIPPED_ENTRY = bundleFresh() ? 'bundle' : 'dist/cli.js (no bundle)';
/** Label, node flags, script, environment. */
const VARIANTS: [string, string[], string, Record<string, string>][] = [[`shipped (${envText(SHIPPED_ENV)}${SHIPPED.join(' ') || 'no flags'}; ${SHIPPED_ENTRY})`, SHIPPED, BIN, SHIPPED_ENV]];
if (arg('--compare') !== undefined || arg('--compare-entry') !== undefined || arg('--compare-env') !== undefined) {
  const flags = arg('--compare') === undefined ? SHIPPED : arg('--compare')!.split(/\s+/).filter(Boolean);
  const entry = arg('--compare-entry') ?? BIN;
  const env = arg('--compare-env') === undefined ? SHIPPED_ENV : envOf(arg('--compare-env')!);
  VARIANTS.push([`compare (${envText(env)}${flags.join(' ') || 'no flags'}; ${entry === BIN ? SHIPPED_ENTRY : entry})`, flags, entry, env]);
}

const FIELDS = ['rss', 'anon', 'file', 'heap_used', 'heap_total', 'external', 'array_buffers', 'pool_slab'] as const;
type Mem = Record<(typeof FIELDS)[number], number>;
const MiB = 1 << 20;

/** Resident memory from smaps_rollup (kB → MiB): Rss, and the anonymous part of it. */
function resident(pid: number): { rss: number; anon: number; file: number } {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? NaN) / 1024;
  return { rss: kb('Rss'), anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous') };
}

/** The agent's overlay_agent_memory_bytes samples (MiB by kind), scraped inside its namespace. */
async function scrape(h: TestHost, port: number): Promise<Record<string, number>> {
  const text = await h.exec('curl', ['-sf', '--max-time', '5', `http://127.0.0.1:${port}/metrics`], { timeoutMs: 10_000 });
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^overlay_agent_memory_bytes\{kind="([a-z_]+)"\} (\S+)$/gm)) out[m[1]] = Number(m[2]) / MiB;
  return out;
}

const fmt = (m: Mem) => FIELDS.map((k) => `${k} ${m[k].toFixed(1)}`).join(', ');
const tb = await createTestbed({ hosts: HOSTS, prefix: 'rss' });
const rows = new Map<string, Mem[]>();
try {
  console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2 cores, shared machine)`);
  console.log(`${HOSTS} agents (TAP network, WireGuard, metrics on), measured ${IDLE_MS / 1000} s after it serves metrics; MiB`);
  // The floor: an empty node process with the shipped flags (what any node program holds resident).
  const empty = tb.hosts[0].spawn('node', [...SHIPPED, '-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', env: { ...process.env, ...SHIPPED_ENV } });
  await new Promise((res) => setTimeout(res, 3000));
  const floor = resident(empty.pid!);
  empty.kill('SIGKILL');
  console.log(`empty node process (${envText(SHIPPED_ENV)}${SHIPPED.join(' ')}): rss ${floor.rss.toFixed(1)}, anon ${floor.anon.toFixed(1)}, file ${floor.file.toFixed(1)}`);
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [label, flags, entry, env] of VARIANTS) {
      if (entry === BIN && SHIPPED_ENTRY === 'bundle' && !bundleFresh()) buildBundle();
      const c = new AgentCluster(tb.hosts, { encrypt: true });
      const procs = tb.hosts.map((h, i) => {
        const f = join(c.dir, `a${i}.yaml`);
        writeFileSync(f, `${c.config(i)}metrics:\n  listen: 127.0.0.1:9464\n`, { mode: 0o600 });
        return h.spawn('node', [...flags, entry, '--config', f], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, ...env } });
      });
      try {
        // Started = its metrics endpoint answers (seconds under load: the machine is shared).
        const deadline = Date.now() + 90_000;
        for (const [i, h] of tb.hosts.entries()) {
          while (!(await scrape(h, 9464).then(() => true, () => false))) {
            if (procs[i].exitCode !== null || Date.now() > deadline) throw new Error(`agent ${i} did not start (exit ${procs[i].exitCode})`);
            await new Promise((res) => setTimeout(res, 250));
          }
        }
        if (entry === BIN && SHIPPED_ENTRY === 'bundle' && !bundleFresh()) {
          console.log(`round ${r} ${label}: skipped (dist/ was rebuilt while the agents started: they may not run the bundle)`);
          continue;
        }
        await new Promise((res) => setTimeout(res, IDLE_MS));
        const measure = async (phase: string, which: number[]) => {
          for (const i of which) {
            const p = procs[i];
            if (p.exitCode !== null || p.signalCode !== null) throw new Error(`agent ${i} exited (${p.exitCode ?? p.signalCode}) before it was measured`);
            const v8 = await scrape(tb.hosts[i], 9464);
            const m: Mem = { ...resident(p.pid!), heap_used: v8.heap_used, heap_total: v8.heap_total, external: v8.external, array_buffers: v8.array_buffers, pool_slab: v8.pool_slab };
            const key = `${label}${phase}`;
            let list = rows.get(key);
            if (!list) rows.set(key, (list = []));
            list.push(m);
            console.log(`round ${r} ${key} a${i}: ${fmt(m)}`);
          }
        };
        await measure('', procs.map((_, i) => i));
        if (LOAD) {
          const stopIperf = await iperfServer(tb.hosts[1]);
          try {
            const t = await tcp(tb.hosts[0], c.ip(1), { seconds: 3, streams: 1 });
            console.log(`round ${r} ${label}: 3 s TCP a0 → a1 over the overlay: ${t.gbps.toFixed(2)} Gbit/s`);
          } finally {
            stopIperf();
          }
          await new Promise((res) => setTimeout(res, 10_000));
          await measure(' after load', [0, 1]);
        }
        if (IDLE_CPU_S > 0) {
          const before = procs.map((p) => cpuSeconds(p.pid!) * 1000);
          await new Promise((res) => setTimeout(res, IDLE_CPU_S * 1000));
          const used = procs.map((p, i) => cpuSeconds(p.pid!) * 1000 - before[i]);
          let list = idleCpu.get(label);
          if (!list) idleCpu.set(label, (list = []));
          list.push(...used);
          console.log(`round ${r} ${label}: CPU ms over ${IDLE_CPU_S} s idle: ${used.map((u, i) => `a${i} ${u.toFixed(0)}`).join(', ')}`);
        }
      } finally {
        for (const p of procs) p.kill('SIGTERM');
        await new Promise((res) => setTimeout(res, 1500));
        for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
        rmSync(c.dir, { recursive: true, force: true });
      }
    }
  }
} finally {
  await tb.destroy();
}
for (const [label, ms] of rows) {
  const med = Object.fromEntries(FIELDS.map((k) => [k, median(ms.map((m) => m[k]))])) as Mem;
  console.log(`${label}: median over ${ms.length} agents: ${fmt(med)}`);
}
for (const [label, us] of idleCpu) {
  console.log(`${label}: CPU ms over ${IDLE_CPU_S} s idle, median over ${us.length} agents ${median(us).toFixed(0)} (sum ${us.reduce((a, b) => a + b, 0).toFixed(0)})`);
}
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const shipped = median(rows.get(VARIANTS[0][0])!.map((m) => m.rss));
console.log(`shipped median idle RSS ${shipped.toFixed(1)} MiB; issue 15's goal ${GOAL_MIB} MiB ${shipped <= GOAL_MIB ? 'met' : 'not met'}`);
if (TARGET_MIB !== undefined && shipped > TARGET_MIB) {
  console.log(`FAIL: above the target ${TARGET_MIB} MiB`);
  process.exitCode = 1;
}
