/**
 * New TCP connections per second through a VIP: ours vs HAProxy vs an nftables numgen DNAT VIP,
 * and the plain overlay without any VIP, in one run on one topology (test/lib/vip-topology.ts):
 *
 *   host 1  client host: our dataplane (openHost) with VIP 198.19.0.100:80 in it (ServiceVips);
 *           HAProxy 2.6 (`mode tcp`, nbthread 1, roundrobin) bound to 198.19.0.101:80 (an
 *           address on lo); an nft table whose output-hook rule DNATs 198.19.0.102:80 with
 *           `numgen inc mod 4` (added only for its runs: kernel conntrack costs nothing elsewhere);
 *           the client (tcp-client.ts short) pinned to CPU 0.
 *   host 2  be1 198.19.0.2, be2 198.19.0.12   } vip-server.ts, pinned to CPU 1; reached over our
 *   host 3  be3 198.19.0.3, be4 198.19.0.13   } overlay (VXLAN, userspace dataplane) in every path.
 *
 * So each balancer sits on the client host and forwards to the same 4 backends over the same
 * overlay; only the balancer differs. plain: the client connects to the 4 backend addresses in
 * turn, no VIP. A connection: connect, read the backend's greeting line, end. Per run: conn/s
 * (greetings / time) with --in-flight (16) open at once for --seconds (5); then --lat-count
 * (1000) connections one at a time for the times: handshake (connect() to connected; for HAProxy
 * that is the local accept) and greet (connect() to the backend's first byte: the end-to-end
 * connect through a proxy). The paths run interleaved (order rotated) for --rounds (3); each
 * round ends with a paired run: 2 × --lat-count connections one at a time alternating between
 * the VIP and be1's address (plain), so ours and plain are timed at the same moments.
 * Prints every run, medians, spreads (max-min)/median, per-round ratios, and the load average.
 *
 * Root; `bash bench/run.sh vip [--rounds 3] [--seconds 5] [--in-flight 16] [--save]`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { VipTopology, shortConnections, type ShortResult } from '../test/lib/vip-topology.js';
import { waitForLine } from '../test/lib/testbed.js';
import { median, spreadPct } from './lib/stats.js';
import { saveResult } from './lib/save.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    'in-flight': { type: 'string', default: '16' },
    'lat-count': { type: 'string', default: '1000' },
    save: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const IN_FLIGHT = Number(values['in-flight']);
const LAT_COUNT = Number(values['lat-count']);
if (!(ROUNDS >= 1 && ROUNDS <= 20) || !(SECONDS > 0 && SECONDS <= 60) || !(IN_FLIGHT >= 1 && IN_FLIGHT <= 256) || !(LAT_COUNT >= 100 && LAT_COUNT <= 100_000)) {
  throw new Error('--rounds 1..20, --seconds (0, 60], --in-flight 1..256, --lat-count 100..100000');
}

const HAPROXY_VIP = '198.19.0.101';
const NFT_VIP = '198.19.0.102';
const NFT_TABLE = 'vipbench';

const out: string[] = [];
const say = (s: string) => {
  out.push(s);
  console.log(s);
};
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

interface Run {
  rate: ShortResult;
  lat: ShortResult;
  /** Distinct error codes of both parts. */
  codes: string[];
}
interface Path {
  name: string;
  target: (t: VipTopology) => string;
  before?: (t: VipTopology) => Promise<void>;
  after?: (t: VipTopology) => Promise<void>;
}

const nftRules = (t: VipTopology) =>
  `table ip ${NFT_TABLE} {\n  chain out {\n    type nat hook output priority -100; policy accept;\n` +
  `    ip daddr ${NFT_VIP} tcp dport ${t.port} dnat to numgen inc mod ${t.backends.length} map { ${t.backends.map((b, i) => `${i} : ${b.ip}`).join(', ')} }\n  }\n}\n`;

const PATHS: Path[] = [
  { name: 'ours', target: (t) => t.vip },
  { name: 'haproxy', target: () => HAPROXY_VIP },
  {
    name: 'nft-numgen',
    target: () => NFT_VIP,
    before: async (t) => void (await t.clientHost.exec('nft', ['-f', '-'], { input: nftRules(t) })),
    after: async (t) => void (await t.clientHost.run('nft', ['delete', 'table', 'ip', NFT_TABLE])),
  },
  { name: 'plain', target: (t) => t.backends.map((b) => b.ip).join(',') },
];

async function measure(t: VipTopology, p: Path): Promise<Run> {
  await p.before?.(t);
  try {
    const rateRun = await shortConnections(t.spawnClient(['short', p.target(t), String(t.port), '10000000', String(IN_FLIGHT), String(SECONDS * 1000)]), SECONDS * 1000 + 60_000);
    const latRun = await shortConnections(t.spawnClient(['short', p.target(t), String(t.port), String(LAT_COUNT), '1', String(SECONDS * 4000)]), SECONDS * 4000 + 60_000);
    return { rate: rateRun.result, lat: latRun.result, codes: [...new Set([...rateRun.errCodes, ...latRun.errCodes])] };
  } finally {
    await p.after?.(t);
  }
}

function haproxyConfig(t: VipTopology): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 10s',
    '  timeout server 10s',
    'frontend vip',
    `  bind ${HAPROXY_VIP}:${t.port}`,
    '  default_backend be',
    'backend be',
    '  balance roundrobin',
    ...t.backends.map((b) => `  server ${b.id} ${b.ip}:${t.port}`),
    '',
  ].join('\n');
}

say(`vip-connect: ${ROUNDS} rounds × 4 paths; rate: ${IN_FLIGHT} in flight for ${SECONDS} s; times: ${LAT_COUNT} connections one at a time; client CPU 0, servers CPU 1`);
say(`load average at start: ${load()}`);
const dir = mkdtempSync(join(tmpdir(), 'vipbench-'));
const t = await VipTopology.open({ prefix: 'vcon', pin: { client: 0, server: 1 }, translator: { capacity: 1 << 19 } });
let haproxy: ChildProcess | undefined;
const runs = new Map<string, Run[]>(PATHS.map((p) => [p.name, []]));
/** Per round: handshake and greet [p50, p99] of ours and of plain from one run whose connections alternate between them. */
const paired: Array<{ ours: ShortResult['byAddress'][string]; plain: ShortResult['byAddress'][string] }> = [];
try {
  const version = (await t.clientHost.exec('haproxy', ['-v'])).split('\n')[0];
  say(`HAProxy: ${version}`);
  await t.clientHost.exec('ip', ['addr', 'add', `${HAPROXY_VIP}/32`, 'dev', 'lo']);
  await t.clientHost.exec('ip', ['link', 'set', 'lo', 'up']);
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(t));
  haproxy = t.clientHost.spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')]);
  let haproxyErr = '';
  haproxy.stderr?.on('data', (d: Buffer) => (haproxyErr = (haproxyErr + d.toString()).slice(-4000)));
  haproxy.stdout?.resume();
  await new Promise((r) => setTimeout(r, 1000));
  if (haproxy.exitCode !== null) throw new Error(`haproxy exited at start: ${haproxyErr}`);
  // One short warm-up per path (ARP, JIT, HAProxy's first connections), not counted.
  for (const p of PATHS) {
    await p.before?.(t);
    try {
      const w = await shortConnections(t.spawnClient(['short', p.target(t), String(t.port), '200', '4', '10000']), 60_000);
      if (w.result.errors > 0 || w.result.ok === 0) throw new Error(`warm-up of ${p.name}: ${JSON.stringify(w.result)}`);
    } finally {
      await p.after?.(t);
    }
  }
  for (let r = 0; r < ROUNDS; r++) {
    const order = PATHS.map((_, i) => PATHS[(i + r) % PATHS.length]);
    for (const p of order) {
      const run = await measure(t, p);
      runs.get(p.name)!.push(run);
      say(
        `round ${r + 1} ${p.name.padEnd(10)} ${String(run.rate.perSecond).padStart(6)} conn/s (${run.rate.ok} ok, ${run.rate.errors} err)  ` +
          `handshake p50/p99 ${run.lat.connectUs[0]}/${run.lat.connectUs[1]} µs  greet p50/p99 ${run.lat.greetUs[0]}/${run.lat.greetUs[1]} µs (${run.lat.errors} err)${run.codes.length ? ` errors: ${run.codes.join(',')}` : ''}  load ${load()}`,
      );
    }
    // ours and plain alternating connection by connection in one run: the same moments of the machine for both.
    const be1 = t.backends[0].ip;
    const addrs = `${t.vip},${be1}`;
    const pr = (await shortConnections(t.spawnClient(['short', addrs, String(t.port), String(2 * LAT_COUNT), '1', String(SECONDS * 8000)]), SECONDS * 8000 + 60_000)).result;
    const o = pr.byAddress[t.vip];
    const pl = pr.byAddress[be1];
    paired.push({ ours: o, plain: pl });
    say(
      `round ${r + 1} paired     ours handshake p50/p99 ${o.connectUs[0]}/${o.connectUs[1]} µs (n=${o.n}), plain to be1 ${pl.connectUs[0]}/${pl.connectUs[1]} µs (n=${pl.n}); ` +
        `greet ${o.greetUs[0]}/${o.greetUs[1]} vs ${pl.greetUs[0]}/${pl.greetUs[1]} µs (${pr.errors} err)  load ${load()}`,
    );
  }
  say('');
  say(`${'path'.padEnd(11)}${'conn/s median'.padStart(14)}${'spread'.padStart(8)}   handshake p50/p99 µs   greet p50/p99 µs   (medians over rounds)`);
  for (const p of PATHS) {
    const rs = runs.get(p.name)!;
    const cps = rs.map((x) => x.rate.perSecond);
    const m = (f: (x: Run) => number) => Math.round(median(rs.map(f)));
    say(
      `${p.name.padEnd(11)}${String(median(cps)).padStart(14)}${`${spreadPct(cps).toFixed(0)}%`.padStart(8)}   ${`${m((x) => x.lat.connectUs[0])}/${m((x) => x.lat.connectUs[1])}`.padStart(17)}   ${`${m((x) => x.lat.greetUs[0])}/${m((x) => x.lat.greetUs[1])}`.padStart(16)}   runs ${cps.join(' ')}`,
    );
  }
  const per = (a: string, f: (x: Run, y: Run) => number) => runs.get(a)!.map((x, i) => f(x, runs.get('plain')![i]));
  const ours = runs.get('ours')!;
  const ratioH = ours.map((x, i) => x.rate.perSecond / runs.get('haproxy')![i].rate.perSecond);
  const ratioN = ours.map((x, i) => x.rate.perSecond / runs.get('nft-numgen')![i].rate.perSecond);
  const p99d = per('ours', (x, y) => x.lat.connectUs[1] - y.lat.connectUs[1]);
  const greetD = per('ours', (x, y) => x.lat.greetUs[1] - y.lat.greetUs[1]);
  say('');
  say(`ours / haproxy conn/s, per round: ${ratioH.map((x) => x.toFixed(2)).join(' ')} (median ${median(ratioH).toFixed(2)}; goal ≥ 1)`);
  say(`ours / nft-numgen conn/s, per round: ${ratioN.map((x) => x.toFixed(2)).join(' ')} (median ${median(ratioN).toFixed(2)})`);
  say(`ours − plain handshake p99, per round: ${p99d.join(' ')} µs (median ${median(p99d)}; goal ≤ 100)`);
  say(`ours − plain greet p99, per round: ${greetD.join(' ')} µs (median ${median(greetD)})`);
  const pd = paired.map((x) => x.ours.connectUs[1] - x.plain.connectUs[1]);
  const pd50 = paired.map((x) => x.ours.connectUs[0] - x.plain.connectUs[0]);
  say(`paired run (ours and plain alternating): ours − plain handshake p99 per round ${pd.join(' ')} µs (median ${median(pd)}; goal ≤ 100), p50 ${pd50.join(' ')} µs (median ${median(pd50)})`);
  say(`load average at end: ${load()}`);
} finally {
  if (haproxy && haproxy.exitCode === null) haproxy.kill('SIGTERM');
  await t.close();
  rmSync(dir, { recursive: true, force: true });
}
saveResult(new URL('./results/vip-connect.txt', import.meta.url), `${out.join('\n')}\n`);
process.exit(0);
