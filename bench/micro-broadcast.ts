/**
 * Broadcast queue micro-benchmark (benchmark.js): packets filled per second by `take`, the
 * agent's per-packet piggyback step, at queue depths 10 … 10 000, in one run for
 *
 * - `sort`: the queue as it was (copy every item and sort by (transmits, newest) per packet),
 *   kept here as the reference;
 * - `buckets`: packages/agent/src/broadcast.ts (one list per transmit count, no sort).
 *
 *   node --expose-gc --conditions=source --import tsx bench/micro-broadcast.ts [--quick]
 *
 * Each op is one take(1300 bytes, N = 100 members) into a reused array; the queue is topped up
 * to its depth with fresh 120-byte items (an endpoint record's size) after every op, the same for
 * both. Rates are medians of benchmark.js samples, with the relative margin of error.
 *
 * Allocation: heap bytes per take from a 1000-deep queue (no refill during the measurement),
 * against the loop alone.
 */
import Benchmark from 'benchmark';
import { BroadcastQueue } from '../packages/agent/src/broadcast.js';
import { median } from './lib/stats.js';
import { fmtRate as fmt, runSuite } from './lib/suite.js';

const quick = process.argv.includes('--quick');

/** The pre-bucket queue: same semantics, a sort of every item per packet. */
class SortedQueue {
  private items = new Map<string, { key: string; bytes: Uint8Array; transmits: number; order: number }>();
  private counter = 0;
  constructor(private readonly mult: number) {}
  get size(): number {
    return this.items.size;
  }
  queue(key: string, bytes: Uint8Array): void {
    this.items.delete(key);
    this.items.set(key, { key, bytes, transmits: 0, order: this.counter++ });
  }
  take(budget: number, n: number, out: Uint8Array[] = []): Uint8Array[] {
    if (this.items.size === 0) return out;
    const limit = this.mult * Math.ceil(Math.log10(n + 1));
    const sorted = [...this.items.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order);
    let used = 0;
    for (const it of sorted) {
      if (used + it.bytes.length > budget) continue;
      used += it.bytes.length;
      out.push(it.bytes);
      if (++it.transmits >= limit) this.items.delete(it.key);
      if (budget - used < 16) break;
    }
    return out;
  }
}

interface Q {
  readonly size: number;
  queue(key: string, bytes: Uint8Array): void;
  take(budget: number, n: number, out?: Uint8Array[]): Uint8Array[];
}

function workload(q: Q, depth: number): () => void {
  const item = new Uint8Array(120);
  const keys = Array.from({ length: depth * 4 }, (_, i) => `e:blue\u0000ep-${i}`);
  let next = 0;
  const refill = () => {
    while (q.size < depth) q.queue(keys[next++ % keys.length], item);
  };
  refill();
  const out: Uint8Array[] = [];
  return () => {
    out.length = 0;
    q.take(1300, 100, out);
    refill();
  };
}

const opts: Benchmark.Options = quick ? { maxTime: 0.3, minSamples: 5 } : { maxTime: 1.5, minSamples: 10 };

/**
 * Heap bytes per take, median of `rounds`: each round queues 1000 items (limit 40 sends each, so
 * 3000 takes never refill), collects garbage, then measures heapUsed across the takes alone.
 */
function allocation(make: () => Q, rounds: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const item = new Uint8Array(120);
  const perTake: number[] = [];
  const out: Uint8Array[] = new Array(64).fill(item);
  for (let r = 0; r < rounds; r++) {
    const q = make();
    for (let i = 0; i < 1000; i++) q.queue(`e:blue\u0000ep-${i}`, item);
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    for (let i = 0; i < 3000; i++) {
      out.length = 0;
      q.take(1300, 1e9, out); // N = 10^9: limit 4 × 10 = 40 sends
    }
    perTake.push((process.memoryUsage().heapUsed - heap0) / 3000);
  }
  return median(perTake);
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${quick ? 'quick' : 'full'} run; take(1300 B, N=100) per op, 120-byte items`);
  const depths = [10, 100, 1000, 10_000];
  const rows = await runSuite('broadcast', (s) => {
    for (const d of depths) {
      s.add(`sort    depth ${d}`, workload(new SortedQueue(4), d), opts);
      s.add(`buckets depth ${d}`, workload(new BroadcastQueue(4), d), opts);
    }
  });
  console.log('\n| take() at queue depth | sort (before) | buckets (after) | after / before |\n| --- | ---: | ---: | ---: |');
  for (const d of depths) {
    const a = rows.find((r) => r.name === `sort    depth ${d}`)!;
    const b = rows.find((r) => r.name === `buckets depth ${d}`)!;
    console.log(`| ${d} | ${fmt(a.hz)}/s ±${a.rme.toFixed(1)} % | ${fmt(b.hz)}/s ±${b.rme.toFixed(1)} % | ×${(b.hz / a.hz).toFixed(1)} |`);
  }
  const rounds = quick ? 5 : 21;
  const ten = Array.from({ length: 10 }, () => new Uint8Array(120));
  // Baseline: what the loop itself does to `out` (reset, ten pushes), no queue.
  const loop = allocation(() => ({ size: 0, queue: () => {}, take: (_b, _n, out = []) => { for (const t of ten) out.push(t); return out; } }), rounds);
  const before = allocation(() => new SortedQueue(4), rounds);
  const after = allocation(() => new BroadcastQueue(4), rounds);
  console.log(`\nheap bytes per take at depth 1000 (median of ${rounds} × 3000): loop alone ${loop.toFixed(0)}, sort ${before.toFixed(0)}, buckets ${after.toFixed(0)}`);
}

await main();
