/**
 * Per-segment TCP checksum work of the TAP offload paths, C (csrc/csum.c) against the JavaScript
 * reference, and the allocation proof:
 *
 *   node --expose-gc --conditions=source --import tsx bench/micro-checksum.ts [--quick]
 *   node --conditions=source --import tsx bench/micro-checksum.ts --loop <tso|gro> <native|js> <rounds>
 *
 * 1. TSO: one 64 KiB super-frame (46 × 1400-byte segments) cut by TcpSegmenter per op.
 * 2. GRO: one batch of 46 in-order 1400-byte segments planned by TcpCoalescer per op (every
 *    segment's TCP checksum verified, one merged write).
 * 3. Allocation proof: bytes of heap growth and GCs per super-frame over 20 000 of them.
 * `--loop` runs just `rounds` ops of one path and prints nothing else: instruction counts come
 * from running it under `valgrind --tool=callgrind` at two round counts (see docs/native-checksum.md),
 * which a loaded machine cannot spoil the way it spoils wall-clock time.
 */
import { loadavg } from 'node:os';
import { BufferPool, PacketBatch, internetChecksum, onesComplementSum } from '@overlay/dataplane';
import type { ChecksumImpl } from '../packages/native/src/checksum.js';
import { TcpCoalescer } from '../packages/native/src/gro.js';
import { TcpSegmenter } from '../packages/native/src/tso.js';
import { heapDuring } from './lib/heap.js';
import { runSuite } from './lib/suite.js';

const SEGS = 46;
const MSS = 1400;

function tcp(seq: number, payload: number): Buffer {
  const f = Buffer.alloc(54 + payload);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40 + payload, 16);
  f[22] = 64;
  f[23] = 6;
  Buffer.from([198, 19, 0, 1, 198, 19, 0, 2]).copy(f, 26);
  f.writeUInt16BE(internetChecksum(f, 14, 20), 24);
  f.writeUInt32BE(seq, 38);
  f[46] = 5 << 4;
  f[47] = 0x10;
  for (let i = 54; i < f.length; i++) f[i] = (i * 31) & 0xff;
  f.writeUInt16BE(internetChecksum(f, 34, 20 + payload, onesComplementSum(f, 26, 8, 6 + 20 + payload)), 50);
  return f;
}

/** One op = cut one 64 KiB super-frame; the sink releases the segments. */
function tsoOp(impl: ChecksumImpl): () => void {
  const jumbo = new BufferPool({ count: 2, frameCapacity: 65535, headroom: 64 });
  const pool = new BufferPool({ count: 256 });
  const sup = tcp(1000, SEGS * MSS);
  const seg = new TcpSegmenter(pool, (b) => {
    for (let i = 0; i < b.count; i++) pool.release(b.slots[i]);
  }, 64, impl);
  const jb = new PacketBatch(1);
  const vnet = Buffer.from([1, 1, 54, 0, MSS & 0xff, MSS >> 8, 34, 0, 16, 0, 0, 0]);
  const j0 = jumbo.acquire();
  jumbo.fill(j0, sup);
  vnet.copy(jumbo.data, jumbo.off[j0] - 12);
  jumbo.release(j0);
  // The segmenter releases the jumbo slot; the same slot comes back with the frame still in it.
  return () => {
    const j = jumbo.acquire();
    jumbo.len[j] = sup.length;
    jb.clear();
    jb.push(j);
    seg.consume(jumbo, jb);
  };
}

/** One op = plan one batch of 46 in-order segments (the first frame restored: plan rewrites it). */
function groOp(impl: ChecksumImpl): () => void {
  const pool = new BufferPool({ count: SEGS });
  const batch = new PacketBatch(SEGS);
  for (let i = 0; i < SEGS; i++) {
    const s = pool.acquire();
    pool.fill(s, tcp(1000 + i * MSS, MSS));
    batch.push(s);
  }
  const first = Buffer.from(pool.copyOut(batch.slots[0]));
  const co = new TcpCoalescer(impl);
  return () => {
    first.copy(pool.data, pool.off[batch.slots[0]]);
    if (co.plan(pool, batch) !== 1) throw new Error('the bench batch did not merge into one write');
  };
}

const paths = { tso: tsoOp, gro: groOp };
const la = () => loadavg().map((x) => x.toFixed(2)).join(' ');

const at = process.argv.indexOf('--loop');
if (at >= 0) {
  const [path, impl, rounds] = process.argv.slice(at + 1);
  const op = paths[path as keyof typeof paths](impl as ChecksumImpl);
  for (let r = 0, n = Number(rounds); r < n; r++) op();
} else {
  const quick = process.argv.includes('--quick');
  process.stdout.write(`checksum micro-benchmark: ${SEGS} × ${MSS} B per op, load average ${la()}\n`);
  const ops = { 'tso native': tsoOp('native'), 'tso js': tsoOp('js'), 'gro native': groOp('native'), 'gro js': groOp('js') };
  const rows = await runSuite('checksum', (s) => {
    for (const [name, op] of Object.entries(ops)) s.add(name, op, quick ? { maxTime: 0.5 } : { maxTime: 3 });
  });
  const hz = Object.fromEntries(rows.map((r) => [r.name, r.hz]));
  for (const r of rows) {
    process.stdout.write(`  ${r.name.padEnd(11)} ${(1e6 / r.hz).toFixed(2).padStart(8)} µs/op  ${((r.hz * SEGS) / 1e6).toFixed(2)} M segments/s  ±${r.rme.toFixed(1)} %  (${r.samples} samples)\n`);
  }
  process.stdout.write(`  C/JS speed-up (median op times): tso ${(hz['tso native'] / hz['tso js']).toFixed(2)}×, gro ${(hz['gro native'] / hz['gro js']).toFixed(2)}×\n`);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc for the allocation proof');
  const N = quick ? 2_000 : 20_000;
  for (const [name, op] of Object.entries(ops)) {
    const h = await heapDuring(gc, () => {
      for (let r = 0; r < N; r++) op();
    });
    process.stdout.write(`  alloc ${name.padEnd(11)} ${N} ops: heap growth ${(h.growth / N).toFixed(2)} B/op, GCs ${h.gcs}\n`);
  }
  process.stdout.write(`load average after: ${la()}\n`);
}
