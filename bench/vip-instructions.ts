/**
 * Instructions per packet of the VIP translator's established-flow path (inside + outside),
 * counted by valgrind's callgrind: a figure that does not move with the machine's load.
 *
 *   bash bench/run.sh vip-callgrind [--n1 100000] [--n2 300000]
 *
 * Bundles bench/vip-hotpath.ts (esbuild, the packages' sources), then runs it under callgrind in
 * `pairs` and `restore` mode at N1 and N2 (two at a time). Instructions per packet =
 * ((pairs(N2) − pairs(N1)) − (restore(N2) − restore(N1))) / (N2 − N1) / 2: start-up, JIT
 * compilation and the template restore cancel out. `--no-concurrent-recompilation` makes the
 * optimizing compiler finish before the code it compiles runs on (under valgrind the background
 * thread would otherwise lag, and the count would include interpreted iterations).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N1 = arg('--n1', 100_000);
const N2 = arg('--n2', 300_000);
if (!(N2 > N1 && N1 >= 0 && N1 % 1000 === 0 && N2 % 1000 === 0)) throw new Error('--n1 < --n2, multiples of 1000');

const dir = mkdtempSync(join(tmpdir(), 'vip-cg-'));
try {
  const bundle = join(dir, 'hotpath.mjs');
  const b = spawnSync('npx', ['esbuild', 'bench/vip-hotpath.ts', '--bundle', '--platform=node', '--format=esm', '--conditions=source', `--outfile=${bundle}`, '--log-level=warning'], { stdio: 'inherit' });
  if (b.status !== 0) throw new Error('esbuild failed');

  /** Instructions callgrind counted for one run. */
  const count = (mode: string, n: number) =>
    new Promise<number>((resolve, reject) => {
      const p = spawn('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', 'node', '--no-concurrent-recompilation', bundle, mode, String(n)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (c: Buffer) => (err += c.toString()));
      p.on('error', reject);
      p.on('close', (code) => {
        const m = /Collected : (\d+)/.exec(err);
        if (code !== 0 || !m) reject(new Error(`callgrind ${mode} ${n}: exit ${code}\n${err.slice(-2000)}`));
        else resolve(Number(m[1]));
      });
    });

  const load0 = loadavg();
  const t0 = Date.now();
  const [p1, p2] = await Promise.all([count('pairs', N1), count('pairs', N2)]);
  const [r1, r2] = await Promise.all([count('restore', N1), count('restore', N2)]);
  const n = N2 - N1;
  const pair = (p2 - p1 - (r2 - r1)) / n;
  console.log(`VIP established-flow path under callgrind (node ${process.version}), N ${N1} and ${N2}, ${((Date.now() - t0) / 1000).toFixed(0)} s, load average ${load0.map((x) => x.toFixed(1)).join(' ')} → ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`  instructions: pairs ${p1} / ${p2}, restore ${r1} / ${r2}`);
  console.log(`  restore ${((r2 - r1) / n).toFixed(0)} per pair (subtracted); inside + outside ${pair.toFixed(0)} per pair, ${(pair / 2).toFixed(0)} per packet`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
