/**
 * Endpoint-change propagation with 50 real agents (issue 16): --hosts network namespaces on one
 * bridge, one agent process each (bench/lib/propagation-agent.ts: the agent as `agent run` runs it,
 * printing the exact time each measured record reaches its table; bundled once, bench/lib/bundle.ts,
 * so every agent runs the same code and starts without tsx), all with `store: {kind: etcd}`
 * against one etcd-server in host 1's namespace. Host 1's agent publishes --changes endpoints of
 * each class, interleaved, one change every --gap ms, then removes them (a tombstone; in etcd a
 * delete). The class, by id, says which path may carry the change (propagation-agent.ts):
 *
 * - gossip (`g-*`): the store is ignored for it: gossip as in the default mode;
 * - etcd (`e-*`): nobody gossips it: etcd's watch alone;
 * - both (`b-*`): the shipped etcd mode: records in etcd and gossiped, whichever arrives first.
 *
 * So the paths are compared in one run, on the same 50 agents, under the same load. Each other
 * agent's first arrival minus the publisher's clock just before the call is one sample (one
 * machine, one clock). Prints p50/p99/max per class and kind of change, where each arrival came
 * from, the gossip and etcd bytes the hosts sent during the changes (nftables) and the CPU of the
 * agents and of etcd.
 *
 *   bash bench/run.sh propagation [--hosts 50] [--changes 10] [--gap 1000] [--wave 10]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { AgentCluster } from '../test/lib/agent-cluster.js';
import { createTestbed, type TestHost } from '../test/lib/testbed.js';
import { intOption } from './lib/args.js';
import { bundleEntry } from './lib/bundle.js';
import { cpuSeconds, rssMiB } from './lib/proc.js';
import { quantile } from './lib/stats.js';

const N = intOption('--hosts', 50);
const CHANGES = intOption('--changes', 10);
const GAP_MS = intOption('--gap', 1000);
/** Agents started at once; the next wave waits until these are running. */
const WAVE = intOption('--wave', 10);
if (N < 3 || N > 250) throw new Error('--hosts wants 3..250');
if (CHANGES > 50) throw new Error('--changes wants at most 50 (150 endpoint addresses)');
const CLASSES = [['gossip', 'g'], ['etcd', 'e'], ['both', 'b']] as const;
const log = (s: string) => process.stdout.write(`[propagation] ${s}\n`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Agents extends AgentCluster {
  etcdUrl = '';
  override config(i: number, endpointIp?: string, seedIndex?: number): string {
    return super.config(i, endpointIp, seedIndex) + ['store:', '  kind: etcd', `  endpoints: ["${this.etcdUrl}"]`, '  prefix: /prop/', ''].join('\n');
  }
}

interface Proc {
  proc: ChildProcess;
  ready: Promise<void>;
  /** `${id} ${deleted}` → first arrival (ms) and path. */
  seen: Map<string, { at: number; via: string }>;
  endpoints: Set<string>;
  published: Map<string, number>;
  /** The last lines the agent wrote on stderr (why it failed to start). */
  stderr: string;
}

/** nftables byte counters per host: gossip (7946) and etcd client (2379) traffic sent. */
async function installCounters(h: TestHost): Promise<void> {
  const script = ['table inet propbytes {', ' counter gossip_out {}', ' counter etcd_out {}', ' chain output { type filter hook output priority 0; policy accept;',
    '  meta l4proto { tcp, udp } th sport 7946 counter name gossip_out', '  meta l4proto { tcp, udp } th dport 7946 counter name gossip_out',
    '  tcp dport 2379 counter name etcd_out', '  tcp sport 2379 counter name etcd_out', ' }', '}'].join('\n');
  await h.exec('nft', ['-f', '-'], { input: script + '\n' });
}
/**
 * undefined when nft failed 4 times: a 50-host run at load ~50 once got an empty answer (exit 0)
 * from host 1's `nft -j`, and the whole run was lost to JSON.parse.
 */
async function readCounters(h: TestHost): Promise<{ gossip: number; etcd: number } | undefined> {
  for (let attempt = 1; attempt <= 4; attempt++) {
    const r = await h.run('nft', ['-j', 'list', 'counters', 'table', 'inet', 'propbytes']);
    try {
      const out = JSON.parse(r.stdout) as { nftables: { counter?: { name: string; bytes: number } }[] };
      const c: Record<string, number> = {};
      for (const o of out.nftables) if (o.counter) c[o.counter.name] = o.counter.bytes;
      if (c.gossip_out !== undefined && c.etcd_out !== undefined) return { gossip: c.gossip_out, etcd: c.etcd_out };
    } catch {
      /* empty or cut output: try again */
    }
    log(`counters of ${h.name}: attempt ${attempt} got exit ${r.code}, ${r.stdout.length} B (${r.stderr.trim().slice(0, 200)})`);
    await sleep(300);
  }
  return undefined;
}

/** The agent, bundled once (bench/lib/bundle.ts): a start under tsx costs ~2 s of CPU, 50 of them starved the box. */
let agentJs = '';

function spawnAgent(h: TestHost, file: string): Proc {
  const proc = h.spawn('node', [agentJs, '--config', file], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'pipe'] });
  let ready!: () => void;
  const p: Proc = { proc, ready: new Promise<void>((r) => (ready = r)), seen: new Map(), endpoints: new Set(), published: new Map(), stderr: '' };
  proc.stderr!.on('data', (d: Buffer) => (p.stderr = (p.stderr + d.toString()).slice(-4000)));
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const f = l.split(' ');
    if (f[0] === 'READY') ready();
    else if (f[0] === 'E') p.endpoints.add(f[1]);
    else if (f[0] === 'A' || f[0] === 'W') {
      const key = f[0] === 'W' ? `${f[2]} 1` : `${f[2]} ${f[3]}`;
      if (!p.seen.has(key)) p.seen.set(key, { at: Number(f[1]), via: f[0] === 'W' ? 'etcd' : f[4] });
    } else if (f[0] === 'P') p.published.set(`${f[2]} ${f[3]}`, Number(f[1]));
  });
  proc.once('exit', () => ready());
  return p;
}

const dir = mkdtempSync(join(tmpdir(), 'overlay-prop-'));
let agentsDir: string | undefined;
let etcd: ChildProcess | undefined;
// Killed mid-run (Ctrl-C, timeout): `finally` does not run, the testbed's own signal hook (installed
// after this one, so run after it) removes namespaces and processes; this removes the etcd data
// (~120 MiB) and the agents' configs, which would otherwise stay in /tmp.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    etcd?.kill('SIGKILL');
    for (const d of [dir, agentsDir]) if (d) rmSync(d, { recursive: true, force: true });
  });
}
const tb = await createTestbed({ hosts: N, prefix: 'prop' });
const c = new Agents(tb.hosts, { profile: 'lan' });
agentsDir = c.dir;
const procs: Proc[] = [];
const lines: string[] = [];
const failed = new Set<number>();
try {
  log(`${N} hosts, ${CHANGES} endpoints per class (gossip, etcd, both) published then removed by host 1, one change every ${GAP_MS} ms; load average ${load()}`);
  agentJs = join(dir, 'propagation-agent.mjs');
  log(`agent bundled in ${(await bundleEntry('bench/lib/propagation-agent.ts', agentJs)).toFixed(0)} ms`);
  const h0 = tb.hosts[0];
  c.etcdUrl = `http://${h0.underlay}:2379`;
  const peer = `http://${h0.underlay}:2380`;
  etcd = h0.spawn('etcd', ['--name', 'e', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', c.etcdUrl, '--advertise-client-urls', c.etcdUrl, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `e=${peer}`, '--log-level', 'error', '--logger', 'zap'], { stdio: 'ignore' });
  for (let t = 0; (await h0.run('env', ['ETCDCTL_API=3', 'etcdctl', '--endpoints', c.etcdUrl, '--dial-timeout', '1s', 'endpoint', 'health'])).code !== 0; t++) {
    if (t > 150) throw new Error('etcd did not start');
    await sleep(200);
  }
  const t0 = Date.now();
  // In waves (each start still takes ~0.6 s of CPU and a join: 50 at once starve the box).
  for (let i = 0; i < N; i += WAVE) {
    for (let j = i; j < Math.min(N, i + WAVE); j++) {
      const file = join(c.dir, `a${j}.yaml`);
      writeFileSync(file, c.config(j), { mode: 0o600 });
      procs.push(spawnAgent(tb.hosts[j], file));
    }
    await Promise.all(procs.slice(i).map((p) => p.ready));
    // An agent whose start failed on the loaded box is started again, once; if it fails again it
    // is left out (at most 2 of them), and the reason printed.
    for (let j = i; j < procs.length; j++) {
      for (let retry = 1; procs[j].proc.exitCode !== null && !failed.has(j); retry++) {
        const why = procs[j].stderr.split('\n').filter((l) => /Error|error|at /.test(l)).slice(0, 6).join(' | ');
        log(`agent ${j} exited at start (${why}); ${retry <= 1 ? 'starting it again' : 'left out'}`);
        if (retry > 1) {
          failed.add(j);
          if (failed.size > 2 || j === 0) throw new Error('the publisher, or more than 2 agents, did not start');
        } else {
          procs[j] = spawnAgent(tb.hosts[j], join(c.dir, `a${j}.yaml`));
          await procs[j].ready;
        }
      }
    }
  }
  const live = procs.filter((_, j) => !failed.has(j));
  const receivers = live.slice(1);
  log(`${live.length} agents started${failed.size ? ` (left out: ${[...failed].join(', ')})` : ''} in ${((Date.now() - t0) / 1000).toFixed(0)} s; load average ${load()}`);
  for (const t = Date.now(); live.some((p) => p.endpoints.size < live.length - 1); await sleep(500)) {
    if (Date.now() - t > 600_000) throw new Error(`not converged in 600 s: endpoints known per agent ${live.map((p) => p.endpoints.size).join(',')}`);
  }
  log(`converged: every agent holds the ${live.length - 1} other agents' endpoints, ${((Date.now() - t0) / 1000).toFixed(0)} s after the first start; load average ${load()}`);
  await sleep(5000); // let the join's gossip drain
  for (const h of tb.hosts) await installCounters(h);
  const cpu0 = procs.map((p, i) => (failed.has(i) ? 0 : cpuSeconds(p.proc.pid!)));
  const etcdCpu0 = cpuSeconds(etcd.pid!);
  const tc = Date.now();
  const changes: { cls: string; id: string; deleted: 0 | 1; n: number }[] = [];
  for (const deleted of [0, 1] as const) for (let k = 0; k < CHANGES; k++) for (const [cls, p] of CLASSES) changes.push({ cls, id: `${p}-${k}`, deleted, n: changes.length % (3 * CHANGES) });
  const pub = procs[0];
  for (const ch of changes) {
    pub.proc.stdin!.write(ch.deleted ? `unpub ${ch.id}\n` : `pub ${ch.id} ${ch.n}\n`);
    await sleep(GAP_MS);
  }
  const key = (ch: { id: string; deleted: number }) => `${ch.id} ${ch.deleted}`;
  const complete = () => changes.every((ch) => receivers.every((p) => p.seen.has(key(ch))));
  for (const end = Date.now() + 30_000; !complete() && Date.now() < end; ) await sleep(200);
  const secs = (Date.now() - tc) / 1000;
  const cpu = procs.reduce((a, p, i) => a + (failed.has(i) ? 0 : cpuSeconds(p.proc.pid!) - cpu0[i]), 0);
  const etcdCpu = cpuSeconds(etcd.pid!) - etcdCpu0;
  const rss = live.map((p) => rssMiB(p.proc.pid!));
  for (const [cls] of CLASSES) {
    for (const [what, d] of [['publish', 0], ['remove', 1]] as const) {
      const xs: number[] = [];
      let missing = 0;
      const via: Record<string, number> = {};
      for (const ch of changes.filter((x) => x.cls === cls && x.deleted === d)) {
        const at = pub.published.get(key(ch));
        for (const p of receivers) {
          const s = p.seen.get(key(ch));
          if (!s || at === undefined) missing++;
          else {
            xs.push(s.at - at);
            via[s.via] = (via[s.via] ?? 0) + 1;
          }
        }
      }
      lines.push(`${cls.padEnd(6)} ${what.padEnd(7)} n=${String(xs.length).padStart(4)} missing ${missing}  p50 ${quantile(xs, 0.5).toFixed(0).padStart(5)} ms  p99 ${quantile(xs, 0.99).toFixed(0).padStart(5)} ms  max ${(xs.length ? Math.max(...xs) : NaN).toFixed(0).padStart(5)} ms  via ${Object.entries(via).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    }
  }
  // Latencies are in `lines` already: a counter that cannot be read costs the bytes line only.
  const read = await Promise.all(tb.hosts.map(readCounters));
  const bytes = read.filter((b, j): b is { gossip: number; etcd: number } => b !== undefined && !failed.has(j));
  const unread = live.length - bytes.length;
  const gossipB = bytes.reduce((a, b) => a + b.gossip, 0);
  const etcdB = bytes.reduce((a, b) => a + b.etcd, 0);
  lines.push(`during the ${secs.toFixed(0)} s of changes: gossip sent ${(gossipB / bytes.length / secs).toFixed(0)} B/node/s; etcd client traffic ${(etcdB / secs / 1024).toFixed(1)} KiB/s in all (agents' requests + etcd's answers)${unread ? ` (counters of ${unread} hosts unread: not in these two)` : ''}; agents' CPU ${(cpu / secs).toFixed(2)} cores (${((cpu / live.length / secs) * 100).toFixed(1)} % each), etcd ${(etcdCpu / secs).toFixed(2)} cores; agent RSS median ${quantile(rss, 0.5).toFixed(0)} MiB`);
} catch (err) {
  // What was measured before the failure is still printed below.
  log(`FAILED: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
  etcd?.kill('SIGKILL');
  await tb.destroy();
  c.stopAll().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
log('RESULT (ms from the publisher\'s call to each other agent\'s table; one run):');
for (const l of lines) log(l);
log(`load average ${load()} (2 cores, shared with other work)`);
