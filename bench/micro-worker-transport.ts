/**
 * The multi-worker send path's own cost (packages/host/src/worker-transport.ts): the inner-flow
 * hash per datagram and the split of a batch over the source-port sockets, on sockets that only
 * count (no syscalls), and the allocation proof over millions of datagrams.
 *
 *   node --expose-gc --conditions=source --import tsx bench/micro-worker-transport.ts [--quick]
 *
 * Prints ns per datagram for a batch of one flow (the usual TSO batch: one sendmmsg) and for a
 * batch of 64 flows (split over the ports), heap growth and GCs, a yardstick loop (one byte read
 * per datagram) for the machine's load, and how evenly 10 000 random flows spread over the
 * SOURCE_PORTS ports.
 */
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import type { UdpTransport } from '@overlay/native';
import { flowIndex, SOURCE_PORTS, WorkerTransport } from '../packages/host/src/worker-transport.js';
import { heapDuring } from './lib/heap.js';

const quick = process.argv.includes('--quick');
const BATCH = 64;

/** A VXLAN datagram carrying an IPv4 TCP segment of flow `f` into `slot`. */
function fill(pool: BufferPool, slot: number, f: number): void {
  const off = pool.headroom + slot * pool.stride;
  const d = pool.data;
  d.fill(0, off, off + 8 + 14 + 20 + 20);
  d[off] = 0x08; // VXLAN I flag
  d[off + 20] = 0x08; // EtherType IPv4
  const ip = off + 22;
  d[ip] = 0x45;
  d[ip + 9] = 6;
  d.writeUInt32BE(0xc6130001, ip + 12);
  d.writeUInt32BE(0xc6130002, ip + 16);
  d.writeUInt16BE(10000 + (f & 0x7fff), ip + 20);
  d.writeUInt16BE(5201, ip + 22);
  pool.off[slot] = off;
  pool.len[slot] = 8 + 14 + 20 + 20 + 1400;
}

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc for the allocation proof');
  const pool = new BufferPool({ count: 2 * BATCH });
  let counted = 0;
  const fake = { send: (_p: BufferPool, b: PacketBatch) => ((counted += b.count), b.count) } as unknown as UdpTransport;
  const t = new WorkerTransport(fake, Array.from({ length: SOURCE_PORTS }, () => fake), BATCH);
  const one = new PacketBatch(BATCH);
  const many = new PacketBatch(BATCH);
  for (let i = 0; i < BATCH; i++) {
    fill(pool, i, 7);
    one.push(i);
    fill(pool, BATCH + i, i);
    many.push(BATCH + i);
  }
  const batches = quick ? 20_000 : 200_000;
  for (const [name, b] of [
    ['one flow per batch', one],
    ['64 flows per batch', many],
  ] as const) {
    for (let i = 0; i < 2000; i++) t.send(pool, b); // warm up
    counted = 0;
    const h = await heapDuring(gc, () => {
      for (let i = 0; i < batches; i++) t.send(pool, b);
    });
    const n = batches * BATCH;
    if (counted !== n) throw new Error(`sent ${counted} of ${n}`);
    process.stdout.write(`${name.padEnd(20)} ${((h.secs * 1e9) / n).toFixed(1)} ns/datagram over ${n} datagrams; heap growth ${(h.growth / n).toFixed(3)} B/datagram, GCs ${h.gcs}\n`);
  }
  // Yardstick for this machine's load: one byte read per datagram, the least a hash could cost.
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < batches; i++) for (let j = 0; j < BATCH; j++) sink += pool.data[pool.off[one.slots[j]] + 34];
  const yard = Number(process.hrtime.bigint() - t0) / (batches * BATCH);
  process.stdout.write(`yardstick            ${yard.toFixed(1)} ns/datagram (one byte read each; ${sink > 0 ? 'read' : 'none'})\n`);
  const per = new Array<number>(SOURCE_PORTS).fill(0);
  for (let f = 0; f < 10_000; f++) {
    fill(pool, 0, Math.floor(Math.random() * 0x7fff));
    per[flowIndex(pool, 0, SOURCE_PORTS)]++;
  }
  process.stdout.write(`10 000 random flows over ${SOURCE_PORTS} source ports: min ${Math.min(...per)}, max ${Math.max(...per)} (even: ${10_000 / SOURCE_PORTS})\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
