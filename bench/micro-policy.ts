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
 *    removes the flow again so the table does not fill — the remove is in the figure);
 * 3. 10 000 TCP rules without ports from a /32 source each (the tuple space: one probe), and the
 *    worst case, 10 000 TCP rules without ports from a group the source is not in (every one walked);
 * 4. allocation proof: 10^6 verdicts of each kind, heap growth and GC count, and a control that
 *    allocates one object per packet; with the process's user CPU time per verdict, a cross-check
 *    of benchmark.js's wall-clock figures on a machine whose load average exceeds its cores.
 */
import Benchmark from 'benchmark';
import { BufferPool, type StageContext } from '@overlay/dataplane';
import { PolicyFilter, type Policy, type PolicyRule } from '@overlay/services';
import { heapDuring } from './lib/heap.js';
import { median, spreadPct } from './lib/stats.js';
import { runSuite } from './lib/suite.js';

const quick = process.argv.includes('--quick');
const FRAMES = 1024;
const SYN = 0x02;
const ACK = 0x10;
const ip = (n: number) => `198.19.${(n >> 8) & 255}.${n & 255}`;
const ipNum = (n: number) => (0xc6130000 | (n & 0xffff)) >>> 0;

// ---------------------------------------------------------------- rule sets
function bigPolicy(): Policy {
  const admin: PolicyRule[] = [];
  const network: PolicyRule[] = [];
  const service: PolicyRule[] = [];
  for (let i = 0; i < 100; i++) admin.push({ id: `a${i}`, action: 'deny', to: { cidrs: [`198.19.${200 + (i % 50)}.${i}/32`] }, proto: 'tcp', ports: [String(20 + i)] });
  for (let i = 0; i < 9800; i++) network.push({ id: `n${i}`, action: 'allow', from: { groups: [`g${i % 200}`] }, to: { groups: [`g${(i * 7 + 3) % 200}`] }, proto: 'tcp', ports: [String(1000 + i)] });
  for (let i = 0; i < 100; i++) service.push({ id: `s${i}`, action: 'allow', from: { cidrs: [`198.18.${i}.0/24`] } });
  return { defaultAction: 'deny', tiers: { admin, network, service } };
}

function cidrWildPolicy(): Policy {
  const network: PolicyRule[] = [];
  for (let i = 0; i < 10_000; i++) network.push({ id: `w${i}`, action: 'allow', from: { cidrs: [`198.18.${i >> 8}.${i & 255}/32`] }, proto: 'tcp' });
  return { defaultAction: 'deny', tiers: { network } };
}

function worstPolicy(): Policy {
  const network: PolicyRule[] = [];
  for (let i = 0; i < 10_000; i++) network.push({ id: `w${i}`, action: 'allow', from: { groups: [`nobody${i % 100}`] }, proto: 'tcp' });
  return { defaultAction: 'deny', tiers: { network } };
}

// ---------------------------------------------------------------- frames in slots
const pool = new BufferPool({ count: FRAMES * 4 });
function writeTcp(slot: number, src: number, dst: number, sport: number, dport: number, flags: number): void {
  const d = pool.data;
  const o = pool.off[slot];
  d.fill(0, o, o + 54);
  d[o] = 2; // dst MAC 02:00:00:00:00:02
  d[o + 5] = 2;
  d[o + 6] = 2;
  d[o + 11] = 1;
  d.writeUInt16BE(0x0800, o + 12);
  const l3 = o + 14;
  d[l3] = 0x45;
  d.writeUInt16BE(40, l3 + 2);
  d[l3 + 8] = 64;
  d[l3 + 9] = 6;
  d.writeUInt32BE(src, l3 + 12);
  d.writeUInt32BE(dst, l3 + 16);
  d.writeUInt16BE(sport, l3 + 20);
  d.writeUInt16BE(dport, l3 + 22);
  d[l3 + 32] = 0x50;
  d[l3 + 33] = flags;
  pool.len[slot] = 54;
}
function slots(n: number): Int32Array {
  const s = new Int32Array(n);
  for (let i = 0; i < n; i++) s[i] = pool.acquire();
  return s;
}

const ctx = {
  pool,
  vni: 42,
  etherType: 0x0800,
  l3: 0,
  group: false,
  toDevice() {},
  toNetwork() {},
  drop() {},
} satisfies StageContext;

function filter(policy: Policy): PolicyFilter {
  const f = new PolicyFilter({ policy, timers: false, capacity: 1 << 16, log: () => {}, logRate: 0, logBurst: 0 });
  // 1000 workloads, each in one or two of 200 groups.
  for (let n = 1; n <= 1000; n++) f.identity.set(ip(n), n % 3 === 0 ? [`g${n % 200}`, `g${(n * 13) % 200}`] : [`g${n % 200}`]);
  f.attach(ctx);
  return f;
}

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
const worst = filter(worstPolicy());
const worstSlots = slots(FRAMES);
for (let i = 0; i < FRAMES; i++) writeTcp(worstSlots[i], ipNum(1 + i), ipNum(2 + i), 20000 + i, 80, SYN);

let k = 0;
let sink = 0;
function established(): void {
  const s = est[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink += big.inside(ctx, s);
}
function newDenied(): void {
  const s = denied[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink += big.inside(ctx, s);
}
const ct = big.conntrack;
function newAllowed(): void {
  const i = k++ & (FRAMES - 1);
  const s = allowed[i];
  ctx.l3 = pool.off[s] + 14;
  sink += big.inside(ctx, s);
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
  sink += cidrWild.inside(ctx, s);
}
function worstDenied(): void {
  const s = worstSlots[k++ & (FRAMES - 1)];
  ctx.l3 = pool.off[s] + 14;
  sink += worst.inside(ctx, s);
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
console.log(`ruleset: ${big.compiled.size} rules, ${big.compiled.bucketCount} port buckets; worst case: ${worst.compiled.size} rules`);

// ---------------------------------------------------------------- benchmark.js
const opts: Benchmark.Options = quick ? { maxTime: 0.3, minSamples: 5 } : { maxTime: 2, minSamples: 20 };
const rows = await runSuite('policy', (suite) => {
  suite.add('established-flow verdict (TCP ACK, tracked)', established, opts);
  suite.add('new-flow verdict, 10 000 rules, denied by default', newDenied, opts);
  suite.add('new-flow verdict, 10 000 rules, allowed + opened (+ bench removes it)', newAllowed, opts);
  suite.add('new-flow verdict, 10 000 port-less TCP rules from /32 sources, none match', cidrWildDenied, opts);
  suite.add('worst case: 10 000 port-less TCP rules from groups, none match', worstDenied, opts);
});
console.log('\n| verdict | median ns/op | spread (max−min)/median | ±rme | samples |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${(median(r.sample) * 1e9).toFixed(1)} | ${spreadPct(r.sample).toFixed(1)} % | ${r.rme.toFixed(1)} % | ${r.samples} |`);

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
