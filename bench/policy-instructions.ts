/**
 * Instructions per verdict of the policy filter's established-flow path and its 10 000-rule
 * worst case (bench/policy-hotpath.ts), counted by valgrind's callgrind: figures that do not move
 * with the machine's load.
 *
 *   bash bench/run.sh policy-callgrind [--n1 20000] [--n2 60000]
 *
 * Bundles bench/policy-hotpath.ts (esbuild, the packages' sources) and runs `est`, `worst` and
 * `loop` under callgrind at N1 and N2 (two at a time). Instructions per verdict =
 * ((mode(N2) − mode(N1)) − (loop(N2) − loop(N1))) / (N2 − N1): start-up, compiling the rules,
 * JIT compilation and the loop itself cancel out. `--no-concurrent-recompilation` makes the
 * optimizing compiler finish before the code it compiles runs on.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N1 = arg('--n1', 20_000);
const N2 = arg('--n2', 60_000);
if (!(N2 > N1 && N1 >= 0 && N1 % 1000 === 0 && N2 % 1000 === 0)) throw new Error('--n1 < --n2, multiples of 1000');

const dir = mkdtempSync(join(tmpdir(), 'policy-cg-'));
try {
  const bundle = join(dir, 'hotpath.mjs');
  const b = spawnSync('npx', ['esbuild', 'bench/policy-hotpath.ts', '--bundle', '--platform=node', '--format=esm', '--conditions=source', `--outfile=${bundle}`, '--log-level=warning'], { stdio: 'inherit' });
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
  const n = N2 - N1;
  const [l1, l2] = await Promise.all([count('loop', N1), count('loop', N2)]);
  const loop = (l2 - l1) / n;
  const out: string[] = [];
  for (const [mode, label] of [['est', 'established-flow verdict'], ['worst', 'worst case, 10 000 rules, 289 cells, none match']] as const) {
    const [a, c] = await Promise.all([count(mode, N1), count(mode, N2)]);
    out.push(`  ${label}: ${((c - a) / n - loop).toFixed(0)} instructions per verdict (${a} / ${c})`);
  }
  console.log(`policy filter under callgrind (node ${process.version}), N ${N1} and ${N2}, ${((Date.now() - t0) / 1000).toFixed(0)} s, load average ${load0.map((x) => x.toFixed(1)).join(' ')} → ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`  loop ${loop.toFixed(0)} instructions per iteration (subtracted; ${l1} / ${l2})`);
  for (const l of out) console.log(l);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
