/**
 * Instructions per verdict of the policy filter's established-flow path and its 10 000-rule
 * worst case (bench/policy-hotpath.ts), counted by valgrind's callgrind: figures that do not move
 * with the machine's load.
 *
 *   bash bench/run.sh policy-callgrind [--n1 20000] [--n2 60000]
 *
 * Bundles bench/policy-hotpath.ts and runs `loop`, `est` and `worst` under callgrind at N1 and
 * N2 (two at a time, bench/lib/callgrind.ts). Instructions per verdict =
 * ((mode(N2) − mode(N1)) − (loop(N2) − loop(N1))) / (N2 − N1): start-up, compiling the rules,
 * JIT compilation and the loop itself cancel out.
 */
import { loadavg } from 'node:os';
import { nArgs, withCallgrind } from './lib/callgrind.js';

const [N1, N2] = nArgs(20_000, 60_000);
await withCallgrind('bench/policy-hotpath.ts', async (count) => {
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
});
