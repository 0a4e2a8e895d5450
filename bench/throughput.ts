/**
 * Throughput comparison, one run, one machine: our overlay beside the veth underlay, the Linux
 * kernel's VXLAN, Debian's wireguard-go and (with --nebula) nebula, between two network-namespace
 * hosts. Prints a table with ratios to kernel VXLAN and wireguard-go, writes JSON and an SVG chart
 * to bench/results/. Our overlay is openHost (@overlay/host), the agent's host assembly.
 *
 * Rounds interleave the paths (A B C … A B C …, default 5) so drift in the machine's load hits
 * every path alike; the table gives median and spread, a second table every run, and a warning
 * marks a spread over 20 % or a load average over 1 before a round.
 *
 *   bash bench/run.sh [--quick] [--nebula] [--rounds N] [--seconds S] [--only id,id] [--save]
 */
import { saveResult } from './lib/save.js';
import { cpus, loadavg } from 'node:os';
import { createTestbed, type Testbed } from '../test/lib/testbed.js';
import { iperfServer, ping, tcp, udp, waitReachable, type PingResult, type UdpResult } from './lib/iperf.js';
import { kernelVxlan, nebula, OUR_HOST, ourEncrypted, ourEncryptedPolicy, ourPlain, ourPlainNoOffload, ourPlainWorkers, underlay, wireguardGo, type PathSpec } from './lib/paths.js';
import { cpuSeconds, rssMiB } from './lib/proc.js';
import { median, spreadPct } from './lib/stats.js';
import { throughputChart } from './lib/chart.js';

interface Series {
  runs: number[];
  median: number;
  spreadPct: number;
}

interface PathResult {
  id: string;
  label: string;
  tcp1: Series;
  tcp4: Series;
  /** Per-round UDP results; the table shows the round with the median delivered pps. */
  udp64Runs: UdpResult[];
  udp1400Runs: UdpResult[];
  udp64?: UdpResult;
  udp1400?: UdpResult;
  ping?: PingResult;
  /** CPU seconds our processes spent per gigabit moved (single-stream TCP runs, all rounds). */
  cpuSecPerGbit?: number;
  rssIdleMiB?: number;
  rssLoadMiB?: number;
  /** Load average (1 min) before each round of this path. */
  loadBefore: number[];
  error?: string;
  cpu: number;
  gbit: number;
}

function args() {
  const a = process.argv.slice(2);
  const get = (k: string) => {
    const i = a.indexOf(k);
    return i >= 0 ? a[i + 1] : undefined;
  };
  const quick = a.includes('--quick');
  return {
    quick,
    nebula: a.includes('--nebula'),
    rounds: Number(get('--rounds') ?? get('--reps') ?? (quick ? 1 : 5)),
    seconds: Number(get('--seconds') ?? (quick ? 3 : 5)),
    only: get('--only')?.split(','),
  };
}

const log = (s: string) => process.stdout.write(`[bench] ${s}\n`);
const SPREAD_WARN_PCT = 20;
const LOAD_WARN = 1;

function fresh(spec: PathSpec): PathResult {
  const series = (): Series => ({ runs: [], median: NaN, spreadPct: 0 });
  return { id: spec.id, label: spec.label, tcp1: series(), tcp4: series(), udp64Runs: [], udp1400Runs: [], loadBefore: [], cpu: 0, gbit: 0 };
}

/**
 * One round of one path: bring it up, measure each figure once, tear it down. Rounds visit the
 * paths in turn (A B C … A B C …), so drift in the machine's load hits every path alike.
 */
async function round(tb: Testbed, spec: PathSpec, r: PathResult, o: ReturnType<typeof args>, n: number): Promise<void> {
  const [a, b] = tb.hosts;
  const load = loadavg()[0];
  r.loadBefore.push(load);
  if (load > LOAD_WARN) log(`WARNING: load average ${load.toFixed(2)} > ${LOAD_WARN} before ${spec.label} round ${n}: figures of this round are suspect`);
  let path;
  try {
    path = await spec.up(tb);
  } catch (e) {
    r.error = `setup: ${(e as Error).message.split('\n')[0]}`;
    log(`${spec.label}: FAILED: ${r.error}`);
    return;
  }
  const stopServer = await iperfServer(b);
  try {
    await waitReachable(a, path.dst);
    // Let the path settle (handshakes, ARP) before timing it.
    await new Promise((res) => setTimeout(res, 500));
    if (n === 1) {
      if (path.pids.length) r.rssIdleMiB = path.pids.reduce((s, p) => s + rssMiB(p), 0);
      r.ping = await ping(a, path.dst, o.quick ? 50 : 200);
      log(`${spec.label}: ping median ${r.ping.medianMs.toFixed(3)} ms, p99 ${r.ping.p99Ms.toFixed(3)} ms`);
    }
    const c0 = path.pids.reduce((s, p) => s + cpuSeconds(p), 0);
    const t1 = await tcp(a, path.dst, { seconds: o.seconds, streams: 1 });
    const c1 = path.pids.reduce((s, p) => s + cpuSeconds(p), 0);
    if (n === 1 && path.pids.length) r.rssLoadMiB = path.pids.reduce((s, p) => s + rssMiB(p), 0);
    r.cpu += c1 - c0;
    r.gbit += t1.gbps * o.seconds;
    r.tcp1.runs.push(t1.gbps);
    const t4 = await tcp(a, path.dst, { seconds: o.seconds, streams: 4 });
    r.tcp4.runs.push(t4.gbps);
    const u64 = await udp(a, path.dst, { seconds: Math.min(o.seconds, 3), size: 64 });
    const u1400 = await udp(a, path.dst, { seconds: Math.min(o.seconds, 3), size: 1400 });
    r.udp64Runs.push(u64);
    r.udp1400Runs.push(u1400);
    log(
      `${spec.label} round ${n}: TCP 1 stream ${t1.gbps.toFixed(3)}, 4 streams ${t4.gbps.toFixed(3)} Gbit/s; ` +
        `UDP 64 B ${(u64.pps / 1e3).toFixed(0)} kpps (${u64.lossPct.toFixed(1)}% loss), 1400 B ${(u1400.pps / 1e3).toFixed(0)} kpps (${u1400.lossPct.toFixed(1)}% loss)`,
    );
  } catch (e) {
    r.error = (e as Error).message.split('\n')[0];
    log(`${spec.label} round ${n}: FAILED: ${r.error}`);
  } finally {
    stopServer();
    await path.down();
  }
}

/** The round whose delivered pps is the median one (its loss goes with it). */
function medianUdp(runs: UdpResult[]): UdpResult | undefined {
  if (runs.length === 0) return undefined;
  return [...runs].sort((x, y) => x.pps - y.pps)[(runs.length - 1) >> 1];
}

function finish(r: PathResult): void {
  for (const k of ['tcp1', 'tcp4'] as const) {
    r[k].median = median(r[k].runs);
    r[k].spreadPct = spreadPct(r[k].runs);
    if (r[k].spreadPct > SPREAD_WARN_PCT) log(`WARNING: ${r.label} ${k === 'tcp1' ? 'TCP 1 stream' : 'TCP 4 streams'} spread ${r[k].spreadPct.toFixed(0)} % > ${SPREAD_WARN_PCT} %: runs ${r[k].runs.map((x) => x.toFixed(2)).join(' ')}`);
  }
  r.udp64 = medianUdp(r.udp64Runs);
  r.udp1400 = medianUdp(r.udp1400Runs);
  if (r.gbit > 0 && r.cpu > 0) r.cpuSecPerGbit = r.cpu / r.gbit;
}

const fmt = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const warn = (x: Series) => (x.spreadPct > SPREAD_WARN_PCT ? ' ⚠' : '');

/** Every run of every path, in the order measured per round. */
function runsTable(results: PathResult[]): string {
  const head = '| path | TCP 1 stream, each round (Gbit/s) | TCP 4 streams, each round | load average before each round |';
  const rows = results.map((r) => `| ${r.label} | ${r.tcp1.runs.map((x) => fmt(x)).join(' ')} | ${r.tcp4.runs.map((x) => fmt(x)).join(' ')} | ${r.loadBefore.map((x) => fmt(x)).join(' ')} |`);
  return [head, '|' + ' --- |'.repeat(4), ...rows].join('\n');
}

function table(results: PathResult[]): string {
  const kernel = results.find((r) => r.id === 'kernel-vxlan')?.tcp1.median;
  const wg = results.find((r) => r.id === 'wireguard-go')?.tcp1.median;
  const head = '| path | TCP 1 stream Gbit/s (median, spread) | TCP 4 streams Gbit/s | ÷ kernel VXLAN | ÷ wireguard-go | UDP 64 B kpps (loss) | UDP 1400 B kpps (loss) | ping median / p99 ms | our CPU s per Gbit | our RSS idle / load MiB |';
  const sep = '|' + ' --- |'.repeat(10);
  const rows = results.map((r) =>
    [
      r.label + (r.error ? ` (error: ${r.error})` : ''),
      `${fmt(r.tcp1.median)} (±${fmt(r.tcp1.spreadPct, 0)}%${warn(r.tcp1)})`,
      `${fmt(r.tcp4.median)} (±${fmt(r.tcp4.spreadPct, 0)}%${warn(r.tcp4)})`,
      kernel ? fmt(r.tcp1.median / kernel, 3) : 'n/a',
      wg ? fmt(r.tcp1.median / wg, 2) : 'n/a',
      r.udp64 ? `${fmt(r.udp64.pps / 1e3, 0)} (${fmt(r.udp64.lossPct, 1)}%)` : 'n/a',
      r.udp1400 ? `${fmt(r.udp1400.pps / 1e3, 0)} (${fmt(r.udp1400.lossPct, 1)}%)` : 'n/a',
      r.ping ? `${fmt(r.ping.medianMs, 3)} / ${fmt(r.ping.p99Ms, 3)}` : 'n/a',
      fmt(r.cpuSecPerGbit, 3),
      r.rssIdleMiB !== undefined ? `${fmt(r.rssIdleMiB, 0)} / ${fmt(r.rssLoadMiB, 0)}` : 'n/a',
    ].join(' | '),
  );
  return [head, sep, ...rows.map((x) => `| ${x} |`)].join('\n');
}

async function main() {
  const o = args();
  if (process.getuid?.() !== 0) throw new Error('the throughput benchmark needs root (network namespaces)');
  const specs = [underlay, kernelVxlan, ourPlain, ourPlainWorkers, ourPlainNoOffload, ourEncrypted, ourEncryptedPolicy, wireguardGo, ...(o.nebula ? [nebula] : [])].filter((s) => !o.only || o.only.includes(s.id));
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; ${o.rounds} interleaved rounds × ${o.seconds} s per TCP figure; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  log(`ours: ${OUR_HOST.assembly}, the agent's assembly with its defaults (${OUR_HOST.poolSlots} pool slots, batch ${OUR_HOST.batchSize}, UDP GSO/GRO, TAP TSO/GRO)`);
  const tb = await createTestbed({ hosts: 2, prefix: 'bn' });
  const results = specs.map(fresh);
  try {
    for (let n = 1; n <= o.rounds; n++) {
      log(`round ${n}/${o.rounds}`);
      for (let i = 0; i < specs.length; i++) if (!results[i].error?.startsWith('setup')) await round(tb, specs[i], results[i], o, n);
    }
  } finally {
    await tb.destroy();
  }
  results.forEach(finish);
  const t = table(results);
  const runs = runsTable(results);
  console.log('\n' + t + '\n\n' + runs + '\n');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const meta = { date: new Date().toISOString(), cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, options: o, ourHost: OUR_HOST, interleaved: true };
  const jsonName = `throughput-${stamp}.json`;
  saveResult(new URL(`./results/${jsonName}`, import.meta.url), JSON.stringify({ meta, results }, null, 2));
  saveResult(
    new URL('./results/throughput-latest.md', import.meta.url),
    `Run ${meta.date}, ${meta.cpus} × ${meta.cpuModel}, node ${meta.node}, ${o.rounds} interleaved rounds × ${o.seconds} s (JSON: ${jsonName})\n\n${t}\n\n${runs}\n`,
  );
  saveResult(
    new URL('./results/throughput.svg', import.meta.url),
    throughputChart({ meta, results }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
