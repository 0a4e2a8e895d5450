/**
 * Allocation budget of the TAP offload paths, in memory: TcpSegmenter cutting 64 KiB TCP
 * segments into 1400-byte frames, and TcpCoalescer planning GSO writes over batches of 64
 * in-order segments. Prints GCs and heap growth over millions of frames.
 * Run: node --expose-gc --conditions=source --import tsx packages/native/bench/alloc-offload.ts [rounds]
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { BufferPool, internetChecksum, onesComplementSum, PacketBatch } from '@overlay/dataplane';
import { TcpCoalescer } from '../src/gro.js';
import { TcpSegmenter } from '../src/tso.js';

const rounds = Number(process.argv[2] ?? 20_000);

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
  f.writeUInt16BE(internetChecksum(f, 34, 20 + payload, onesComplementSum(f, 26, 8, 6 + 20 + payload)), 50);
  return f;
}

let gcs = 0;
const obs = new PerformanceObserver((l) => (gcs += l.getEntries().length));
const measure = (name: string, frames: number, fn: () => void) => {
  fn(); // warm up
  (globalThis as { gc?: () => void }).gc?.();
  gcs = 0;
  const h0 = process.memoryUsage().heapUsed;
  obs.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) fn();
  const ms = performance.now() - t0;
  obs.disconnect();
  const grown = process.memoryUsage().heapUsed - h0;
  process.stdout.write(
    `${name}: ${rounds * frames} frames in ${ms.toFixed(0)} ms (${((rounds * frames) / ms / 1000).toFixed(2)} M frames/s), GCs ${gcs}, heap growth ${(grown / 1024).toFixed(0)} KiB\n`,
  );
};

// TSO: one 64 KiB read (46 segments of 1400) per round.
const jumbo = new BufferPool({ count: 2, frameCapacity: 65535, headroom: 64 });
const pool = new BufferPool({ count: 256 });
const sup = tcp(1000, 46 * 1400);
const seg = new TcpSegmenter(pool, (b) => {
  for (let i = 0; i < b.count; i++) pool.release(b.slots[i]);
}, 64);
const jb = new PacketBatch(1);
const vnet = Buffer.from([1, 1, 54, 0, 0x78, 0x05, 34, 0, 16, 0, 0, 0]); // NEEDS_CSUM, TCPV4, hdr 54, mss 1400
measure('TcpSegmenter', 46, () => {
  const j = jumbo.acquire();
  jumbo.fill(j, sup);
  vnet.copy(jumbo.data, jumbo.off[j] - 12);
  jb.clear();
  jb.push(j);
  seg.consume(jumbo, jb);
});

// GRO: 64 in-order segments per batch; the first frame is restored each round (plan rewrites it).
const gpool = new BufferPool({ count: 64 });
const batch = new PacketBatch(64);
for (let i = 0; i < 64; i++) {
  const s = gpool.acquire();
  gpool.fill(s, tcp(1000 + i * 1000, 1000));
  batch.push(s);
}
const first = Buffer.from(gpool.copyOut(batch.slots[0]));
const co = new TcpCoalescer();
measure('TcpCoalescer', 64, () => {
  first.copy(gpool.data, gpool.off[batch.slots[0]]);
  co.plan(gpool, batch);
});
