/**
 * Our resolver against dnsmasq and unbound, in one run, on loopback, with dnsperf (Debian):
 *
 *   node --conditions=source --import tsx bench/dns.ts [--quick] [--rounds N] [--seconds S]
 *     [--threads T] [--clients C] [--outstanding Q] [--latency-qps R] [--latency-seconds S] [--dgram]
 *
 * Every server holds the same 10 000 names (svc0..svc9999 → 198.19.x.y: ours in a
 * ServiceDirectory through bench/dns-server.ts, UDP on @overlay/native's batched UdpTransport as
 * the agent runs it; dnsmasq from a hosts file with --domain-needed; unbound as local-data under a
 * static root zone); the query file asks them 90 % hits and 10 % names nobody has (NXDOMAIN),
 * shuffled. Each server runs pinned to core 0, dnsperf to core 1 (taskset); single-threaded
 * servers (unbound num-threads 1). `--dgram` adds ours on node:dgram as a fourth server.
 *
 * Rounds are interleaved (A B C, B C A, C A B, …: every server once per round, order rotating).
 * Per round and server, two dnsperf runs:
 *  1. throughput: T threads, C clients, Q queries outstanding (defaults 2 / 16 / 1000: enough
 *     that the server, not dnsperf, is the limit) for S seconds, no per-query output:
 *     qps, lost, server CPU % and dnsperf CPU % (from /proc over the run; 100 % = one core), and
 *     qps per second of server CPU time (on a shared machine no process gets its whole core:
 *     this is what one core would answer; its ratio to dnsmasq's compares efficiency);
 *  2. latency at a fixed offered rate (-Q R, default 10 000 qps, the same for every server),
 *     per-query lines (-v): p50/p99 from them.
 * Before each round the 1-minute load average is printed, with a warning above 1 (the machine
 * is shared: then compare the servers by the interleaved ratios, not absolute figures). Every
 * run is printed; the table gives medians over rounds, the spread (min–max), and the median of
 * each round's qps ratio to dnsmasq (measured minutes apart at most, in the same conditions).
 *
 * Before measuring, each server is asked svc5 and nx5 and must answer 198.19.0.5 and NXDOMAIN.
 * Needs: dnsperf, dnsmasq (dnsmasq-base), unbound, taskset; bench/run.sh installs them.
 * The numbers are for this run, on this machine, at this load.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { textToName } from '@overlay/services';
import { cpuSeconds } from './lib/proc.js';
import { median, quantile, spreadPct } from './lib/stats.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const opt = (name: string, d: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const ROUNDS = opt('--rounds', quick ? 2 : 3);
const SECONDS = opt('--seconds', quick ? 4 : 10);
const THREADS = opt('--threads', 2);
const CLIENTS = opt('--clients', 16);
const OUTSTANDING = opt('--outstanding', 1000);
const LATENCY_QPS = opt('--latency-qps', 10_000);
const LATENCY_SECONDS = opt('--latency-seconds', quick ? 2 : 4);
const DGRAM = args.includes('--dgram');
const NAMES = 10_000;
const PORT = 53;
const SERVER_CPU = '0';
const CLIENT_CPU = '1';

for (const prog of ['dnsperf', 'dnsmasq', 'unbound', 'taskset']) {
  if (spawnSync('sh', ['-c', `command -v ${prog} || test -x /usr/sbin/${prog}`]).status !== 0) {
    console.error(`bench/dns.ts: ${prog} is missing (apt-get install dnsperf dnsmasq-base unbound util-linux)`);
    process.exit(2);
  }
}

const address = (i: number) => `198.19.${(i >> 8) & 255}.${i & 255}`;
const dir = mkdtempSync(join(tmpdir(), 'bench-dns-'));
const children: ChildProcess[] = [];
const cleanup = () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

// ---------------------------------------------------------------- data
const hosts: string[] = [];
const unboundData: string[] = [];
for (let i = 0; i < NAMES; i++) {
  hosts.push(`${address(i)} svc${i}`);
  unboundData.push(`  local-data: "svc${i}. 5 IN A ${address(i)}"`);
}
writeFileSync(join(dir, 'hosts'), hosts.join('\n') + '\n');
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
const queries: string[] = [];
for (let i = 0; i < 100_000; i++) queries.push(rnd() < 0.9 ? `svc${Math.floor(rnd() * NAMES)} A` : `nx${Math.floor(rnd() * NAMES)} A`);
writeFileSync(join(dir, 'queries'), queries.join('\n') + '\n');
writeFileSync(
  join(dir, 'unbound.conf'),
  `server:
  interface: 127.0.0.73
  port: ${PORT}
  num-threads: 1
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "${dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  local-zone: "." static
${unboundData.join('\n')}
remote-control:
  control-enable: no
`,
);

// ---------------------------------------------------------------- servers
interface Server {
  name: string;
  address: string;
  child?: ChildProcess;
}
const repo = fileURLToPath(new URL('..', import.meta.url));
const servers: Server[] = [
  { name: 'ours (DnsServer, native UDP)', address: '127.0.0.71' },
  { name: 'dnsmasq', address: '127.0.0.72' },
  { name: 'unbound', address: '127.0.0.73' },
];
const ourServer = (address: string, udp: string) => [process.execPath, '--conditions=source', '--import', 'tsx', join(repo, 'bench/dns-server.ts'), address, String(PORT), String(NAMES), udp];
const commands: string[][] = [
  ourServer('127.0.0.71', 'native'),
  ['dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', `--addn-hosts=${join(dir, 'hosts')}`, '--domain-needed', '--bind-interfaces', '--listen-address=127.0.0.72', `--port=${PORT}`, '--cache-size=10000', '--local-ttl=5', '--pid-file=', '--user=root', '--log-facility=/dev/null'],
  ['unbound', '-d', '-c', join(dir, 'unbound.conf')],
];
if (DGRAM) {
  servers.push({ name: 'ours (DnsServer, node:dgram)', address: '127.0.0.74' });
  commands.push(ourServer('127.0.0.74', 'dgram'));
}
const stderrs = servers.map(() => '');
servers.forEach((s, i) => {
  s.child = spawn('taskset', ['-c', SERVER_CPU, ...commands[i]], { stdio: ['ignore', 'pipe', 'pipe'], cwd: repo });
  s.child.stderr!.on('data', (d: Buffer) => (stderrs[i] = (stderrs[i] + d.toString()).slice(-4000)));
  s.child.stdout!.resume();
  children.push(s.child);
});

/** Ask one question over UDP; resolves with (rcode, first A address) or rejects on timeout. */
function ask(server: string, name: string): Promise<{ rcode: number; a?: string }> {
  return new Promise((resolve, reject) => {
    const n = textToName(name);
    const m = Buffer.alloc(16 + n.length);
    m.writeUInt16BE(0x4242, 0);
    m[2] = 1;
    m[5] = 1;
    m.set(n, 12);
    m[13 + n.length] = 1;
    m[15 + n.length] = 1;
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('timeout'));
    }, 500);
    s.on('message', (r) => {
      clearTimeout(t);
      s.close();
      const an = r.readUInt16BE(6);
      // The first answer's rdata: 12 + question, then name pointer (2) type class ttl rdlen (10).
      const p = 12 + n.length + 4 + 12;
      resolve({ rcode: r[3] & 15, a: an > 0 && r.length >= p + 4 ? `${r[p]}.${r[p + 1]}.${r[p + 2]}.${r[p + 3]}` : undefined });
    });
    s.send(m, PORT, server);
  });
}

for (const [i, s] of servers.entries()) {
  let ok = false;
  for (let t = 0; t < 120 && !ok; t++) {
    try {
      const hit = await ask(s.address, 'svc5');
      const miss = await ask(s.address, 'nx5');
      if (hit.rcode !== 0 || hit.a !== '198.19.0.5' || miss.rcode !== 3) throw new Error(`${s.name}: svc5 → rcode ${hit.rcode} ${hit.a}, nx5 → rcode ${miss.rcode}`);
      ok = true;
    } catch (e) {
      if ((e as Error).message !== 'timeout') throw e;
      if (s.child!.exitCode !== null) throw new Error(`${s.name} exited: ${stderrs[i]}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  if (!ok) throw new Error(`${s.name} does not answer: ${stderrs[i]}`);
}

// ---------------------------------------------------------------- rounds
interface Sample {
  qps: number;
  lost: number;
  cpu: number;
  /** qps per second of server CPU time: what one core would answer if the server had it whole. */
  perCore: number;
  clientCpu: number;
  p50: number;
  p99: number;
  latQps: number;
}
const samples: Sample[][] = servers.map(() => []);

/** One dnsperf run on core CLIENT_CPU; its CPU time sampled from /proc while it runs. */
function dnsperf(extra: string[]): Promise<{ out: string; wall: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const c = spawn('taskset', ['-c', CLIENT_CPU, 'dnsperf', '-p', String(PORT), '-d', join(dir, 'queries'), '-t', '2', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let cpu = 0;
    let cpuAt = t0;
    const probe = setInterval(() => {
      try {
        cpu = cpuSeconds(c.pid!);
        cpuAt = Date.now();
      } catch {
        // exited between samples
      }
    }, 200);
    c.stdout.on('data', (d: Buffer) => chunks.push(d));
    c.on('error', reject);
    c.on('close', (code) => {
      clearInterval(probe);
      if (code !== 0) return reject(new Error(`dnsperf exited ${code}`));
      resolve({ out: Buffer.concat(chunks).toString(), wall: (Date.now() - t0) / 1000, cpu: cpuAt > t0 ? (cpu / ((cpuAt - t0) / 1000)) * 100 : NaN });
    });
  });
}

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
console.log(
  `bench/dns.ts: ${NAMES} names, 90 % hits / 10 % NXDOMAIN; throughput: dnsperf -T ${THREADS} -c ${CLIENTS} -q ${OUTSTANDING} for ${SECONDS} s; ` +
    `latency: dnsperf -Q ${LATENCY_QPS} -v for ${LATENCY_SECONDS} s; ${ROUNDS} interleaved rounds; servers on core ${SERVER_CPU}, dnsperf on core ${CLIENT_CPU}; load average before: ${load()}`,
);
for (let r = 0; r < ROUNDS; r++) {
  const la = loadavg()[0];
  console.log(`round ${r + 1}: load average ${load()}${la > 1 ? '  WARNING: load average > 1, the machine is busy: absolute figures are low and noisy, compare the interleaved ratios' : ''}`);
  for (let k = 0; k < servers.length; k++) {
    const i = (k + r) % servers.length;
    const s = servers[i];
    const pid = s.child!.pid!;
    const c0 = cpuSeconds(pid);
    const t0 = Date.now();
    const run = await dnsperf(['-s', s.address, '-l', String(SECONDS), '-T', String(THREADS), '-c', String(CLIENTS), '-q', String(OUTSTANDING)]);
    const c1 = cpuSeconds(pid);
    const wall = (Date.now() - t0) / 1000;
    const qps = Number(/Queries per second:\s+([\d.]+)/.exec(run.out)?.[1] ?? NaN);
    const lost = Number(/Queries lost:\s+(\d+)/.exec(run.out)?.[1] ?? NaN);
    const lat = await dnsperf(['-s', s.address, '-l', String(LATENCY_SECONDS), '-Q', String(LATENCY_QPS), '-c', '4', '-q', '200', '-v']);
    const ms: number[] = [];
    for (const m of lat.out.matchAll(/^> \w+ \S+ \S+ ([\d.]+)$/gm)) ms.push(Number(m[1]) * 1e3);
    const sample: Sample = {
      qps,
      lost,
      cpu: ((c1 - c0) / wall) * 100,
      perCore: (qps * SECONDS) / (c1 - c0),
      clientCpu: run.cpu,
      p50: quantile(ms, 0.5),
      p99: quantile(ms, 0.99),
      latQps: Number(/Queries per second:\s+([\d.]+)/.exec(lat.out)?.[1] ?? NaN),
    };
    samples[i].push(sample);
    console.log(
      `  ${s.name}: ${fmt(qps)} qps, lost ${lost}, server CPU ${fmt(sample.cpu)} % (${fmt(sample.perCore)} qps per server CPU-second), dnsperf CPU ${fmt(sample.clientCpu)} %; ` +
        `at ${fmt(sample.latQps)} qps offered: p50 ${fmt(sample.p50, 3)} ms, p99 ${fmt(sample.p99, 3)} ms`,
    );
  }
}

// ---------------------------------------------------------------- table
const range = (xs: number[], d = 0) => `${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)}`;
const ratio = (i: number) => median(samples[i].map((x, r) => x.qps / samples[1][r].qps));
const coreRatio = (i: number) => median(samples[i].map((x, r) => x.perCore / samples[1][r].perCore));
console.log('');
console.log(`| server | qps median (min–max, spread) | × dnsmasq (median of per-round ratios) | server CPU % | qps per server CPU-second (× dnsmasq) | dnsperf CPU % | p50 ms @${LATENCY_QPS} qps | p99 ms | lost |`);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
servers.forEach((s, i) => {
  const xs = samples[i];
  const q = xs.map((x) => x.qps);
  console.log(
    `| ${s.name} | ${fmt(median(q))} (${range(q)}, ±${fmt(spreadPct(q))} %) | ${fmt(ratio(i), 2)} | ${fmt(median(xs.map((x) => x.cpu)))} | ${fmt(median(xs.map((x) => x.perCore)))} (${fmt(coreRatio(i), 2)}) | ${fmt(median(xs.map((x) => x.clientCpu)))} | ${fmt(median(xs.map((x) => x.p50)), 3)} | ${fmt(median(xs.map((x) => x.p99)), 3)} | ${xs.reduce((a, x) => a + x.lost, 0)} |`,
  );
});
console.log('Server CPU near 100 % = that server saturated its one core; dnsperf CPU near 100 % = the client was the limit. On a busy machine neither');
console.log('gets its core: then qps per server CPU-second (answers per second of the CPU time it got) is the per-core figure.');
console.log(`load average after: ${load()}`);
cleanup();
process.exit(0);
