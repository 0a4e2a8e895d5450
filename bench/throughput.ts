/**
 * Throughput comparison, one run, one machine: our overlay beside the veth underlay, the Linux
 * kernel's VXLAN, Debian's wireguard-go and (with --nebula) nebula, between two network-namespace
 * hosts. Prints a table with ratios to kernel VXLAN and wireguard-go, writes JSON and an SVG chart
 * to bench/results/. Our overlay is openHost (@overlay/host), the agent's host assembly.
 *
 *   bash bench/run.sh [--quick] [--nebula] [--reps N] [--seconds S] [--only id,id]
 */
import { saveResult } from './lib/save.js';
import { cpus } from 'node:os';
import { createTestbed, type Testbed } from '../test/lib/testbed.js';
import { iperfServer, ping, tcp, udp, waitReachable, type PingResult, type UdpResult } from './lib/iperf.js';
import { kernelVxlan, nebula, OUR_HOST, ourEncrypted, ourPlain, ourPlainNoOffload, underlay, wireguardGo, type PathSpec } from './lib/paths.js';
import { cpuSeconds, rssMiB } from './lib/proc.js';
import { median, spreadPct } from './lib/stats.js';
import { barChart } from './lib/svg.js';

interface PathResult {
  id: string;
  label: string;
  tcp1: { runs: number[]; median: number; spreadPct: number };
  tcp4: { runs: number[]; median: number; spreadPct: number };
  udp64?: UdpResult;
  udp1400?: UdpResult;
  ping?: PingResult;
  /** CPU seconds our processes spent per gigabit moved (single-stream TCP runs). */
  cpuSecPerGbit?: number;
  rssIdleMiB?: number;
  rssLoadMiB?: number;
  error?: string;
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
    reps: Number(get('--reps') ?? (quick ? 1 : 3)),
    seconds: Number(get('--seconds') ?? (quick ? 3 : 5)),
    only: get('--only')?.split(','),
  };
}

const log = (s: string) => process.stdout.write(`[bench] ${s}\n`);

async function measure(tb: Testbed, spec: PathSpec, o: ReturnType<typeof args>): Promise<PathResult> {
  const [a, b] = tb.hosts;
  const r: PathResult = { id: spec.id, label: spec.label, tcp1: { runs: [], median: NaN, spreadPct: 0 }, tcp4: { runs: [], median: NaN, spreadPct: 0 } };
  log(`${spec.label}: setting up`);
  let path;
  try {
    path = await spec.up(tb);
  } catch (e) {
    r.error = `setup: ${(e as Error).message.split('\n')[0]}`;
    log(`${spec.label}: FAILED: ${r.error}`);
    return r;
  }
  const stopServer = await iperfServer(b);
  try {
    await waitReachable(a, path.dst);
    // Let the path settle (handshakes, ARP) before timing it.
    await new Promise((res) => setTimeout(res, 500));
    if (path.pids.length) r.rssIdleMiB = path.pids.reduce((s, p) => s + rssMiB(p), 0);
    r.ping = await ping(a, path.dst, o.quick ? 50 : 200);
    log(`${spec.label}: ping median ${r.ping.medianMs.toFixed(3)} ms, p99 ${r.ping.p99Ms.toFixed(3)} ms`);
    let cpu = 0;
    let gbit = 0;
    for (let i = 0; i < o.reps; i++) {
      const c0 = path.pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const t = await tcp(a, path.dst, { seconds: o.seconds, streams: 1 });
      const c1 = path.pids.reduce((s, p) => s + cpuSeconds(p), 0);
      if (i === 0 && path.pids.length) r.rssLoadMiB = path.pids.reduce((s, p) => s + rssMiB(p), 0);
      cpu += c1 - c0;
      gbit += t.gbps * o.seconds;
      r.tcp1.runs.push(t.gbps);
      log(`${spec.label}: TCP 1 stream run ${i + 1}/${o.reps}: ${t.gbps.toFixed(3)} Gbit/s`);
    }
    if (path.pids.length && gbit > 0) r.cpuSecPerGbit = cpu / gbit;
    for (let i = 0; i < o.reps; i++) {
      const t = await tcp(a, path.dst, { seconds: o.seconds, streams: 4 });
      r.tcp4.runs.push(t.gbps);
      log(`${spec.label}: TCP 4 streams run ${i + 1}/${o.reps}: ${t.gbps.toFixed(3)} Gbit/s`);
    }
    r.udp64 = await udp(a, path.dst, { seconds: Math.min(o.seconds, 3), size: 64 });
    r.udp1400 = await udp(a, path.dst, { seconds: Math.min(o.seconds, 3), size: 1400 });
    log(`${spec.label}: UDP 64 B ${(r.udp64.pps / 1e3).toFixed(0)} kpps (${r.udp64.lossPct.toFixed(1)}% loss), 1400 B ${(r.udp1400.pps / 1e3).toFixed(0)} kpps (${r.udp1400.lossPct.toFixed(1)}% loss)`);
  } catch (e) {
    r.error = (e as Error).message.split('\n')[0];
    log(`${spec.label}: FAILED: ${r.error}`);
  } finally {
    stopServer();
    await path.down();
  }
  for (const k of ['tcp1', 'tcp4'] as const) {
    r[k].median = median(r[k].runs);
    r[k].spreadPct = spreadPct(r[k].runs);
  }
  return r;
}

const fmt = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));

function table(results: PathResult[]): string {
  const kernel = results.find((r) => r.id === 'kernel-vxlan')?.tcp1.median;
  const wg = results.find((r) => r.id === 'wireguard-go')?.tcp1.median;
  const head = '| path | TCP 1 stream Gbit/s (median, spread) | TCP 4 streams Gbit/s | ÷ kernel VXLAN | ÷ wireguard-go | UDP 64 B kpps (loss) | UDP 1400 B kpps (loss) | ping median / p99 ms | our CPU s per Gbit | our RSS idle / load MiB |';
  const sep = '|' + ' --- |'.repeat(10);
  const rows = results.map((r) =>
    [
      r.label + (r.error ? ` (error: ${r.error})` : ''),
      `${fmt(r.tcp1.median)} (±${fmt(r.tcp1.spreadPct, 0)}%)`,
      `${fmt(r.tcp4.median)} (±${fmt(r.tcp4.spreadPct, 0)}%)`,
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
  const specs = [underlay, kernelVxlan, ourPlain, ourPlainNoOffload, ourEncrypted, wireguardGo, ...(o.nebula ? [nebula] : [])].filter((s) => !o.only || o.only.includes(s.id));
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; ${o.reps} reps × ${o.seconds} s per TCP figure`);
  log(`ours: ${OUR_HOST.assembly}, the agent's assembly with its defaults (${OUR_HOST.poolSlots} pool slots, batch ${OUR_HOST.batchSize}, UDP GSO/GRO, TAP TSO/GRO)`);
  const tb = await createTestbed({ hosts: 2, prefix: 'bn' });
  const results: PathResult[] = [];
  try {
    for (const s of specs) results.push(await measure(tb, s, o));
  } finally {
    await tb.destroy();
  }
  const t = table(results);
  console.log('\n' + t + '\n');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const meta = { date: new Date().toISOString(), cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, options: o, ourHost: OUR_HOST };
  saveResult(new URL(`./results/throughput-${stamp}.json`, import.meta.url), JSON.stringify({ meta, results }, null, 2));
  saveResult(new URL('./results/throughput-latest.md', import.meta.url), `Run ${meta.date}, ${meta.cpus} × ${meta.cpuModel}, node ${meta.node}\n\n${t}\n`);
  saveResult(
    new URL('./results/throughput.svg', import.meta.url),
    barChart(`TCP single-stream throughput, 2 netns hosts (${meta.date.slice(0, 10)})`, 'Gbit/s', results.map((r) => ({ label: r.label, value: r.tcp1.median }))),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
