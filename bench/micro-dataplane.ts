/**
 * Dataplane micro-benchmarks (benchmark.js) and the allocation proof.
 *
 *   node --expose-gc --conditions=source --import tsx bench/micro-dataplane.ts [--quick] [--alloc-only] [--stages-only] [--baseline <rev>] [--save]
 *
 * 1. encap+decap round trip (VXLAN header written into headroom, then parsed and stripped)
 *    for 64, 1400 and 9000-byte frames: the codec cost per packet.
 * 2. the same sizes through the real pipeline: device batch → inside (FDB lookup, encap) →
 *    a loopback transport (copies each datagram into a fresh slot, as a socket receive would)
 *    → outside (decap, VNI demux) → device write.
 * 3. FDB lookup with 10 000 entries; 4. pool acquire/release.
 * 5. allocation proof: 10^6 packets through inside/outside, heap growth and GC count (also with
 *    stages installed).
 * 6. stage seam cost: inside+outside with an empty stage list against the pipeline of `--baseline`
 *    (default: the commit before the seam). Each variant imports its own copy of
 *    packages/dataplane/src (the baseline's through `git archive`, the working tree's copied) from
 *    a temporary directory: same process, interleaved rounds, paired per round, median and
 *    quartiles, with an A/A control (a second copy of the baseline). `--save` writes this section's tables into
 *    bench/results/dataplane.md (between the stage-seam markers); a plain run writes nothing.
 */
import Benchmark from 'benchmark';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BufferPool, ETHERTYPE_IPV4, PASS, PacketBatch, PairTable, createDataplane, decodeVxlan, encodeVxlan, type BatchSink, type Stage, type StageContext, type Transport } from '@overlay/dataplane';
import { CountingDevice, CountingTransport, buildArpRequest, buildFrame, buildNeighborSolicitation } from '@overlay/dataplane/testing';
import { heapDuring } from './lib/heap.js';
import { fmtRate as fmt, runSuite } from './lib/suite.js';
import { median, quantile } from './lib/stats.js';

const quick = process.argv.includes('--quick');
const BATCH = 64;

// ---------------------------------------------------------------- pipeline harness
/** A device the bench drives: `push(n)` hands n frames from a template to the dataplane. */
class BenchDevice extends CountingDevice {
  private readonly batch = new PacketBatch(BATCH);
  constructor(
    mtu: number,
    private readonly template: Uint8Array,
  ) {
    super(mtu, 'bench0');
  }
  /**
   * One batch of frames into the dataplane. With `copy` false the frame is not copied: every
   * slot was filled once up front and encap only writes headroom, so resetting off/len
   * presents the same frame again (measures the dataplane alone, without the device's copy).
   */
  push(n: number, copy = true): void {
    const pool = this.pool;
    const b = this.batch;
    b.clear();
    for (let i = 0; i < n; i++) {
      const slot = pool.acquire();
      if (copy) pool.fill(slot, this.template);
      else {
        pool.off[slot] = slot * pool.stride + pool.headroom;
        pool.len[slot] = this.template.length;
      }
      b.slots[b.count++] = slot;
    }
    this.sink(b);
  }
}

/**
 * A transport that reflects every datagram back as if the remote VTEP had sent it: send()
 * copies each into a fresh slot (what recvmmsg into the pool would do); deliver() hands the
 * batch to the dataplane's outside sink after inside has returned (no re-entrancy).
 */
class LoopTransport implements Transport {
  readonly localPort = 4789;
  private sink: BatchSink = () => {};
  private readonly rx = new PacketBatch(BATCH * 4);
  start(_pool: BufferPool, sink: BatchSink): void {
    this.sink = sink;
  }
  send(pool: BufferPool, batch: PacketBatch): number {
    const d = pool.data;
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      const r = pool.acquire();
      if (r < 0) return i;
      const off = pool.off[s];
      const len = pool.len[s];
      const roff = r * pool.stride + pool.headroom;
      d.copyWithin(roff, off, off + len);
      pool.off[r] = roff;
      pool.len[r] = len;
      pool.family[r] = pool.family[s];
      pool.port[r] = pool.port[s];
      for (let k = 0; k < 16; k++) pool.addr[r * 16 + k] = pool.addr[s * 16 + k];
      this.rx.slots[this.rx.count++] = r;
    }
    return batch.count;
  }
  deliver(): void {
    if (this.rx.count === 0) return;
    this.sink(this.rx);
    this.rx.clear();
  }
  async close(): Promise<void> {}
}

/**
 * One direction alone, no copies: `inside` with a transport that only counts, or `outside`
 * fed datagrams that were written into every slot once (decap only moves off/len).
 */
function oneDirection(frameLen: number, direction: 'inside' | 'outside') {
  const dst = '02:00:00:00:00:02';
  const frame = buildFrame({ dst, src: '02:00:00:00:00:01', payload: new Uint8Array(frameLen - 14) });
  const datagram = Buffer.alloc(8 + frame.length);
  encodeVxlan(datagram, 0, 4242);
  datagram.set(frame, 8);
  const pool = new BufferPool({ count: 1024, frameCapacity: 9100 });
  for (let s = 0; s < pool.count; s++) pool.fill(pool.acquire(), direction === 'inside' ? frame : datagram);
  for (let s = 0; s < pool.count; s++) pool.release(s);
  const dev = new BenchDevice(9000, frame);
  const transport = new CountingTransport();
  const dp = createDataplane({ transport, pool, batchSize: BATCH, networks: [{ vni: 4242, device: dev }] });
  dp.setFdb(4242, dst, { address: '198.18.0.2' });
  dp.start();
  const rx = new PacketBatch(BATCH);
  const receive = () => {
    rx.clear();
    for (let i = 0; i < BATCH; i++) {
      const slot = pool.acquire();
      pool.off[slot] = slot * pool.stride + pool.headroom;
      pool.len[slot] = datagram.length;
      pool.family[slot] = 4;
      pool.port[slot] = 4789;
      rx.slots[rx.count++] = slot;
    }
    transport.sink(rx);
  };
  const run = direction === 'inside' ? () => dev.push(BATCH, false) : receive;
  return { run, dp, sent: () => transport.sent };
}

/**
 * A filter that looks at every frame in both directions and lets it pass: reads the L3 view and,
 * for IPv4, the protocol byte — the least a policy filter does. Measures the seam in use.
 */
class PeekFilter implements Stage {
  readonly name = 'peek';
  readonly kind = 'filter';
  seen = 0;
  inside(ctx: StageContext, _slot: number): number {
    if (ctx.etherType === ETHERTYPE_IPV4 && ctx.pool.data[ctx.l3 + 9] === 255) this.seen++;
    this.seen++;
    return PASS;
  }
  outside(ctx: StageContext, slot: number): number {
    return this.inside(ctx, slot);
  }
}

function pipeline(frameLen: number, learning = true, frame?: Uint8Array, floodVteps = 0, stages: Stage[] = []) {
  const dst = '02:00:00:00:00:02';
  const template = frame ?? buildFrame({ dst, src: '02:00:00:00:00:01', payload: new Uint8Array(frameLen - 14) });
  const pool = new BufferPool({ count: 1024, frameCapacity: 9100 });
  const dev = new BenchDevice(9000, template);
  const transport = new LoopTransport();
  const dp = createDataplane({ transport, pool, batchSize: BATCH, networks: [{ vni: 4242, device: dev, learning, stages }] });
  dp.setFdb(4242, dst, { address: '198.18.0.2' });
  dp.setNeighbour(4242, '198.19.0.2', dst);
  dp.setNeighbour(4242, '2001:db8::2', dst);
  for (let i = 0; i < floodVteps; i++) dp.addFloodVtep(4242, { address: `198.18.0.${10 + i}` });
  dp.start();
  /** Push `packets` frames through inside and back through outside, BATCH at a time. */
  const run = (packets: number) => {
    for (let n = 0; n < packets; n += BATCH) {
      dev.push(BATCH);
      transport.deliver();
    }
  };
  return { dp, dev, pool, run };
}

// ---------------------------------------------------------------- benchmark.js suites (bench/lib/suite.ts)
const opts: Benchmark.Options = quick ? { maxTime: 0.3, minSamples: 5 } : { maxTime: 1.5, minSamples: 10 };

async function main(): Promise<void> {
  if (!process.argv.includes('--seam-child')) console.log(`node ${process.version}, ${quick ? 'quick' : 'full'} run, batch ${BATCH}`);
  if (process.argv.includes('--alloc-only')) return void (await allocationProof());
  if (process.argv.includes('--seam-child')) {
    const at = process.argv.indexOf('--baseline');
    return seamChild(at > 0 ? process.argv[at + 1] : BASELINE_DEFAULT);
  }
  if (process.argv.includes('--stages-only')) return stageSeamCost();
  const results: { name: string; perSec: number; rme: number; unit: string }[] = [];

  // 1. codec round trip over a batch of BATCH pool slots; one op = BATCH packets, each
  //    encapsulated (header written into headroom) and decapsulated (parsed, stripped).
  const codec = await runSuite('codec', (s) => {
    for (const size of [64, 1400, 9000]) {
      const pool = new BufferPool({ count: BATCH, frameCapacity: 9100 });
      const slots = new Int32Array(BATCH);
      for (let i = 0; i < BATCH; i++) {
        slots[i] = pool.acquire();
        pool.fill(slots[i], new Uint8Array(size));
      }
      const d = pool.data;
      const off = pool.off;
      const len = pool.len;
      let bad = 0;
      const roundTrip = () => {
        for (let i = 0; i < BATCH; i++) {
          const slot = slots[i];
          const o = off[slot] - 8; // encap: header into headroom
          encodeVxlan(d, o, 4242);
          off[slot] = o;
          len[slot] += 8;
          if (decodeVxlan(d, off[slot], len[slot]) !== 4242) bad++; // decap: parse, strip
          off[slot] += 8;
          len[slot] -= 8;
        }
      };
      for (let w = 0; w < 20_000; w++) roundTrip(); // warm up: the first case is otherwise measured while V8 optimises
      s.add(`encap+decap ${size} B`, roundTrip, opts);
      s.on('complete', () => {
        if (bad) throw new Error('decode mismatch');
      });
    }
  });
  for (const r of codec) results.push({ name: r.name, perSec: r.hz * BATCH, rme: r.rme, unit: 'packets/s' });

  // 2. full pipeline; one op = BATCH packets out and back in.
  const pipe = await runSuite('pipeline', (s) => {
    for (const size of [64, 1400, 9000]) {
      const p = pipeline(size);
      p.run(100_000); // warm up so the first case is not measured while V8 optimises
      s.add(`pipeline inside+outside ${size} B`, () => p.run(BATCH), opts);
    }
  });
  for (const r of pipe) results.push({ name: r.name, perSec: r.hz * BATCH, rme: r.rme, unit: 'packets/s' });

  // 2b. each direction alone, without the harness copies; one op = BATCH packets.
  const dirs = await runSuite('directions', (s) => {
    for (const direction of ['inside', 'outside'] as const) {
      const d = oneDirection(64, direction);
      for (let w = 0; w < 2000; w++) d.run();
      s.add(`${direction} only 64 B (no copies)`, d.run, opts);
    }
  });
  for (const r of dirs) results.push({ name: r.name, perSec: r.hz * BATCH, rme: r.rme, unit: 'packets/s' });

  // 3. FDB lookup, 10 000 entries, keys looked up in a shuffled order.
  const fdb = await runSuite('fdb', (s) => {
    const t = new PairTable(1 << 20);
    const N = 10_000;
    const hi = new Int32Array(N);
    const lo = new Int32Array(N);
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) | 0);
    for (let i = 0; i < N; i++) {
      hi[i] = 0x0200 | (rnd() & 0xfc00);
      lo[i] = rnd();
      const e = t.insert(hi[i], lo[i]); // may grow the arrays: index them afterwards
      t.va[e] = i;
    }
    let i = 0;
    let miss = 0;
    s.add('fdb lookup (10 000 entries)', () => {
      const e = t.find(hi[i], lo[i]);
      if (e < 0 || t.va[e] !== i) miss++;
      i = i + 7919 < N ? i + 7919 : (i + 7919) % N;
    }, opts);
    s.on('complete', () => {
      if (miss) throw new Error(`${miss} FDB misses`);
    });
  });
  for (const r of fdb) results.push({ name: r.name, perSec: r.hz, rme: r.rme, unit: 'lookups/s' });

  // 4. pool acquire/release.
  const pl = await runSuite('pool', (s) => {
    const pool = new BufferPool({ count: 4096, frameCapacity: 1600 });
    s.add('pool acquire+release', () => pool.release(pool.acquire()), opts);
  });
  for (const r of pl) results.push({ name: r.name, perSec: r.hz, rme: r.rme, unit: 'pairs/s' });

  console.log('\n| benchmark | median rate | ±rme (mean) |\n| --- | ---: | ---: |');
  for (const r of results) console.log(`| ${r.name} | ${fmt(r.perSec)} ${r.unit} | ${r.rme.toFixed(1)}% |`);
  const e64 = results.find((r) => r.name === 'encap+decap 64 B')!;
  const p64 = results.find((r) => r.name === 'pipeline inside+outside 64 B')!;
  console.log(`\nratios (same run): codec 64 B / pipeline 64 B = ${(e64.perSec / p64.perSec).toFixed(1)}x; codec 64 B vs 10 M/s target = ${(e64.perSec / 1e7).toFixed(2)}x`);

  const alloc = await allocationProof(); // every row, stages included
  await stageSeamCost(alloc.filter((r, i) => i < 2 || r.includes('stage') || r.startsWith('| control'))); // header, stage rows, control
}

// ---------------------------------------------------------------- allocation proof
async function allocationProof(onlyStages = false): Promise<string[]> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    console.log('\nallocation proof skipped: run with node --expose-gc');
    process.exitCode = 1;
    return [];
  }
  const PACKETS = Number(process.env.PACKETS ?? 1_000_000);
  const rows: string[] = [];
  const measure = (work: () => void) => heapDuring(gc, work);
  const row = (label: string, m: { growth: number; gcs: number; secs: number }) =>
    `| ${label} | ${PACKETS.toLocaleString('en')} | ${(m.growth / 1024).toFixed(1)} KiB | ${(m.growth / PACKETS).toFixed(3)} B | ${m.gcs} | ${fmt(PACKETS / m.secs)} packets/s |`;
  const arp = buildArpRequest({ srcMac: '02:00:00:00:00:01', srcIp: '198.19.0.1', targetIp: '198.19.0.2' });
  const ns = buildNeighborSolicitation({ srcMac: '02:00:00:00:00:01', srcIp: '2001:db8::1', targetIp: '2001:db8::2' });
  const bcast = buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:01', payload: new Uint8Array(50) });
  const cases: [string, number, boolean, Uint8Array | undefined, number?, (() => Stage[])?][] = [
    ['64 B, learning off', 64, false, undefined],
    ['64 B, learning on', 64, true, undefined],
    ['1400 B, learning on', 1400, true, undefined],
    ['ARP requests answered locally', 42, false, arp],
    ['IPv6 NS answered locally', ns.length, false, ns],
    ['broadcast, head-end replicated to 3 VTEPs', 64, false, bcast, 3],
    ['oversized frames dropped (counted)', 9050, false, buildFrame({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', payload: new Uint8Array(9050 - 14) })],
    ['64 B, learning on, a PASS filter stage on every frame, both directions', 64, true, undefined, 0, () => [new PeekFilter()]],
    ['ARP answered by the arp stage behind a PASS filter', 42, false, arp, 0, () => [new PeekFilter()]],
  ];
  for (const [label, size, learning, frame, floodVteps, stages] of cases) {
    if (onlyStages && !stages) continue;
    const p = pipeline(size, learning, frame, floodVteps, stages?.() ?? []);
    p.run(300_000); // warm up: optimise, size every table and batch
    const before = p.dp.stats();
    const m = await measure(() => p.run(PACKETS));
    const s = p.dp.stats();
    const done = !frame || floodVteps
      ? s.outside.delivered - before.outside.delivered
      : label.startsWith('oversized')
        ? s.drops.frame_too_big - before.drops.frame_too_big
        : s.inside.arpSuppressed - before.inside.arpSuppressed;
    if (done < PACKETS || p.pool.available !== p.pool.count) throw new Error(`${label}: pipeline lost packets or slots`);
    rows.push(row(label, m));
  }
  // Control: the same measurement around a loop that allocates one small object per packet,
  // to show the instrument does see per-packet allocation.
  // The ring keeps each object reachable for a while, so escape analysis cannot remove it.
  const ring: unknown[] = new Array(1024).fill(null);
  const control = await measure(() => {
    for (let i = 0; i < PACKETS; i++) ring[i & 1023] = { slot: i, len: 64 };
  });
  rows.push(row('control: 1 object per packet', control));
  console.log('\nallocation proof: packets through inside → loopback → outside (ARP/NS: inside → device) after warm-up');
  const table = ['| run | packets | heap growth | per packet | GC events | rate |', '| --- | ---: | ---: | ---: | ---: | ---: |', ...rows];
  for (const r of table) console.log(r);
  return table;
}

// ---------------------------------------------------------------- stage seam cost
type DataplaneModule = typeof import('@overlay/dataplane');
const here = dirname(fileURLToPath(import.meta.url));
const BASELINE_DEFAULT = '55230b3b7ef25f0979357b2a33f1368a8385f983'; // the last commit before the stage seam

/**
 * A private copy of the dataplane sources — of commit `rev` (git archive), or of the working tree
 * for `rev` = null — imported from a temporary directory. Each variant gets its own copy, so no
 * variant's type feedback or inlining shapes the code another variant runs.
 */
async function loadCopy(rev: string | null): Promise<{ mod: DataplaneModule; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'dp-copy-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    if (rev === null) cpSync(join(here, '..', 'packages/dataplane/src'), join(dir, 'packages/dataplane/src'), { recursive: true });
    else {
      const tar = execFileSync('git', ['-C', join(here, '..'), 'archive', rev, 'packages/dataplane/src'], { maxBuffer: 64 << 20 });
      execFileSync('tar', ['-x', '-C', dir], { input: tar });
    }
    // Transpiled as the workspace is: ES modules (without this tsx would make CommonJS, whose
    // getter-based import bindings alone cost a factor 2) and the workspace's compiler options.
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    writeFileSync(join(dir, 'tsconfig.json'), readFileSync(join(here, '..', 'tsconfig.base.json')));
    const mod = (await import(pathToFileURL(join(dir, 'packages/dataplane/src/index.ts')).href)) as DataplaneModule;
    return { mod, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/**
 * inside and outside of one implementation, without copies (as `oneDirection`): one op is BATCH
 * unicast frames from the device (FDB hit, encap, counting transport) and BATCH datagrams from
 * the underlay (decap, VNI demux, counting device), each on its own dataplane so every slot
 * already holds the bytes its direction needs.
 */
function bothDirections(m: DataplaneModule, network: () => Record<string, unknown>) {
  const dst = '02:00:00:00:00:02';
  const frame = buildFrame({ dst, src: '02:00:00:00:00:01', payload: new Uint8Array(50) });
  const datagram = Buffer.alloc(8 + frame.length);
  encodeVxlan(datagram, 0, 4242);
  datagram.set(frame, 8);
  const mk = (bytes: Uint8Array) => {
    const pool = new m.BufferPool({ count: 256, frameCapacity: 1600 });
    for (let s = 0; s < pool.count; s++) pool.fill(pool.acquire(), bytes);
    for (let s = 0; s < pool.count; s++) pool.release(s);
    const dev = new CountingDevice(1500);
    const transport = new CountingTransport();
    const dp = m.createDataplane({ transport, pool, batchSize: BATCH, networks: [{ vni: 4242, device: dev, ...network() }] });
    dp.setFdb(4242, dst, { address: '198.18.0.2' });
    dp.start();
    return { pool, dev, transport, dp };
  };
  const a = mk(frame);
  const b = mk(datagram);
  const inBatch = new PacketBatch(BATCH);
  const outBatch = new PacketBatch(BATCH);
  const run = () => {
    inBatch.clear();
    for (let i = 0; i < BATCH; i++) {
      const slot = a.pool.acquire();
      a.pool.off[slot] = slot * a.pool.stride + a.pool.headroom;
      a.pool.len[slot] = frame.length;
      inBatch.slots[inBatch.count++] = slot;
    }
    a.dev.sink(inBatch);
    outBatch.clear();
    for (let i = 0; i < BATCH; i++) {
      const slot = b.pool.acquire();
      b.pool.off[slot] = slot * b.pool.stride + b.pool.headroom;
      b.pool.len[slot] = datagram.length;
      b.pool.family[slot] = 4;
      b.pool.port[slot] = 4789;
      outBatch.slots[outBatch.count++] = slot;
    }
    b.transport.sink(outBatch);
  };
  const check = (ops: number) => {
    if (a.transport.sent !== ops * BATCH || b.dev.written !== ops * BATCH || a.pool.available !== a.pool.count || b.pool.available !== b.pool.count) throw new Error('seam bench: packets or slots lost');
  };
  return { run, check };
}

const SEAM_LABELS = [
  'before the seam (baseline, defaults)',
  'A/A control: the same code as before, second copy',
  'empty stage list (arpSuppression: false)',
  'defaults: arp + nd responders (group frames only)',
  'one PASS filter on every frame, both directions',
];
const SEAM_ROUNDS = quick ? 21 : 81;
const SEAM_SLICE_MS = quick ? 20 : 30;

/**
 * One process's share of the seam comparison (run as a child: `--seam-child`): every variant on
 * its own copy of the code, interleaved in short slices of CPU time (not wall time: on a shared
 * machine the wall clock also counts the time other jobs hold the core), order rotated per round.
 * Prints the rates per variant and round as one JSON line.
 */
async function seamChild(rev: string): Promise<void> {
  // The second copy of `before` is a control: its "cost" is the method's own bias and noise.
  const copies = [await loadCopy(rev), await loadCopy(rev), await loadCopy(null), await loadCopy(null), await loadCopy(null)];
  try {
    const [before, before2, empty, defaults, filtered] = copies.map((c) => c.mod);
    const variants = [
      bothDirections(before, () => ({})),
      bothDirections(before2, () => ({})),
      bothDirections(empty, () => ({ arpSuppression: false })),
      bothDirections(defaults, () => ({})),
      bothDirections(filtered, () => ({ arpSuppression: false, stages: [new PeekFilter()] })),
    ];
    const ops = variants.map(() => 0);
    const rates: number[][] = variants.map(() => []);
    for (const v of variants) for (let w = 0; w < 20_000; w++) v.run(); // warm up every variant before measuring any
    for (let r = 0; r < SEAM_ROUNDS; r++) {
      for (let k = 0; k < variants.length; k++) {
        const j = (k + r) % variants.length;
        const run = variants[j].run;
        let n = 0;
        const c0 = process.cpuUsage();
        let us = 0;
        while (us < SEAM_SLICE_MS * 1000) {
          for (let q = 0; q < 50; q++) run();
          n += 50;
          const c = process.cpuUsage(c0);
          us = c.user + c.system;
        }
        ops[j] += n;
        rates[j].push((n * 2 * BATCH) / (us / 1e6));
      }
    }
    variants.forEach((v, j) => v.check(ops[j] + 20_000));
    console.log(`SEAM_JSON ${JSON.stringify(rates)}`);
  } finally {
    copies.forEach((c) => c.cleanup());
  }
}

/**
 * The seam comparison over several fresh processes (JIT decisions differ from one process to the
 * next, more than rounds within one differ): cost per (process, round) pair = 1 − rate / rate of
 * the baseline in that round; median and quartiles over all pairs, and each process's median.
 */
async function stageSeamCost(allocRows?: string[]): Promise<void> {
  const at = process.argv.indexOf('--baseline');
  const rev = at > 0 ? process.argv[at + 1] : BASELINE_DEFAULT;
  const PROCESSES = quick ? 1 : 3;
  const runs: number[][][] = [];
  for (let p = 0; p < PROCESSES; p++) {
    const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--seam-child', '--baseline', rev, ...(quick ? ['--quick'] : [])], { encoding: 'utf8', maxBuffer: 16 << 20 });
    const line = out.split('\n').find((l) => l.startsWith('SEAM_JSON '));
    if (!line) throw new Error(`seam child printed no result:\n${out}`);
    runs.push(JSON.parse(line.slice('SEAM_JSON '.length)) as number[][]);
  }
  const lines = [
    `${PROCESSES} fresh process(es) × ${SEAM_ROUNDS} interleaved rounds × ${SEAM_SLICE_MS} ms of CPU time per variant, each variant on its own copy of the code; one op = ${BATCH} frames inside + ${BATCH} datagrams outside, 64 B, no copies; cost = 1 − rate / rate before, paired per round`,
    '',
    '| variant | median rate | cost vs before: median of all rounds | cost: p25 … p75 | cost: median per process |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  SEAM_LABELS.forEach((label, j) => {
    const allRates = runs.flatMap((r) => r[j]);
    const name = j === 0 ? `before the seam (${rev.slice(0, 7)}, defaults)` : label;
    if (j === 0) return void lines.push(`| ${name} | ${fmt(median(allRates))} packets/s | — | — | — |`);
    const perProcess = runs.map((r) => r[j].map((x, k) => (1 - x / r[0][k]) * 100));
    const costs = perProcess.flat();
    const pct = (x: number) => `${x.toFixed(1)} %`;
    lines.push(`| ${name} | ${fmt(median(allRates))} packets/s | ${pct(median(costs))} | ${quantile(costs, 0.25).toFixed(1)} … ${pct(quantile(costs, 0.75))} | ${perProcess.map((c) => median(c).toFixed(1)).join(', ')} % |`);
  });
  console.log('\nstage seam cost:');
  for (const l of lines) console.log(l);
  const alloc = allocRows ?? (await allocationProof(true));
  if (process.argv.includes('--save')) save([`node ${process.version}, ${quick ? 'quick' : 'full'} run, load average ${loadavg()}`, '', ...lines, '', ...alloc]);
}

function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Replace the stage-seam block of bench/results/dataplane.md with this run's tables. */
function save(lines: string[]): void {
  const file = join(here, 'results', 'dataplane.md');
  const text = readFileSync(file, 'utf8');
  const begin = '<!-- stage-seam:begin (written by micro-dataplane.ts --save) -->';
  const end = '<!-- stage-seam:end -->';
  const i = text.indexOf(begin);
  const k = text.indexOf(end);
  if (i < 0 || k < i) throw new Error(`${file}: stage-seam markers missing`);
  writeFileSync(file, `${text.slice(0, i + begin.length)}\n${lines.join('\n')}\n${text.slice(k)}`);
  console.log(`\nsaved to ${file}`);
}

await main();
