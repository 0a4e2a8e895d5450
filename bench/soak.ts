/**
 * Soak: real agents (LAN profile, WireGuard on) in network namespaces carry back-to-back
 * checksummed TCP transfers across the encrypted overlay (host 1 → host 2, full rate) while an
 * extra agent joins and leaves the cluster every few seconds. Every agent's RSS is sampled from
 * /proc every 10 s, and a preloaded probe (bench/lib/mem-probe.mjs) records the agent's own
 * process.memoryUsage() (JS heap, external, arrayBuffers) beside it. Prints start/end/max/slope
 * per agent after the warm-up, the transfers (sha256 of what was sent and what arrived must
 * match), and exits 1 if a goal is missed: RSS growth < 10 % after warm-up, 0 corrupt transfers.
 * Not part of CI; writes bench/results/soak.md only with --save.
 *
 *   bash bench/run.sh soak [--minutes 30] [--warmup M] [--churn 20] [--mib 512] [--gc] [--snapshots] [--save]
 *
 *   --warmup M    minutes left out of the growth figures (default min(3, minutes / 5))
 *   --churn S     the extra agent joins, stays S/2 s, leaves (SIGTERM and kill -9 in turn), S/2 s
 *   --mib N       bytes per transfer (each transfer is a fresh TCP connection)
 *   --gc          agents run with --expose-gc and each probe sample follows a full GC
 *   --snapshots   heap snapshots of the sending agent after the warm-up and at the end (SIGUSR2),
 *                 kept in the printed temp directory; building one raises the sender's RSS by
 *                 itself, so read growth from a run without it
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestbed, type Testbed } from '../test/lib/testbed.js';
import { AgentCluster } from '../test/lib/agent-cluster.js';
import { tcpTransfer } from '../test/lib/transfer.js';
import { waitReachable } from './lib/iperf.js';
import { anonMappings, rssMiB, type Mapping } from './lib/proc.js';
import { slope } from './lib/stats.js';

const argv = process.argv.slice(2);
function num(k: string, d: number): number {
  const i = argv.indexOf(k);
  if (i < 0) return d;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} wants a positive number, got ${argv[i + 1]}`);
  return v;
}
const MINUTES = num('--minutes', 30);
const WARMUP = num('--warmup', Math.min(3, MINUTES / 5));
const CHURN_S = num('--churn', 20);
const MIB = num('--mib', 512);
const GC = argv.includes('--gc');
const SNAPSHOTS = argv.includes('--snapshots');
const SAVE = argv.includes('--save');
const SAMPLE_MS = 10_000;
const GROWTH_GOAL_PCT = 10;
if (WARMUP >= MINUTES) throw new Error('--warmup must be shorter than --minutes');

let t0 = Date.now();
const elapsedMin = () => (Date.now() - t0) / 60_000;
const log = (s: string) => process.stdout.write(`[soak ${elapsedMin().toFixed(1).padStart(5)} min] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ROLES = ['sender', 'receiver', 'third'];

interface Sample {
  min: number;
  rss: number[];
}
interface Probe {
  t: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const probeDir = mkdtempSync(join(tmpdir(), 'soak-mem-'));
process.env.OVERLAY_MEM_PROBE_DIR = probeDir;
process.env.OVERLAY_MEM_PROBE_MS = String(SAMPLE_MS);
if (GC) process.env.OVERLAY_MEM_PROBE_GC = '1';
const probe = fileURLToPath(new URL('./lib/mem-probe.mjs', import.meta.url));
// The probe files go on interruption too (once: the testbed's own hook then re-raises the signal
// with no listener left, which ends the process); snapshots are kept.
const dropProbes = () => {
  if (!SNAPSHOTS) rmSync(probeDir, { recursive: true, force: true });
};
process.on('exit', dropProbes);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, dropProbes);
const nodeArgs = ['--import', probe, ...(GC ? ['--expose-gc'] : []), ...(SNAPSHOTS ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${probeDir}`] : [])];

const samples: Sample[] = [];
/** The sender's large anonymous mappings (buffer pool slabs) after the warm-up and at the end. */
let slabsWarm: Mapping[] = [];
let slabsEnd: Mapping[] = [];
const transfers = { ok: 0, corrupt: 0, failed: 0, bytes: 0, busyMs: 0, errors: [] as string[] };
const churn = { joins: 0, leaves: 0, failed: 0, errors: [] as string[] };
let deadline = 0;

async function traffic(tb: Testbed, c: AgentCluster): Promise<void> {
  const [a, b] = tb.hosts;
  const bytes = Math.round(MIB * 1024 * 1024);
  for (let k = 0; Date.now() < deadline; k++) {
    const start = Date.now();
    try {
      // Bounded: a transfer that stalls is cut at 5 minutes and counted as failed.
      const r = await tcpTransfer(a, b, c.ip(1), 5300 + (k % 50), bytes, 300_000);
      if (r.sent.sha256 === r.received.sha256 && r.sent.bytes === r.received.bytes && r.sent.bytes === bytes) transfers.ok++;
      else {
        transfers.corrupt++;
        log(`CORRUPT transfer ${k}: sent ${r.sent.bytes} ${r.sent.sha256.slice(0, 16)}, received ${r.received.bytes} ${r.received.sha256.slice(0, 16)}`);
      }
      transfers.bytes += r.received.bytes;
      transfers.busyMs += Date.now() - start;
    } catch (e) {
      transfers.failed++;
      const msg = (e as Error).message.split('\n')[0].slice(0, 200);
      transfers.errors.push(msg);
      log(`transfer ${k} failed: ${msg}`);
      await sleep(2000);
    }
  }
}

async function churner(c: AgentCluster): Promise<void> {
  const half = (CHURN_S * 1000) / 2;
  for (let k = 0; Date.now() + 2 * half < deadline; k++) {
    try {
      await c.start(3);
      churn.joins++;
      await sleep(half);
      await c.procs[3]!.kill(k % 2 ? 'SIGKILL' : 'SIGTERM');
      c.procs[3] = null;
      churn.leaves++;
    } catch (e) {
      churn.failed++;
      churn.errors.push((e as Error).message.split('\n')[0].slice(0, 200));
      await c.procs[3]?.kill('SIGKILL');
      c.procs[3] = null;
    }
    await sleep(half);
  }
}

async function sampler(pids: number[]): Promise<void> {
  while (Date.now() < deadline) {
    samples.push({ min: elapsedMin(), rss: pids.map((p) => rssMiB(p)) });
    if (slabsWarm.length === 0 && elapsedMin() >= WARMUP) slabsWarm = anonMappings(pids[0], 8.5);
    const s = samples[samples.length - 1];
    log(`RSS MiB ${s.rss.map((r, i) => `${ROLES[i]} ${r.toFixed(1)}`).join(', ')}; transfers ${transfers.ok} ok / ${transfers.corrupt} corrupt / ${transfers.failed} failed; churn ${churn.joins} joins`);
    await sleep(Math.min(SAMPLE_MS, Math.max(0, deadline - Date.now())));
  }
}

function probes(pid: number): Probe[] {
  const f = join(probeDir, `${pid}.jsonl`);
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Probe);
}

async function snapshot(pid: number, label: string): Promise<void> {
  const before = new Set(readdirSync(probeDir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 120; i++) {
    await sleep(1000);
    const added = readdirSync(probeDir).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (added.length) {
      log(`heap snapshot (${label}): ${join(probeDir, added[0])}`);
      return;
    }
  }
  log(`heap snapshot (${label}) not written within 2 minutes`);
}

const mib = (b: number) => b / 1048576;
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('soak: needs root (network namespaces, TAP devices)');
  log(`${MINUTES} min, warm-up ${WARMUP} min, churn every ${CHURN_S} s, ${MIB} MiB per transfer${GC ? ', forced GC per probe sample' : ''}; ${cpus().length} CPUs, load ${loadavg()[0].toFixed(1)}`);
  let tb: Testbed | undefined;
  let c: AgentCluster | undefined;
  let pids: number[] = [];
  let finalStatus: Awaited<ReturnType<AgentCluster['statuses']>> = [];
  try {
    tb = await createTestbed({ hosts: 4, prefix: 'soak' });
    c = new AgentCluster(tb.hosts, { profile: 'lan', encrypt: true, nodeArgs });
    for (let i = 0; i < 3; i++) await c.start(i);
    const ms = await c.until((s) => s.slice(0, 3).every((x) => x !== null && x.members.filter((m) => m.state === 'alive').length === 3 && x.counters.programmed >= 2), 60_000);
    log(`3 agents converged in ${ms} ms`);
    await waitReachable(tb.hosts[0], c.ip(1), 30_000);
    pids = c.procs.slice(0, 3).map((p) => p!.proc.pid!);
    t0 = Date.now(); // the soak's minutes count from here
    deadline = t0 + MINUTES * 60_000;
    const snaps = SNAPSHOTS ? sleep(WARMUP * 60_000).then(() => snapshot(pids[0], 'after warm-up')) : Promise.resolve();
    await Promise.all([traffic(tb, c), churner(c), sampler(pids), snaps]);
    slabsEnd = anonMappings(pids[0], 8.5);
    if (SNAPSHOTS) await snapshot(pids[0], 'end');
    finalStatus = await c.statuses();
  } finally {
    await c?.stopAll();
    await tb?.destroy();
  }

  // Figures after the warm-up.
  const after = samples.filter((s) => s.min >= WARMUP);
  const lines: string[] = [];
  const out = (s = '') => {
    lines.push(s);
    process.stdout.write(s + '\n');
  };
  out();
  out(`Soak ${new Date(t0).toISOString()}: ${MINUTES} min (warm-up ${WARMUP} min left out), ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  out();
  out('| agent | RSS start, MiB | end | max | slope, MiB/min | growth start→end |');
  out('| --- | --- | --- | --- | --- | --- |');
  let worstGrowth = -Infinity;
  for (let i = 0; i < 3; i++) {
    const ys = after.map((s) => s.rss[i]).filter(Number.isFinite);
    const xs = after.filter((s) => Number.isFinite(s.rss[i])).map((s) => s.min);
    const start = ys[0];
    const end = ys[ys.length - 1];
    const growth = ((end - start) / start) * 100;
    if (Number.isFinite(growth)) worstGrowth = Math.max(worstGrowth, growth);
    out(`| ${ROLES[i]} | ${f1(start)} | ${f1(end)} | ${f1(Math.max(...ys))} | ${ys.length > 1 ? slope(xs, ys).toFixed(3) : 'n/a'} | ${f1(growth)} % |`);
  }
  out();
  out(`Inside the agents (process.memoryUsage, MiB, first and last sample after the warm-up${GC ? ', each after a full GC' : ''}):`);
  out();
  out('| agent | heapUsed | heapTotal | external | arrayBuffers | rss | slope heapUsed / external, MiB/min |');
  out('| --- | --- | --- | --- | --- | --- | --- |');
  for (let i = 0; i < 3; i++) {
    const p = probes(pids[i]).filter((x) => (x.t - t0) / 60_000 >= WARMUP);
    if (p.length === 0) {
      out(`| ${ROLES[i]} | no probe samples | | | | | |`);
      continue;
    }
    const [a, z] = [p[0], p[p.length - 1]];
    const pair = (k: keyof Probe) => `${f1(mib(a[k]))} → ${f1(mib(z[k]))}`;
    const mins = p.map((x) => (x.t - t0) / 60_000);
    const trend = (k: keyof Probe) => slope(mins, p.map((x) => mib(x[k]))).toFixed(3);
    out(`| ${ROLES[i]} | ${pair('heapUsed')} | ${pair('heapTotal')} | ${pair('external')} | ${pair('arrayBuffers')} | ${pair('rss')} | ${trend('heapUsed')} / ${trend('external')} |`);
  }
  out();
  out(`Sender's anonymous mappings > 8.5 MiB (thread stacks are 8) (the buffer pools' slabs: counted whole in arrayBuffers, resident page by page as slots are first used): ${
    slabsEnd.map((m) => `${f1(m.sizeMiB)} MiB, resident ${f1(slabsWarm.find((w) => w.range === m.range)?.rssMiB ?? NaN)} → ${f1(m.rssMiB)} MiB`).join('; ') || 'none'
  }.`);
  const gbit = (transfers.bytes * 8) / 1e9;
  out();
  out(`Transfers: ${transfers.ok} ok, ${transfers.corrupt} corrupt, ${transfers.failed} failed; ${(transfers.bytes / 2 ** 30).toFixed(1)} GiB checksummed, ${(gbit / (transfers.busyMs / 1000)).toFixed(2)} Gbit/s while transferring (tsx start-up of both ends included).`);
  out(`Churn: ${churn.joins} joins, ${churn.leaves} leaves (SIGTERM and kill -9 in turn), ${churn.failed} failed cycles.`);
  const drops = finalStatus[0] ? Object.entries(finalStatus[0].drops).filter(([, n]) => n > 0) : [];
  out(`Sender's gossip drops at the end: ${drops.length ? drops.map(([k, n]) => `${k}=${n}`).join(' ') : 'none'}.`);
  if (transfers.errors.length) out(`Transfer errors: ${[...new Set(transfers.errors)].slice(0, 3).join(' | ')}`);
  if (churn.errors.length) out(`Churn errors: ${[...new Set(churn.errors)].slice(0, 3).join(' | ')}`);
  if (SNAPSHOTS) out(`Heap snapshots are in ${probeDir} (remove when done). Building the one after warm-up raised the sender's RSS by itself: read growth from a run without --snapshots.`);
  const growthOk = worstGrowth < GROWTH_GOAL_PCT;
  const corruptOk = transfers.corrupt === 0 && transfers.ok > 0;
  out(`Goals: RSS growth after warm-up < ${GROWTH_GOAL_PCT} % ${growthOk ? 'met' : 'MISSED'} (worst ${worstGrowth.toFixed(1)} %); 0 corrupt transfers ${corruptOk ? 'met' : 'MISSED'}.`);
  if (SAVE) {
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    writeFileSync(new URL('./results/soak.md', import.meta.url), lines.join('\n').trimStart() + '\n');
    log('wrote bench/results/soak.md');
  }
  if (!SNAPSHOTS) rmSync(probeDir, { recursive: true, force: true });
  return growthOk && corruptOk ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`soak failed: ${(err as Error).stack ?? err}\n`);
    rmSync(probeDir, { recursive: true, force: true });
    process.exit(1);
  },
);
