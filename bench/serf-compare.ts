/**
 * kill -9 detection in network namespaces: our agent vs HashiCorp serf (Debian), same hosts,
 * same instant, same survivors (test/lib/serf.ts). Prints the table; with --save it replaces
 * the serf section of bench/results/agent.md (between its markers; sim-agent.ts keeps it).
 *
 *   bash bench/run.sh serf [--hosts 5] [--trials 3] [--save]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createTestbed } from '../test/lib/testbed.js';
import { SerfRace } from '../test/lib/serf.js';
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
const SAVE = argv.includes('--save');
if (N < 3) throw new Error('--hosts wants at least 3 (a victim and two observers)');
const log = (s: string) => process.stdout.write(`[serf] ${s}\n`);

const tb = await createTestbed({ hosts: N, prefix: 'srfb' });
const race = new SerfRace(tb);
const ours: number[] = [];
const theirs: number[] = [];
try {
  await race.start();
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
