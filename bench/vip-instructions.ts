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
import { loadavg } from 'node:os';
import { nArgs, withCallgrind } from './lib/callgrind.js';

const [N1, N2] = nArgs(100_000, 300_000);
await withCallgrind('bench/vip-hotpath.ts', async (count) => {
  const load0 = loadavg();
  const t0 = Date.now();
  const [p1, p2] = await Promise.all([count('pairs', N1), count('pairs', N2)]);
  const [r1, r2] = await Promise.all([count('restore', N1), count('restore', N2)]);
  const n = N2 - N1;
  const pair = (p2 - p1 - (r2 - r1)) / n;
  console.log(`VIP established-flow path under callgrind (node ${process.version}), N ${N1} and ${N2}, ${((Date.now() - t0) / 1000).toFixed(0)} s, load average ${load0.map((x) => x.toFixed(1)).join(' ')} → ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`  instructions: pairs ${p1} / ${p2}, restore ${r1} / ${r2}`);
  console.log(`  restore ${((r2 - r1) / n).toFixed(0)} per pair (subtracted); inside + outside ${pair.toFixed(0)} per pair, ${(pair / 2).toFixed(0)} per packet`);
});
