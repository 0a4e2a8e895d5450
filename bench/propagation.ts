/**
 * Endpoint-change propagation with 50 real agents (issue 16): --hosts network namespaces on one
 * bridge, one agent process each (bench/lib/propagation-agent.ts: the agent as run by `agent run`,
 * printing the exact time each `chg-*` record reaches its table), in three modes one after the
 * other in the same run:
 *
 * - gossip: records by gossip (and push-pull), the default;
 * - etcd: `store: {kind: etcd}` against one etcd-server (in host 1's namespace): records go to etcd
 *   and still gossip, so each arrival is whichever path was first (the `via` share is printed);
 * - etcd-only: the same, but the publishing agent queues no record for gossip: etcd's watch alone.
 *
 * Host 1's agent publishes --changes new endpoints and then removes them (a tombstone; in etcd a
 * delete), one change every --gap ms; each other agent's first arrival of that change minus the
 * publish instant is one sample. Prints p50/p99/max per mode and kind of change, the gossip and
 * etcd bytes the hosts sent during the changes (nftables counters) and the agents' CPU seconds.
 *
 *   bash bench/run.sh propagation [--hosts 50] [--changes 10] [--gap 2000] [--modes gossip,etcd,etcd-only]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { queryControl, type AgentStatus } from '@overlay/agent';
import { AgentCluster } from '../test/lib/agent-cluster.js';
import { createTestbed, type TestHost, type Testbed } from '../test/lib/testbed.js';
import { cpuSeconds, rssMiB } from './lib/proc.js';
import { quantile } from './lib/stats.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: number) => {
  const i = argv.indexOf(k);
  const v = i >= 0 ? Number(argv[i + 1]) : d;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${k} wants a positive integer`);
  return v;
};
const N = opt('--hosts', 50);
const CHANGES = opt('--changes', 10);
const GAP_MS = opt('--gap', 2000);
const mi = argv.indexOf('--modes');
const MODES = (mi >= 0 ? argv[mi + 1] : 'gossip,etcd,etcd-only').split(',') as Mode[];
type Mode = 'gossip' | 'etcd' | 'etcd-only';
for (const m of MODES) if (!['gossip', 'etcd', 'etcd-only'].includes(m)) throw new Error(`unknown mode ${m}`);
if (N < 3 || N > 250) throw new Error('--hosts wants 3..250');
const log = (s: string) => process.stdout.write(`[propagation] ${s}\n`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Agents extends AgentCluster {
  etcdUrl = '';
  override config(i: number, endpointIp?: string, seedIndex?: number): string {
    const store = this.etcdUrl ? ['store:', '  kind: etcd', `  endpoints: ["${this.etcdUrl}"]`, '  prefix: /prop/', ''] : [];
    return super.config(i, endpointIp, seedIndex) + store.join('\n');
  }
}

interface Proc {
  proc: ChildProcess;
  socket: string;
  /** `${id} ${deleted}` → first arrival ms and path. */
  seen: Map<string, { at: number; via: string }>;
  published: Map<string, number>;
}

/** nftables byte counters per host: gossip (7946) and etcd client (2379) traffic sent. */
async function installCounters(h: TestHost): Promise<void> {
  const script = ['table inet propbytes {', ' counter gossip_out {}', ' counter etcd_out {}', ' chain output { type filter hook output priority 0; policy accept;',
    '  meta l4proto { tcp, udp } th sport 7946 counter name gossip_out', '  meta l4proto { tcp, udp } th dport 7946 counter name gossip_out',
    '  tcp dport 2379 counter name etcd_out', '  tcp sport 2379 counter name etcd_out', ' }', '}'].join('\n');
  await h.exec('nft', ['-f', '-'], { input: script + '\n' });
}
async function readCounters(h: TestHost): Promise<{ gossip: number; etcd: number }> {
  const out = JSON.parse(await h.exec('nft', ['-j', 'list', 'counters', 'table', 'inet', 'propbytes'])) as { nftables: { counter?: { name: string; bytes: number } }[] };
  const c: Record<string, number> = {};
  for (const o of out.nftables) if (o.counter) c[o.counter.name] = o.counter.bytes;
  return { gossip: c.gossip_out ?? 0, etcd: c.etcd_out ?? 0 };
}

async function startEtcd(h: TestHost, dir: string): Promise<{ url: string; proc: ChildProcess }> {
  const url = `http://${h.underlay}:2379`;
  const peer = `http://${h.underlay}:2380`;
  const proc = h.spawn('etcd', ['--name', 'e', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', url, '--advertise-client-urls', url, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `e=${peer}`, '--log-level', 'error', '--logger', 'zap'], { stdio: 'ignore' });
  for (let t = 0; ; t++) {
    if ((await h.run('env', ['ETCDCTL_API=3', 'etcdctl', '--endpoints', url, '--dial-timeout', '1s', 'endpoint', 'health'])).code === 0) return { url, proc };
    if (t > 150) throw new Error('etcd did not start');
    await sleep(200);
  }
}

async function runMode(tb: Testbed, mode: Mode, dir: string): Promise<string[]> {
  const c = new Agents(tb.hosts, { profile: 'lan' });
  const procs: Proc[] = [];
  let etcd: ChildProcess | undefined;
  const lines: string[] = [];
  try {
    if (mode !== 'gossip') {
      const e = await startEtcd(tb.hosts[0], join(dir, mode));
      etcd = e.proc;
      c.etcdUrl = e.url;
    }
    const t0 = Date.now();
    // Start in waves of 10 (tsx compiles each agent's sources at start; 50 at once starve the box).
    for (let i = 0; i < N; i++) {
      const file = join(c.dir, `a${i}.yaml`);
      writeFileSync(file, c.config(i), { mode: 0o600 });
      const args = ['--conditions=source', '--import', 'tsx', 'bench/lib/propagation-agent.ts', '--config', file, ...(mode === 'etcd-only' && i === 0 ? ['--no-record-gossip'] : [])];
      const proc = tb.hosts[i].spawn('node', args, { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'ignore'] });
      const p: Proc = { proc, socket: join(c.dir, `a${i}.sock`), seen: new Map(), published: new Map() };
      let ready!: () => void;
      const isReady = new Promise<void>((r) => (ready = r));
      createInterface({ input: proc.stdout! }).on('line', (l) => {
        const f = l.split(' ');
        if (f[0] === 'READY') ready();
        else if (f[0] === 'A' || f[0] === 'W') {
          const key = f[0] === 'W' ? `${f[2]} 1` : `${f[2]} ${f[3]}`;
          if (!p.seen.has(key)) p.seen.set(key, { at: Number(f[1]), via: f[0] === 'W' ? 'etcd' : f[4] });
        } else if (f[0] === 'P') p.published.set(`${f[2]} ${f[3]}`, Number(f[1]));
      });
      proc.once('exit', () => ready());
      procs.push(p);
      (p as Proc & { ready: Promise<void> }).ready = isReady;
      if (i % 10 === 9 || i === N - 1) await Promise.all(procs.slice(i - (i % 10)).map((x) => (x as Proc & { ready: Promise<void> }).ready));
    }
    const dead = procs.findIndex((p) => p.proc.exitCode !== null);
    if (dead >= 0) throw new Error(`agent ${dead} exited at start`);
    log(`${mode}: ${N} agents started in ${((Date.now() - t0) / 1000).toFixed(0)} s; load average ${load()}`);
    const statuses = () => Promise.all(procs.map((p) => (queryControl(p.socket) as Promise<AgentStatus>).catch(() => null)));
    for (let t = Date.now(); ; await sleep(1000)) {
      const s = await statuses();
      const ok = s.filter((x) => x !== null && x.counters.programmed === N - 1 && x.members.filter((m) => m.state === 'alive').length === N).length;
      if (ok === N) break;
      if (Date.now() - t > 300_000) throw new Error(`${mode}: only ${ok}/${N} agents converged in 300 s`);
    }
    log(`${mode}: converged (every agent: ${N} alive members, ${N - 1} remote endpoints) ${((Date.now() - t0) / 1000).toFixed(0)} s after the first start`);
    await sleep(5000); // let the join's gossip drain
    for (const h of tb.hosts) await installCounters(h);
    const cpu0 = procs.map((p) => cpuSeconds(p.proc.pid!));
    const etcdCpu0 = etcd ? cpuSeconds(etcd.pid!) : 0;
    const tc = Date.now();
    const changes: { id: string; deleted: 0 | 1 }[] = [];
    for (let k = 0; k < CHANGES; k++) changes.push({ id: `chg-${k}`, deleted: 0 });
    for (let k = 0; k < CHANGES; k++) changes.push({ id: `chg-${k}`, deleted: 1 });
    const pub = procs[0];
    for (const [k, ch] of changes.entries()) {
      pub.proc.stdin!.write(ch.deleted ? `unpub ${ch.id}\n` : `pub ${ch.id} ${k}\n`);
      await sleep(GAP_MS);
    }
    // Wait for stragglers (up to 20 s after the last change).
    const key = (ch: { id: string; deleted: number }) => `${ch.id} ${ch.deleted}`;
    const complete = () => changes.every((ch) => procs.slice(1).every((p) => p.seen.has(key(ch))));
    for (const end = Date.now() + 20_000; !complete() && Date.now() < end; ) await sleep(200);
    const secs = (Date.now() - tc) / 1000;
    const cpu = procs.reduce((a, p, i) => a + cpuSeconds(p.proc.pid!) - cpu0[i], 0);
    const etcdCpu = etcd ? cpuSeconds(etcd.pid!) - etcdCpu0 : 0;
    const bytes = await Promise.all(tb.hosts.map(readCounters));
    const rss = procs.map((p) => rssMiB(p.proc.pid!));
    // Publish instants: the publishing agent's `P` line (its clock read just before the call; all
    // processes share this machine's clock).
    const sample = (deleted: 0 | 1) => {
      const xs: number[] = [];
      let missing = 0;
      const via: Record<string, number> = {};
      for (const ch of changes.filter((x) => x.deleted === deleted)) {
        const at = pub.published.get(key(ch));
        for (const p of procs.slice(1)) {
          const s = p.seen.get(key(ch));
          if (!s || at === undefined) missing++;
          else {
            xs.push(s.at - at);
            via[s.via] = (via[s.via] ?? 0) + 1;
          }
        }
      }
      return { xs, missing, via };
    };
    for (const [what, d] of [['publish', 0], ['remove', 1]] as const) {
      const { xs, missing, via } = sample(d);
      lines.push(`${mode.padEnd(9)} ${what.padEnd(7)} n=${String(xs.length).padStart(4)} missing ${missing}  p50 ${quantile(xs, 0.5).toFixed(0).padStart(5)} ms  p99 ${quantile(xs, 0.99).toFixed(0).padStart(5)} ms  max ${Math.max(...xs).toFixed(0).padStart(5)} ms  via ${Object.entries(via).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    }
    const gossipB = bytes.reduce((a, b) => a + b.gossip, 0);
    const etcdB = bytes.reduce((a, b) => a + b.etcd, 0);
    lines.push(`${mode.padEnd(9)} over ${secs.toFixed(0)} s of changes: gossip ${(gossipB / N / secs).toFixed(0)} B/node/s, etcd client traffic ${(etcdB / N / secs).toFixed(0)} B/node/s (both directions, counted at each end); agents' CPU ${(cpu / secs).toFixed(2)} cores (${(cpu / N / secs * 100).toFixed(1)} % each), etcd ${(etcdCpu / secs).toFixed(2)} cores; agent RSS median ${quantile(rss, 0.5).toFixed(0)} MiB; load average ${load()}`);
    for (const l of lines) log(l);
    return lines;
  } finally {
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await sleep(500);
    etcd?.kill('SIGKILL');
    rmSync(c.dir, { recursive: true, force: true });
    for (const h of tb.hosts) await h.run('nft', ['delete', 'table', 'inet', 'propbytes']);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'overlay-prop-'));
const tb = await createTestbed({ hosts: N, prefix: 'prop' });
const all: string[] = [];
try {
  log(`${N} hosts, ${CHANGES} endpoints published then removed by host 1, one change every ${GAP_MS} ms; modes ${MODES.join(', ')}; load average ${load()}`);
  for (const m of MODES) all.push(...(await runMode(tb, m, dir)));
} finally {
  await tb.destroy();
  rmSync(dir, { recursive: true, force: true });
}
log('RESULT (ms from the publisher\'s publish to each other agent\'s table):');
for (const l of all) log(l);
log(`load average ${load()} (2 cores, shared with other work)`);
