/**
 * kill -9 detection in network namespaces: our agent vs HashiCorp serf (Debian), same hosts,
 * same instant, same survivors (test/lib/serf.ts). Prints the table; with --save it replaces
 * the serf section of bench/results/agent.md (between its markers; sim-agent.ts keeps it).
 * Before the trials, an idle window (--idle seconds, both clusters converged and quiet) counts
 * the bytes each host sends and receives on each cluster's gossip port (UDP and TCP; ours 7946,
 * serf 7947) with nftables counters in the host's namespace: bytes per node per second, L3
 * (IP header included), for ours and serf over the same seconds.
 *
 *   bash bench/run.sh serf [--hosts 5] [--trials 3] [--idle 60] [--save]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createTestbed } from '../test/lib/testbed.js';
import { SerfRace, SERF_PORT } from '../test/lib/serf.js';
import type { TestHost } from '../test/lib/testbed.js';
import { median } from './lib/stats.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: number) => {
  const i = argv.indexOf(k);
  const v = i >= 0 ? Number(argv[i + 1]) : d;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${k} wants a positive integer`);
  return v;
};
const N = opt('--hosts', 5);
const TRIALS = opt('--trials', 3);
const IDLE_S = opt('--idle', 60);
const SAVE = argv.includes('--save');
const OUR_PORT = 7946;
if (N < 3) throw new Error('--hosts wants at least 3 (a victim and two observers)');
const log = (s: string) => process.stdout.write(`[serf] ${s}\n`);

/** nftables byte counters on each cluster's gossip port, per direction, in one host's namespace. */
const TABLE = 'gossipbytes';
async function installCounters(h: TestHost): Promise<void> {
  const rules = (hook: 'output' | 'input', dir: 'out' | 'in') =>
    [
      `chain ${hook} { type filter hook ${hook} priority 0; policy accept;`,
      ...[['ours', OUR_PORT], ['serf', SERF_PORT]].flatMap(([who, port]) => [
        `meta l4proto { tcp, udp } th sport ${port} counter name ${who}_${dir} accept`,
        `meta l4proto { tcp, udp } th dport ${port} counter name ${who}_${dir} accept`,
      ]),
      '}',
    ].join('\n');
  const script = [`table inet ${TABLE} {`, 'counter ours_out {}', 'counter ours_in {}', 'counter serf_out {}', 'counter serf_in {}', rules('output', 'out'), rules('input', 'in'), '}'].join('\n');
  await h.exec('nft', ['-f', '-'], { input: script });
}
async function readCounters(h: TestHost): Promise<Record<string, number>> {
  const out = await h.exec('nft', ['-j', 'list', 'counters', 'table', 'inet', TABLE]);
  const r: Record<string, number> = {};
  for (const o of (JSON.parse(out) as { nftables: { counter?: { name: string; bytes: number } }[] }).nftables) if (o.counter) r[o.counter.name] = o.counter.bytes;
  return r;
}

const tb = await createTestbed({ hosts: N, prefix: 'srfb' });
const race = new SerfRace(tb);
const ours: number[] = [];
const theirs: number[] = [];
const perNode: Record<string, number> = {};
try {
  await race.start();
  if (!(await race.converged())) throw new Error('serf did not converge');
  await new Promise((r) => setTimeout(r, 5000)); // joins' news gossiped out
  await Promise.all(tb.hosts.map(installCounters));
  const before = await Promise.all(tb.hosts.map(readCounters));
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  const after = await Promise.all(tb.hosts.map(readCounters));
  const secs = (Date.now() - t0) / 1000;
  for (const k of ['ours_out', 'ours_in', 'serf_out', 'serf_in']) {
    perNode[k] = after.reduce((s, a, i) => s + (a[k] ?? 0) - (before[i][k] ?? 0), 0) / N / secs;
  }
  log(`idle ${secs.toFixed(1)} s, bytes/node/s sent: ours ${perNode.ours_out.toFixed(0)}, serf ${perNode.serf_out.toFixed(0)}; received: ours ${perNode.ours_in.toFixed(0)}, serf ${perNode.serf_in.toFixed(0)}`);
  for (let t = 0; t < TRIALS; t++) {
    if (!(await race.converged())) throw new Error('serf did not converge');
    await new Promise((r) => setTimeout(r, 3000)); // settle
    const r = await race.trial(N - 1);
    log(`trial ${t + 1}/${TRIALS}: ours ${r.oursMs} ms, serf ${r.serfMs} ms`);
    if (!r.oursMs || !r.serfMs) throw new Error('a cluster did not detect the killed node within 2 minutes');
    ours.push(r.oursMs);
    theirs.push(r.serfMs);
  }
} finally {
  await race.stop();
  await tb.destroy();
}

const line = `| kill -9, ${N} hosts, LAN profile (${TRIALS} trials) | ${median(ours)} (${ours.join(', ')}) | ${median(theirs)} (${theirs.join(', ')}) | ${(median(ours) / median(theirs)).toFixed(2)} |`;
const section = [
  '<!-- serf -->',
  '## kill -9 detection in network namespaces: our agent vs serf (same run, same hosts)',
  '',
  `All ${N - 1} survivors must mark the killed node dead (ours) / failed (serf 0.8, Debian). Polled every ~200 ms; ms from the kill. \`bash bench/run.sh serf --save\`.`,
  '',
  '| scenario | ours: median (trials), ms | serf: median (trials), ms | ratio ours/serf |',
  '| --- | --- | --- | --- |',
  line,
  '',
  `Idle gossip traffic in the same run (${IDLE_S} s before the trials, nftables counters on UDP+TCP ${OUR_PORT} / ${SERF_PORT}, IP bytes): sent ${perNode.ours_out.toFixed(0)} bytes/node/s ours vs ${perNode.serf_out.toFixed(0)} serf (ratio ${(perNode.ours_out / perNode.serf_out).toFixed(2)}); received ${perNode.ours_in.toFixed(0)} vs ${perNode.serf_in.toFixed(0)}.`,
  '<!-- /serf -->',
].join('\n');
console.log(section);

if (SAVE) {
  const file = new URL('./results/agent.md', import.meta.url);
  let md = '';
  try {
    md = readFileSync(file, 'utf8');
  } catch {
    // first run
  }
  const re = /<!-- serf -->[\s\S]*<!-- \/serf -->/;
  writeFileSync(file, re.test(md) ? md.replace(re, section) : `${md.trimEnd()}\n\n${section}\n`);
  log('wrote bench/results/agent.md (serf section)');
}
