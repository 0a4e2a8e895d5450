/**
 * Where the agent's time goes under load. Two network-namespace hosts run the real agent
 * (`agent --config`, WireGuard encryption on, LAN profile); iperf3 drives one TCP stream across
 * the overlay. Two phases on fresh testbeds, same run:
 *   A. unprofiled agents: throughput, CPU s per Gbit (user/sys split per thread), RSS idle and load;
 *   B. agents under `node --cpu-prof` (and `perf record -e cpu-clock` where perf works): the V8
 *      profile of each agent, summarised here (self time per function, file and category), plus
 *      perf's split between kernel, node/V8, libsodium, our addon and JIT code.
 * Agents stop with SIGTERM (graceful leave, exit 0), which is what makes Node write the profile.
 * Writes bench/results/profile-agent.md.
 *
 *   node --conditions=source --import tsx bench/profile-agent.ts [--seconds 8]
 */
import { saveResult } from './lib/save.js';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestbed, run, type Testbed } from '../test/lib/testbed.js';
import { AgentCluster } from '../test/lib/agent-cluster.js';
import { iperfServer, tcp, waitReachable } from './lib/iperf.js';
import { rssMiB } from './lib/proc.js';
import { median } from './lib/stats.js';

const argv = process.argv.slice(2);
const SECONDS = Number(argv[argv.indexOf('--seconds') + 1] || 8) || 8;
const TICK = 100; // USER_HZ
const log = (s: string) => process.stdout.write(`[profile] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// /proc: CPU per thread, user and system time apart (system time ≈ syscalls and the kernel work
// they trigger: TAP, UDP, routing).

interface ThreadCpu {
  comm: string;
  user: number;
  sys: number;
  /** From schedstat: ns on a CPU, ns runnable but waiting for a CPU. */
  runNs: number;
  waitNs: number;
}

function threadCpu(pid: number): Map<number, ThreadCpu> {
  const out = new Map<number, ThreadCpu>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const [runNs, waitNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      out.set(Number(tid), { comm, user: Number(f[11]) / TICK, sys: Number(f[12]) / TICK, runNs, waitNs });
    } catch {
      // thread ended
    }
  }
  return out;
}

/** CPU spent between two snapshots, grouped by thread name (V8 workers share one name). */
function cpuDelta(pid: number, a: Map<number, ThreadCpu>, b: Map<number, ThreadCpu>): Map<string, { user: number; sys: number }> {
  const by = new Map<string, { user: number; sys: number }>();
  for (const [tid, t1] of b) {
    const t0 = a.get(tid) ?? { user: 0, sys: 0 };
    const name = tid === pid ? 'main (event loop)' : t1.comm.trim();
    const e = by.get(name) ?? { user: 0, sys: 0 };
    e.user += t1.user - t0.user;
    e.sys += t1.sys - t0.sys;
    by.set(name, e);
  }
  return by;
}

// ---------------------------------------------------------------------------------------------
// .cpuprofile summary.

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const META = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);
const OURS = ['dataplane', 'crypto', 'native', 'agent'];

function shortUrl(url: string): string {
  const m = /\/packages\/([^/]+)\/(.*)$/.exec(url);
  if (m) return `${m[1]}/${m[2]}`;
  const nm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
  if (nm) return `${nm[1]}/${nm[2].split('/').pop()}`;
  return url.replace(/^file:\/\//, '');
}

/** Which bucket a JS frame's code belongs to. */
function bucketOfUrl(url: string): string {
  const m = /\/packages\/([^/]+)\//.exec(url);
  if (m && OURS.includes(m[1])) return `ours: ${m[1]}`;
  if (url.startsWith('node:') || /^(internal|events|net|dgram|stream|buffer)\b/.test(url)) return 'node internals (JS)';
  const nm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return `dep: ${nm[1]}`;
  return url ? `other: ${shortUrl(url)}` : '';
}

interface Summary {
  totalMs: number;
  /** ms per category: (idle), (program), (garbage collector), ours: X, node internals, native ← caller, deps */
  categories: Map<string, number>;
  functions: Map<string, number>;
  files: Map<string, number>;
}

function add(m: Map<string, number>, k: string, v: number): void {
  m.set(k, (m.get(k) ?? 0) + v);
}

/**
 * Self time per node: a sample lasts until the next one (as DevTools counts it). Frames with no
 * URL that are not V8's meta nodes are native code called from JS (our addon, libsodium through
 * sodium-native, Node's C++ bindings, V8 builtins): they are charged to "native" and named with
 * the nearest JS caller so a syscall shows under the function that made it.
 */
function summarise(p: CpuProfile, window?: [number, number]): Summary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i];
    if (window && (t < window[0] || t > window[1])) continue;
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1] : 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + Math.max(0, dt) / 1000);
  }
  const s: Summary = { totalMs: 0, categories: new Map(), functions: new Map(), files: new Map() };
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    s.totalMs += ms;
    if (META.has(functionName)) {
      add(s.categories, functionName, ms);
      add(s.functions, functionName, ms);
      add(s.files, functionName, ms);
      continue;
    }
    const name = functionName || '(anonymous)';
    if (url) {
      add(s.categories, bucketOfUrl(url), ms);
      // tsx-compiled sources report line 0 for every function: name and file only then.
      add(s.functions, `${name} ${shortUrl(url)}${lineNumber > 0 ? `:${lineNumber + 1}` : ''}`, ms);
      add(s.files, shortUrl(url), ms);
      continue;
    }
    // Native: find the first ancestor with a URL.
    let up = parent.get(id);
    while (up !== undefined && !byId.get(up)!.callFrame.url) up = parent.get(up);
    const caller = up === undefined ? null : byId.get(up)!.callFrame;
    const callerBucket = caller ? bucketOfUrl(caller.url).replace(/^ours: /, '') : 'V8';
    add(s.categories, `native ← ${callerBucket}`, ms);
    add(s.functions, `${name} [native] ← ${caller ? `${caller.functionName || '(anonymous)'} ${shortUrl(caller.url)}` : '?'}`, ms);
    add(s.files, `[native] ← ${caller ? shortUrl(caller.url) : '?'}`, ms);
  }
  return s;
}

function top(m: Map<string, number>, n: number): [string, number][] {
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
}

const pct = (x: number, total: number) => (total > 0 ? `${((x / total) * 100).toFixed(1)} %` : '–');

// ---------------------------------------------------------------------------------------------
// perf (software clock only: this VM has no hardware counters).

interface PerfInfo {
  hwCounters: string;
  available: boolean;
  note?: string;
}

async function perfInfo(): Promise<PerfInfo> {
  const hw = await run('perf', ['stat', '-e', 'instructions', 'true'], { timeoutMs: 10_000 });
  if (hw.code !== 0 && /not found|ENOENT/i.test(hw.stderr)) return { available: false, hwCounters: 'perf not installed' };
  const hwCounters = /not supported/.test(hw.stderr) ? 'not supported (no hardware PMU in this VM)' : /instructions/.test(hw.stderr) ? 'supported' : `failed: ${hw.stderr.trim().split('\n').pop()}`;
  const sw = await run('perf', ['stat', '-e', 'task-clock', 'true'], { timeoutMs: 10_000 });
  return { available: sw.code === 0 && /task-clock/.test(sw.stderr), hwCounters };
}

interface PerfRun {
  label: string;
  stat: Map<string, number>;
  dso: [string, number][];
  comm: [string, number][];
  sym: [string, number][];
  /** Kernel entry points with their callees (inclusive share), e.g. __x64_sys_sendmmsg. */
  syscalls: [string, number][];
}

/** perf report --stdio lines "  12.34%  name..." → [name, pct]. */
function parseReport(out: string): [string, number][] {
  const rows: [string, number][] = [];
  for (const line of out.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(.+?)\s*$/.exec(line);
    if (m) rows.push([m[2].replace(/\s+/g, ' '), Number(m[1])]);
  }
  return rows;
}

async function perfProfile(pid: number, label: string, seconds: number, dir: string): Promise<PerfRun> {
  const data = join(dir, `perf-${pid}.data`);
  const [rec, st] = await Promise.all([
    run('perf', ['record', '-q', '-g', '-e', 'cpu-clock', '-F', '999', '-p', String(pid), '-o', data, '--', 'sleep', String(seconds)], { timeoutMs: (seconds + 20) * 1000 }),
    run('perf', ['stat', '-x', ',', '-e', 'task-clock,context-switches,cpu-migrations,page-faults', '-p', String(pid), '--', 'sleep', String(seconds)], { timeoutMs: (seconds + 20) * 1000 }),
  ]);
  const stat = new Map<string, number>();
  for (const line of st.stderr.split('\n')) {
    const f = line.split(',');
    if (f.length > 3 && f[0] && !Number.isNaN(Number(f[0]))) stat.set(f[2], Number(f[0]));
  }
  const res: PerfRun = { label, stat, dso: [], comm: [], sym: [], syscalls: [] };
  if (rec.code !== 0 || !existsSync(data)) return res;
  const rep = (sort: string) => run('perf', ['report', '-i', data, '--stdio', '-g', 'none', '--no-children', '--sort', sort], { timeoutMs: 60_000 });
  const inclusive = await run('perf', ['report', '-i', data, '--stdio', '-g', 'none', '--children', '--sort', 'sym'], { timeoutMs: 60_000 });
  for (const line of inclusive.stdout.split('\n')) {
    const m = /^\s+([\d.]+)%\s+[\d.]+%\s+\[k\] (do_syscall_64|__x64_sys_\w+|__do_sys_\w+|do_writev|ksys_write|ksys_read|net_rx_action|__do_softirq)\s*$/.exec(line);
    if (m && !res.syscalls.some(([k]) => k.startsWith(m[2]))) res.syscalls.push([m[2] === 'do_syscall_64' ? 'do_syscall_64 (all syscalls)' : m[2], Number(m[1])]);
  }
  res.dso = parseReport((await rep('dso')).stdout);
  res.comm = parseReport((await rep('comm')).stdout);
  res.sym = parseReport((await rep('dso,sym')).stdout);
  return res;
}

// ---------------------------------------------------------------------------------------------
// One phase: testbed, agents, convergence, idle window, load window, graceful stop.

interface Phase {
  gbps: number;
  retransmits: number;
  rssIdle: number[];
  rssLoadMax: number[];
  rssLoadMedian: number[];
  cpuIdle: Map<string, { user: number; sys: number }>[];
  cpuLoad: Map<string, { user: number; sys: number }>[];
  exitCodes: (number | null)[];
  pids: number[];
  perf: PerfRun[];
  /** Load window on CLOCK_MONOTONIC in µs (V8 profile timestamps use the same clock). */
  window: [number, number];
  /** Main thread over the load window: share on a CPU, share runnable but waiting for one. */
  mainSched: { run: number; wait: number }[];
}

const monoUs = () => Number(process.hrtime.bigint() / 1000n);

async function phase(name: string, nodeArgs: string[], withPerf: boolean, workDir: string): Promise<Phase> {
  let tb: Testbed | undefined;
  let c: AgentCluster | undefined;
  let stopServer: (() => void) | undefined;
  try {
    tb = await createTestbed({ hosts: 2, prefix: 'prof' });
    c = new AgentCluster(tb.hosts, { profile: 'lan', encrypt: true, nodeArgs });
    await c.start(0);
    await c.start(1);
    const t = await c.until((s) => s.every((x) => x !== null && x.members.filter((m) => m.state === 'alive').length === 2 && x.counters.programmed === 1), 30_000);
    log(`${name}: agents converged in ${t} ms`);
    const [a, b] = tb.hosts;
    const pids = c.procs.map((p) => p!.proc.pid!);
    await waitReachable(a, c.ip(1));
    stopServer = await iperfServer(b);
    await sleep(1000);
    // Idle: gossip only.
    const i0 = pids.map(threadCpu);
    await sleep(3000);
    const i1 = pids.map(threadCpu);
    const rssIdle = pids.map(rssMiB);
    // Load: one TCP stream host 1 → host 2 across the encrypted overlay.
    const rss: number[][] = pids.map(() => []);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        pids.forEach((p, i) => rss[i].push(rssMiB(p)));
        await sleep(250);
      }
    })();
    const l0 = pids.map(threadCpu);
    const w0 = monoUs();
    const perfP = withPerf ? sleep(1000).then(() => Promise.all(pids.map((p, i) => perfProfile(p, `agent ${i + 1} (${i === 0 ? 'sender: TAP → encrypt → UDP' : 'receiver: UDP → decrypt → TAP'})`, SECONDS - 2, workDir)))) : Promise.resolve([]);
    const r = await tcp(a, c.ip(1), { seconds: SECONDS, streams: 1 });
    const l1 = pids.map(threadCpu);
    const w1 = monoUs();
    sampling = false;
    await sampler;
    const perf = await perfP;
    log(`${name}: ${r.gbps.toFixed(3)} Gbit/s, ${r.retransmits} retransmits`);
    stopServer();
    stopServer = undefined;
    // Graceful stop: SIGTERM → leave → exit 0, which writes the .cpuprofile.
    const exitCodes = await Promise.all(
      c.procs.map((p) => Promise.race([p!.kill('SIGTERM'), sleep(15_000).then(() => 'timeout' as const)])),
    );
    if (exitCodes.some((x) => x === 'timeout')) throw new Error(`${name}: an agent did not exit within 15 s of SIGTERM`);
    return {
      gbps: r.gbps,
      retransmits: r.retransmits,
      rssIdle,
      rssLoadMax: rss.map((x) => Math.max(...x.filter(Number.isFinite))),
      rssLoadMedian: rss.map((x) => median(x.filter(Number.isFinite))),
      cpuIdle: pids.map((p, i) => cpuDelta(p, i0[i], i1[i])),
      cpuLoad: pids.map((p, i) => cpuDelta(p, l0[i], l1[i])),
      exitCodes: exitCodes as (number | null)[],
      pids,
      perf,
      window: [w0, w1],
      mainSched: pids.map((p, i) => {
        const a0 = l0[i].get(p)!;
        const a1 = l1[i].get(p)!;
        const span = (w1 - w0) * 1000;
        return { run: (a1.runNs - a0.runNs) / span, wait: (a1.waitNs - a0.waitNs) / span };
      }),
    };
  } finally {
    stopServer?.();
    await c?.stopAll().catch(() => {});
    await tb?.destroy().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------

function sumCpu(m: Map<string, { user: number; sys: number }>): { user: number; sys: number } {
  let user = 0;
  let sys = 0;
  for (const v of m.values()) {
    user += v.user;
    sys += v.sys;
  }
  return { user, sys };
}

function mdTable(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces)');
  // Wait (bounded) for a quieter machine: other benchmarks share these cores.
  for (let i = 0; i < 12 && loadavg()[0] > 2.5; i++) {
    log(`load average ${loadavg()[0].toFixed(2)}; waiting for < 2.5 (${i + 1}/12)`);
    await sleep(10_000);
  }
  const loadStart = loadavg().map((x) => x.toFixed(2)).join(', ');
  log(`load average at start: ${loadStart}`);
  const work = mkdtempSync(join(tmpdir(), 'profile-agent-'));
  const profDir = join(work, 'cpuprof');
  mkdirSync(profDir);
  try {
    const pi = await perfInfo();
    log(`perf: hardware counters ${pi.hwCounters}; software clock ${pi.available ? 'works' : 'unavailable'}`);

    log('phase A: unprofiled agents');
    const A = await phase('A (unprofiled)', [], false, work);
    log('phase B: agents under --cpu-prof' + (pi.available ? ' and perf record' : ''));
    const B = await phase('B (profiled)', ['--cpu-prof', '--cpu-prof-dir', profDir], pi.available, work);
    const loadEnd = loadavg().map((x) => x.toFixed(2)).join(', ');

    // Profiles: CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile; thread 0 is the main thread.
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    const profiles: { agent: number; tid: number; s: Summary }[] = [];
    let windowNote = '';
    for (const f of files) {
      const [, , , pid, tid] = f.split('.');
      const agent = B.pids.indexOf(Number(pid));
      const prof = JSON.parse(readFileSync(join(profDir, f), 'utf8')) as CpuProfile;
      // Only the load window; a profile whose clock does not overlap it is taken whole (and said).
      const inWindow = prof.startTime < B.window[1] && prof.endTime > B.window[0];
      if (!inWindow) windowNote = ' (the profile clock did not match the load window: whole profile, start-up included)';
      profiles.push({ agent, tid: Number(tid), s: summarise(prof, inWindow ? B.window : undefined) });
    }
    const mains = profiles.filter((p) => p.agent >= 0 && p.tid === 0).sort((a, b) => a.agent - b.agent);
    if (mains.length !== 2) throw new Error(`expected 2 main-thread profiles, found ${files.join(', ') || 'none'} (exit codes ${B.exitCodes.join(', ')})`);

    const out: string[] = [];
    const say = (s = '') => {
      out.push(s);
      process.stdout.write(s + '\n');
    };
    say('## CPU profile of the agent under load (`bench/profile-agent.ts`)');
    say();
    say(`Run ${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model.trim()}, node ${process.version}; load average (1, 5, 15 min) ${loadStart} at start, ${loadEnd} at end — the machine is shared, so absolute numbers move; the shares are what to read.`);
    const head = (await run('git', ['rev-parse', '--short', 'HEAD'])).stdout.trim();
    const dirty = (await run('git', ['status', '--porcelain', '--', 'packages/*/src', 'packages/*/csrc'])).stdout.trim().split('\n').filter(Boolean).length;
    say(`Sources: commit ${head}${dirty ? ` plus ${dirty} uncommitted source file(s) of other work in progress` : ''}.`);
    say(`Two namespace hosts, real agents (\`agent --config\`, LAN profile, WireGuard encryption, TAP with TSO/GRO), one iperf3 TCP stream for ${SECONDS} s, host 1 → host 2 over the overlay.`);
    say();
    say('### Throughput, CPU and memory (same run)');
    say();
    const cpuRow = (label: string, P: Phase, which: 'cpuIdle' | 'cpuLoad', secs: number) =>
      P[which].map((m, i) => {
        const t = sumCpu(m);
        return [`${label}, agent ${i + 1}`, ((t.user + t.sys) / secs * 100).toFixed(0) + ' %', pct(t.user, t.user + t.sys), pct(t.sys, t.user + t.sys)];
      });
    say(
      mdTable(
        ['phase', 'TCP Gbit/s', 'agent CPU s per Gbit (both)', 'RSS idle MiB (a1 / a2)', 'RSS under load MiB, median / max (a1 / a2)', 'exit on SIGTERM'],
        [A, B].map((P, k) => {
          const t = P.cpuLoad.reduce((s, m) => s + sumCpu(m).user + sumCpu(m).sys, 0);
          return [
            k === 0 ? 'A: unprofiled' : `B: --cpu-prof${B.perf.length ? ' + perf record' : ''}`,
            P.gbps.toFixed(3),
            (t / (P.gbps * SECONDS)).toFixed(2),
            P.rssIdle.map((x) => x.toFixed(0)).join(' / '),
            P.rssLoadMedian.map((x, i) => `${x.toFixed(0)} / ${P.rssLoadMax[i].toFixed(0)}`).join(' ; '),
            P.exitCodes.join(', '),
          ];
        }),
      ),
    );
    say();
    say(`Profiling cost: B moved ${(B.gbps / A.gbps * 100).toFixed(0)} % of A's throughput.`);
    say();
    say('CPU per agent process (from /proc, one core = 100 %; user = JS, V8, libsodium, our addon\'s own code; system = the kernel on our behalf: syscalls, TAP, UDP, routing):');
    say();
    say(mdTable(['phase, process', 'CPU', 'user', 'system'], [...cpuRow('A idle (gossip only)', A, 'cpuIdle', 3), ...cpuRow('A load', A, 'cpuLoad', SECONDS), ...cpuRow('B load', B, 'cpuLoad', SECONDS)]));
    say();
    say('Threads under load (phase A, CPU seconds over the load window):');
    say();
    const threadNames = [...new Set(A.cpuLoad.flatMap((m) => [...m.keys()]))];
    say(
      mdTable(
        ['thread', ...A.cpuLoad.map((_, i) => `agent ${i + 1} user / sys s`)],
        threadNames
          .map((n) => [n, ...A.cpuLoad.map((m) => { const v = m.get(n); return v ? `${v.user.toFixed(2)} / ${v.sys.toFixed(2)}` : '–'; })])
          .filter((r) => r.slice(1).some((x) => x !== '0.00 / 0.00' && x !== '–')),
      ),
    );
    say();
    say('Main thread over the load window (/proc/PID/schedstat): on a CPU / runnable but waiting for a CPU / asleep (in epoll, nothing to do):');
    say();
    say(mdTable(['phase, process', 'on CPU', 'waiting for CPU', 'asleep'], [A, B].flatMap((P, k) => P.mainSched.map((m, i) => [`${k ? 'B' : 'A'} load, agent ${i + 1}`, pct(m.run, 1), pct(m.wait, 1), pct(Math.max(0, 1 - m.run - m.wait), 1)]))));
    say();
    say(`### V8 CPU profile (main thread, self time over the ${SECONDS} s load window${windowNote}; sampling every 1 ms)`);
    say();
    say('Categories: `(idle)` = the event loop waiting in epoll for work; `(program)` = V8/Node native work not attributed to a JS frame (includes the libuv poll callbacks entering JS); `native ← X` = C++ called from JS in X (our addon\'s batched recvmmsg/sendmmsg/TAP read/write, libsodium AEAD through sodium-native, Node bindings).');
    say();
    const cats = [...new Set(mains.flatMap((p) => [...p.s.categories.keys()]))].sort((x, y) => mains.reduce((s, p) => s + (p.s.categories.get(y) ?? 0) / p.s.totalMs, 0) - mains.reduce((s, p) => s + (p.s.categories.get(x) ?? 0) / p.s.totalMs, 0));
    say(mdTable(['category', ...mains.map((p) => `agent ${p.agent + 1} share`)], cats.map((k) => [k, ...mains.map((p) => pct(p.s.categories.get(k) ?? 0, p.s.totalMs))])));
    say();
    for (const p of mains) {
      say(`Top 15 functions, agent ${p.agent + 1} (${p.agent === 0 ? 'sender' : 'receiver'}; ${(p.s.totalMs / 1000).toFixed(1)} s profiled):`);
      say();
      say(mdTable(['self ms', 'share', 'function'], top(p.s.functions, 15).map(([k, v]) => [v.toFixed(0), pct(v, p.s.totalMs), `\`${k.replace(/\|/g, '\\|')}\``])));
      say();
    }
    for (const p of mains) {
      say(`Top 15 files, agent ${p.agent + 1}:`);
      say();
      say(mdTable(['self ms', 'share', 'file'], top(p.s.files, 15).map(([k, v]) => [v.toFixed(0), pct(v, p.s.totalMs), `\`${k}\``])));
      say();
    }
    const others = profiles.filter((p) => !(p.agent >= 0 && p.tid === 0));
    if (others.length) say(`Other threads' profiles (e.g. tsx's module-loader thread): ${others.map((p) => `agent ${p.agent + 1} thread ${p.tid} ${pct(p.s.totalMs - (p.s.categories.get('(idle)') ?? 0), p.s.totalMs)} busy`).join('; ')}.`);
    say();
    say('### perf');
    say();
    say(`\`perf stat -e instructions true\`: hardware counters ${pi.hwCounters}. Software events (cpu-clock sampling at 999 Hz, task-clock, context switches) ${pi.available ? `work and were recorded for ${SECONDS - 2} s in the middle of phase B` : 'do not work either'}.`);
    say();
    for (const r of B.perf) {
      const s = r.stat;
      const secs = SECONDS - 2;
      say(`${r.label}: task-clock ${((s.get('task-clock') ?? NaN) / secs / 10).toFixed(0)} % of a core, ${((s.get('context-switches') ?? NaN) / secs).toFixed(0)} context switches/s, ${((s.get('page-faults') ?? NaN) / secs).toFixed(0)} page faults/s.`);
      say();
      say(mdTable(['shared object', 'share of samples'], r.dso.slice(0, 8).map(([k, v]) => [`\`${k}\``, `${v.toFixed(1)} %`])));
      say();
      say(mdTable(['kernel entry (inclusive of callees)', 'share of samples'], r.syscalls.slice(0, 10).map(([k, v]) => [`\`${k}\``, `${v.toFixed(1)} %`])));
      say();
      say(mdTable(['thread', 'share of samples'], r.comm.slice(0, 6).map(([k, v]) => [`\`${k}\``, `${v.toFixed(1)} %`])));
      say();
      say(mdTable(['object, symbol', 'share of samples'], r.sym.slice(0, 15).map(([k, v]) => [`\`${(k.length > 90 ? k.slice(0, 87) + '...' : k).replace(/\|/g, '\\|')}\``, `${v.toFixed(1)} %`])));
      say();
    }
    // The written reading is kept across runs: it lives between markers and is edited by hand.
    const RESULT = 'bench/results/profile-agent.md';
    const prev = existsSync(RESULT) ? readFileSync(RESULT, 'utf8') : '';
    const kept = /<!-- reading -->[\s\S]*?<!-- \/reading -->/.exec(prev)?.[0] ?? '<!-- reading -->\n### Reading\n\n(to be written from the tables above)\n<!-- /reading -->';
    saveResult(RESULT, out.join('\n') + '\n' + kept + '\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`profile-agent: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
