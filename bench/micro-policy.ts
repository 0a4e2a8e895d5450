/**
 * Policy filter micro-benchmarks (benchmark.js, one run) and the allocation proof.
 *
 *   node --expose-gc --conditions=source --import tsx bench/micro-policy.ts [--quick]
 *
 * The stage is called directly, as the pipeline calls it (a reused StageContext whose l3 is set
 * per frame), over 1024 prepared frames in pool slots, cycled so no one frame stays hot:
 *
 * 1. established-flow verdict: TCP ACKs of 1024 tracked flows (conntrack find + observe → PASS);
 * 2. new-flow verdict with 10 000 rules (admin 100 deny by CIDR and port, network 9 800 allow
 *    group → group on one TCP port each over 200 groups, service 100 any-protocol allow by CIDR
 *    that do not match): a SYN of an unknown flow, judged and denied (default, so every
 *    candidate is tested), and a SYN allowed by a network rule (judged, opened; the benchmark
 *    removes the flow again so the table does not fill — the remove is in benchmark.js's figure;
 *    a second measurement times batches of 1024 such verdicts with hrtime and removes the flows
 *    after the clock stops, so the verdict + open is shown apart from the bench's removal);
 * 3. 10 000 TCP rules without ports from a /32 source each (CIDR mix: the source's CIDR found by
 *    one interval search), and 10 000 TCP rules without ports from groups the source is not in
 *    (the old linear worst case: now no cell is met);
 * 4. 10 000 TCP rules web → db, a port each, all in the one cell the packet meets, whose port
 *    is between theirs (one binary search over 10 000 intervals); and the index's worst case:
 *    9 000 TCP rules, each on its own port, spread over every pair of 8 source groups × 8
 *    destination groups and 9 nested CIDRs (/8 … /32) per side, plus 1 000 rules naming the
 *    packets' ports from a group they are not in; the packet's source and destination are in all
 *    8 groups and all 9 CIDRs, so every one of its (8 + 9)² atom pairs is a cell to probe (a
 *    binary search each) and none matches;
 * 5. IPv6: 10 000 rules (IPv6 /128 and /64 sources, groups of IPv6 addresses, ports), a SYN
 *    denied by default and an established IPv6 flow;
 * 6. allocation proof: 10^6 verdicts of each kind, heap growth and GC count, and a control that
 *    allocates one object per packet; with the process's user CPU time per verdict, a cross-check
 *    of benchmark.js's wall-clock figures on a machine whose load average exceeds its cores.
 */
import Benchmark from 'benchmark';
import { ACK, SYN, bigPolicy, cidrWildPolicy, ctx, filter, groupMissPolicy, ip, ip6, ipNum, oneCellPolicy, pool, slots, v6Policy, worstPolicy, writeTcp, writeTcp6 } from './lib/policy-sets.js';
import { heapDuring } from './lib/heap.js';
import { median, spreadPct } from './lib/stats.js';
import { runSuite } from './lib/suite.js';

const quick = process.argv.includes('--quick');
const FRAMES = 1024;
// Established: 1024 flows opened by a SYN each (allowed by a network rule), then ACKs.
const big = filter(bigPolicy());
/** A (src, dst, port) that rule n<k> allows: src in g(k%200), dst in g((7k+3)%200). */
function allowedBy(k: number): [number, number, number] {
  const gs = k % 200;
  const gd = (k * 7 + 3) % 200;
  return [ipNum(gs === 0 ? 200 : gs), ipNum(gd === 0 ? 200 : gd), 1000 + k];
}
const est = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) {
  const [s, d, p] = allowedBy(i * 9);
  writeTcp(est[i], s, d, 30000 + i, p, SYN);
  ctx.l3 = pool.off[est[i]] + 14;
  if (big.inside(ctx, est[i]) !== 0) throw new Error(`setup: SYN ${i} not allowed`);
  writeTcp(est[i], s, d, 30000 + i, p, ACK);
}
// New flows denied by default (an unknown pair on a port some rule names), and new flows allowed.
const denied = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) writeTcp(denied[i], ipNum(500 + (i % 400)), ipNum(1 + (i % 400)), 40000 + i, 1000 + ((i * 37) % 9800), SYN);
const allowed = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) {
  const [s, d, p] = allowedBy((i * 31) % 9800);
  writeTcp(allowed[i], s, d, 50000 + i, p, SYN);
}
const cidrWild = filter(cidrWildPolicy());
const groupMiss = filter(groupMissPolicy());
const missSlots = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) writeTcp(missSlots[i], ipNum(1 + i), ipNum(2 + i), 20000 + i, 80, SYN);
// Worst case: sources 198.19.0.7 and destinations 198.19.0.9 in all their groups, ports no rule names.
const worst = filter(worstPolicy());
worst.identity.set(ip(7), Array.from({ length: 8 }, (_, i) => `sg${i}`));
worst.identity.set(ip(9), Array.from({ length: 8 }, (_, i) => `dg${i}`));
const worstSlots = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) writeTcp(worstSlots[i], ipNum(7), ipNum(9), 1024 + i, 20_000 + i, SYN);
// One cell: 198.19.0.7 in web, 198.19.0.9 in db; odd ports between the rules' even ones.
const oneCell = filter(oneCellPolicy());
oneCell.identity.set(ip(7), ['web']);
oneCell.identity.set(ip(9), ['db']);
const oneCellSlots = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) writeTcp(oneCellSlots[i], ipNum(7), ipNum(9), 1024 + i, 10_001 + 2 * ((i * 97) % 10_000), SYN);
// IPv6: 1000 workloads 2001:db8::n in groups; SYNs from 2001:db8::n to 2001:db8::m on ports no rule allows for them.
const v6 = filter(v6Policy());
for (let n = 1; n <= 1000; n++) v6.identity.set(ip6(n), n % 3 === 0 ? [`g${n % 200}`, `g${(n * 13) % 200}`] : [`g${n % 200}`]);
const v6Denied = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) writeTcp6(v6Denied[i], 1 + (i % 400), 500 + (i % 400), 40000 + i, 1000 + ((i * 37) % 3000), SYN);
const v6Est = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) {
  writeTcp6(v6Est[i], 1 + i, 2000 + i, 30000 + i, 80, SYN);
  ctx.etherType = 0x86dd;
  ctx.l3 = pool.off[v6Est[i]] + 14;
  if (v6.inside(ctx, v6Est[i]) !== 0) throw new Error(`setup: IPv6 SYN ${i} not allowed`);
  writeTcp6(v6Est[i], 1 + i, 2000 + i, 30000 + i, 80, ACK);
}
ctx.etherType = 0x0800;

let k = 0;
let sink = 0;
function established(): void {
  const s = est[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + big.inside(ctx, s)) | 0;
}
function newDenied(): void {
  const s = denied[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + big.inside(ctx, s)) | 0;
}
const ct = big.conntrack;
function newAllowed(): void {
  const i = k++ & (FRAMES - 1);
  const s = allowed[i];
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + big.inside(ctx, s)) | 0;
  const e = ct.find(6, (ipNumCache[i * 2] | 0), (ipNumCache[i * 2 + 1] | 0), 50000 + i, portCache[i]);
  ct.remove(e);
}
const ipNumCache = new Int32Array(FRAMES * 2);
const portCache = new Int32Array(FRAMES);
for (let i = 0; i < FRAMES; i++) {
  const [s, d, p] = allowedBy((i * 31) % 9800);
  ipNumCache[i * 2] = s | 0;
  ipNumCache[i * 2 + 1] = d | 0;
  portCache[i] = p;
}
function cidrWildDenied(): void {
  const s = worstSlots[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + cidrWild.inside(ctx, s)) | 0;
}
function groupMissDenied(): void {
  const s = missSlots[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + groupMiss.inside(ctx, s)) | 0;
}
function worstDenied(): void {
  const s = worstSlots[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + worst.inside(ctx, s)) | 0;
}
function oneCellDenied(): void {
  const s = oneCellSlots[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + oneCell.inside(ctx, s)) | 0;
}
function v6NewDenied(): void {
  const s = v6Denied[k++ & (FRAMES - 1)];
  ctx.etherType = 0x86dd;
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + v6.inside(ctx, s)) | 0;
  ctx.etherType = 0x0800;
}
function v6Established(): void {
  const s = v6Est[k++ & (FRAMES - 1)];
  ctx.etherType = 0x86dd;
  ctx.l3 = pool.off[s] + 14;
  sink = (sink + v6.inside(ctx, s)) | 0;
  ctx.etherType = 0x0800;
}

// Sanity: each case does what it says.
const before = big.stats().counters;
for (let i = 0; i < FRAMES; i++) {
  established();
  newDenied();
  newAllowed();
}
const after = big.stats().counters;
if (after.inside_denied - before.inside_denied !== FRAMES || after.flows_opened - before.flows_opened !== FRAMES || big.conntrack.size !== FRAMES) {
  throw new Error(`setup: unexpected verdicts ${JSON.stringify({ before, after, flows: big.conntrack.size })}`);
}
// The worst case probes what it claims: every packet denied by default, through (8 + 9)² cells.
const w0 = worst.stats().counters.inside_denied;
const v0 = v6.stats().counters;
for (let i = 0; i < FRAMES; i++) {
  worstDenied();
  oneCellDenied();
  groupMissDenied();
  cidrWildDenied();
  v6NewDenied();
  v6Established();
}
const v1 = v6.stats().counters;
if (worst.stats().counters.inside_denied - w0 !== FRAMES || oneCell.stats().counters.inside_denied !== FRAMES || v1.inside_denied - v0.inside_denied !== FRAMES || v6.conntrack6.size !== FRAMES) {
  throw new Error(`setup: worst/IPv6 verdicts ${JSON.stringify({ worst: worst.stats().counters, v0, v1, flows6: v6.conntrack6.size })}`);
}
const explained = worst.explain({ src: ip(7), dst: ip(9), proto: 'tcp', port: 10_000 + 17 * 17 - 1 });
if (explained.ruleId !== 'x288') throw new Error(`setup: worst case explain ${JSON.stringify(explained)}`);
console.log(
  `rulesets (rules / cells / residual): mixed ${big.compiled.size} / ${big.compiled.cellCount} / ${big.compiled.residualCount}; ` +
    `/32 sources ${cidrWild.compiled.size} / ${cidrWild.compiled.cellCount}; group miss ${groupMiss.compiled.size} / ${groupMiss.compiled.cellCount}; ` +
    `one cell ${oneCell.compiled.size} / ${oneCell.compiled.cellCount}; worst ${worst.compiled.size} / ${worst.compiled.cellCount} (a port of its last pair → ${explained.ruleId}); IPv6 ${v6.compiled.size} / ${v6.compiled.cellCount}`,
);

// ---------------------------------------------------------------- benchmark.js
const opts: Benchmark.Options = quick ? { maxTime: 0.3, minSamples: 5 } : { maxTime: 2, minSamples: 20 };
const rows = await runSuite('policy', (suite) => {
  suite.add('established-flow verdict (TCP ACK, tracked)', established, opts);
  suite.add('new-flow verdict, 10 000 rules, denied by default', newDenied, opts);
  suite.add('new-flow verdict, 10 000 rules, allowed + opened (+ bench removes it)', newAllowed, opts);
  suite.add('new-flow verdict, 10 000 port-less TCP rules from /32 sources (CIDR mix), none match', cidrWildDenied, opts);
  suite.add('new-flow verdict, 10 000 port-less TCP rules from groups, none match', groupMissDenied, opts);
  suite.add('new-flow verdict, 10 000 rules in the one cell met (web → db, a port each), none match', oneCellDenied, opts);
  suite.add('worst case: 10 000 rules, packet meets (8 groups + 9 CIDRs)² = 289 cells, none match', worstDenied, opts);
  suite.add('IPv6 new-flow verdict, 10 000 rules (/128, /64, groups), denied by default', v6NewDenied, opts);
  suite.add('IPv6 established-flow verdict (TCP ACK, tracked)', v6Established, opts);
});
console.log('\n| verdict | median ns/op | spread (max−min)/median | ±rme | samples |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${(median(r.sample) * 1e9).toFixed(1)} | ${spreadPct(r.sample).toFixed(1)} % | ${r.rme.toFixed(1)} % | ${r.samples} |`);

// ---------------------------------------------------------------- allowed + opened, removal apart
// benchmark.js times whole cycles, so the row above includes the bench's own find + remove of each
// flow (the table would fill otherwise). Here batches of 1024 verdicts that each open a flow are
// timed alone with hrtime; the 1024 flows are removed after the clock stops (that batch timed too,
// for the split). The same 1024 flows are new again in every round.
const openNs: number[] = [];
const removeNs: number[] = [];
const ROUNDS = quick ? 200 : 2000;
for (let r = 0; r < ROUNDS + 50; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < FRAMES; i++) {
    const s = allowed[i];
    ctx.l3 = pool.off[s] + 14;
    sink = (sink + big.inside(ctx, s)) | 0;
  }
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < FRAMES; i++) ct.remove(ct.find(6, ipNumCache[i * 2] | 0, ipNumCache[i * 2 + 1] | 0, 50000 + i, portCache[i]));
  const t2 = process.hrtime.bigint();
  if (r >= 50) {
    openNs.push(Number(t1 - t0) / FRAMES);
    removeNs.push(Number(t2 - t1) / FRAMES);
  }
}
const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
console.log(`\nnew-flow verdict, 10 000 rules, allowed + opened, removal outside the timing (${ROUNDS} batches of ${FRAMES}, hrtime):`);
console.log(`  verdict + open: median ${median(openNs).toFixed(1)} ns, p10 ${pct(openNs, 0.1).toFixed(1)}, p90 ${pct(openNs, 0.9).toFixed(1)}; the bench's find + remove: median ${median(removeNs).toFixed(1)} ns per flow`);

// ---------------------------------------------------------------- allocation proof
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.log('\nallocation proof skipped: run with node --expose-gc');
  process.exitCode = 1;
} else {
  const PACKETS = Number(process.env.PACKETS ?? 1_000_000);
  const measure = (work: () => void) => heapDuring(gc, work);
  const ring: unknown[] = new Array(1024).fill(null);
  const cases: [string, () => void][] = [
    ['established-flow verdicts', established],
    ['new-flow verdicts, denied (10 000 rules)', newDenied],
    ['new-flow verdicts, allowed + opened + removed', newAllowed],
    ['new-flow verdicts, 10 000 /32-source wildcard rules', cidrWildDenied],
    ['new-flow verdicts, 10 000 group rules, none match', groupMissDenied],
    ['new-flow verdicts, 10 000 rules in one cell', oneCellDenied],
    ['new-flow verdicts, worst case (289 cells)', worstDenied],
    ['IPv6 new-flow verdicts, denied (10 000 rules)', v6NewDenied],
    ['IPv6 established-flow verdicts', v6Established],
    ['control: 1 object per packet', () => void (ring[k++ & 1023] = { k, len: 64 })],
  ];
  console.log(`\nallocation proof: ${PACKETS.toLocaleString('en')} verdicts each, after warm-up`);
  console.log('| run | heap growth | per packet | GC events | CPU (user) ns per verdict |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [label, fn] of cases) {
    for (let i = 0; i < 100_000; i++) fn();
    const m = await measure(() => {
      for (let i = 0; i < PACKETS; i++) fn();
    });
    console.log(`| ${label} | ${(m.growth / 1024).toFixed(1)} KiB | ${(m.growth / PACKETS).toFixed(3)} B | ${m.gcs} | ${((m.cpuUs * 1000) / PACKETS).toFixed(1)} |`);
  }
}
if (sink === 0.5) console.log(sink);
