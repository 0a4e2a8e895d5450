/**
 * Instruction counts under valgrind's callgrind for the hot-path benches (bench/vip-instructions.ts,
 * bench/policy-instructions.ts): N1 and N2 from the command line, the bench file bundled with
 * esbuild (the packages' sources), one callgrind run per (mode, N).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `--n1` and `--n2` (multiples of 1000, N1 < N2). */
export function nArgs(n1: number, n2: number): [number, number] {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const N1 = arg('--n1', n1);
  const N2 = arg('--n2', n2);
  if (!(N2 > N1 && N1 >= 0 && N1 % 1000 === 0 && N2 % 1000 === 0)) throw new Error('--n1 < --n2, multiples of 1000');
  return [N1, N2];
}

/**
 * Bundle `entry` into a temporary directory and hand `count(mode, n)` — the instructions
 * callgrind counted for `node <bundle> mode n` — to `work`; the directory is removed after.
 * `--no-concurrent-recompilation`: the optimizing compiler finishes before the code it compiles
 * runs on (under valgrind its background thread would lag, counting interpreted iterations).
 */
export async function withCallgrind<T>(entry: string, work: (count: (mode: string, n: number) => Promise<number>) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'cg-'));
  try {
    const bundle = join(dir, 'hotpath.mjs');
    const b = spawnSync('npx', ['esbuild', entry, '--bundle', '--platform=node', '--format=esm', '--conditions=source', `--outfile=${bundle}`, '--log-level=warning'], { stdio: 'inherit' });
    if (b.status !== 0) throw new Error('esbuild failed');
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
    return await work(count);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
