/**
 * The policy filter's two hot paths alone, for instruction counts (callgrind) and a quick CPU
 * figure: an established-flow verdict (TCP ACKs of 1024 tracked flows, cycled) and the 10 000
 * rule worst case of bench/micro-policy.ts (both addresses in 8 groups and 9 nested CIDRs, all
 * 289 atom pairs cells, no rule matching); `loop` is the same loop calling nothing, subtracted.
 *
 *   node --conditions=source --import tsx bench/policy-hotpath.ts time [N]    CPU ns per verdict (7 rounds)
 *   node <bundle> est N | worst N | loop N                                N verdicts, nothing printed
 *
 * `bash bench/run.sh policy-callgrind` (bench/policy-instructions.ts) bundles this file and runs
 * each mode under valgrind's callgrind at two N: the difference of instructions over the
 * difference of N cancels start-up, compilation of the rules and JIT, and does not move with
 * the load.
 */
import { PASS } from '@overlay/dataplane';
import { ACK, SYN, ctx, filter, ip, ipNum, pool, slots, worstPolicy, writeTcp } from './lib/policy-sets.js';

const FRAMES = 1024;
const mode = process.argv[2] ?? 'time';
const N = Number(process.argv[3] ?? 1e6);
if (!(N >= 0 && N % 1000 === 0)) throw new Error('N: a multiple of 1000');
// Established flows: a filter of its own with one rule (the path does not read the rules), so
// callgrind runs of it do not compile 10 000. 1024 flows 198.19.4.x → 198.19.5.y:80.
const fe = filter({ defaultAction: 'deny', tiers: { network: [{ id: 'est', action: 'allow', from: { cidrs: ['198.19.4.0/24'] }, proto: 'tcp', ports: ['80'] }] } });
const est = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) {
  const s = ipNum(0x400 + (i & 255));
  const d = ipNum(0x500 + (i >> 2));
  writeTcp(est[i], s, d, 30000 + i, 80, SYN);
  ctx.l3 = pool.off[est[i]] + 14;
  if (fe.inside(ctx, est[i]) !== PASS) throw new Error(`setup: SYN ${i} not allowed`);
  writeTcp(est[i], s, d, 30000 + i, 80, ACK);
}
// The worst case (built only when measured): both addresses in all their groups, ports no rule of theirs names.
const f = mode === 'est' || mode === 'loop' ? fe : filter(worstPolicy());
if (f !== fe) {
  f.identity.set(ip(7), Array.from({ length: 8 }, (_, i) => `sg${i}`));
  f.identity.set(ip(9), Array.from({ length: 8 }, (_, i) => `dg${i}`));
}
const worst = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) writeTcp(worst[i], ipNum(7), ipNum(9), 1024 + i, 20_000 + i, SYN);

let k = 0;
let passed = 0;
function established(n: number): void {
  for (let i = 0; i < n; i++) {
    const s = est[k++ & (FRAMES - 1)];
    ctx.l3 = pool.off[s] + 14;
    if (fe.inside(ctx, s) === PASS) passed++;
  }
}
function worstCase(n: number): void {
  for (let i = 0; i < n; i++) {
    const s = worst[k++ & (FRAMES - 1)];
    ctx.l3 = pool.off[s] + 14;
    if (f.inside(ctx, s) === PASS) passed++;
  }
}
function loop(n: number): void {
  for (let i = 0; i < n; i++) {
    const s = worst[k++ & (FRAMES - 1)];
    ctx.l3 = pool.off[s] + 14;
    if (s === -1) passed++;
  }
}

const d0 = f.stats().counters.inside_denied;
if (mode === 'time') {
  established(2e5);
  worstCase(2e5);
  loop(2e5);
  const cpu = (g: (n: number) => void) => {
    const c0 = process.cpuUsage();
    for (let j = 0; j < N; j += 1000) g(1000);
    const c = process.cpuUsage(c0);
    return ((c.user + c.system) * 1000) / N;
  };
  const e: number[] = [];
  const w: number[] = [];
  const l: number[] = [];
  for (let r = 0; r < 7; r++) {
    l.push(cpu(loop));
    e.push(cpu(established));
    w.push(cpu(worstCase));
  }
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
  console.log(`CPU ns per verdict (median of 7): established ${med(e).toFixed(1)}, worst case ${med(w).toFixed(1)}, loop ${med(l).toFixed(1)}`);
} else {
  // Calls of 1000, so each function is optimized as a whole (no on-stack replacement in one long loop).
  const g = mode === 'est' ? established : mode === 'worst' ? worstCase : mode === 'loop' ? loop : undefined;
  if (!g) throw new Error(`mode: time, est, worst or loop, got ${mode}`);
  for (let j = 0; j < N; j += 1000) g(1000);
  const denied = f.stats().counters.inside_denied - d0;
  if (mode === 'est' && passed !== N) throw new Error(`${N - passed} established packets not passed`);
  if (mode === 'worst' && denied !== N) throw new Error(`${N - denied} worst-case packets not denied`);
}
