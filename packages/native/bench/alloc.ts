/**
 * Allocation budget of the native transport's hot path: 2 million 1400-byte datagrams over
 * loopback through UdpTransport.send (sendmmsg) and the receive loop (recvmmsg into pool slots,
 * one sink call per batch). Prints heap growth and garbage collections during the run; a
 * path that allocated per packet would show thousands of scavenges. The harness itself
 * allocates one Immediate per 4 batches (256 datagrams) to yield to the event loop.
 * With `offloads`, the sender uses UDP GSO and the receiver UDP GRO (coalesced messages split
 * into slots).
 * Run: node --expose-gc --conditions=source --import tsx packages/native/bench/alloc.ts [packets] [offloads]
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import { UdpTransport } from '@overlay/native';

const total = Number(process.argv[2] ?? 2_000_000);
const BATCH = 64;
const offloads = process.argv[3] === 'offloads';
const pool = new BufferPool({ count: 1024, frameCapacity: 2048 });
const rx = UdpTransport.bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 16 << 20, batchSize: BATCH, gro: offloads });
const tx = UdpTransport.bind({ address: '127.0.0.1', port: 0, sendBufferBytes: 16 << 20, batchSize: BATCH, gso: offloads });
let received = 0;
rx.start(pool, (b) => {
  received += b.count;
  for (let i = 0; i < b.count; i++) pool.release(b.slots[i]);
});
const batch = new PacketBatch(BATCH);
const payload = Buffer.alloc(1400, 0x5a);
for (let i = 0; i < BATCH; i++) {
  const s = pool.acquire();
  pool.fill(s, payload);
  pool.setEndpoint(s, 4, Buffer.from([127, 0, 0, 1]), rx.localPort);
  batch.push(s);
}

let gcs = 0;
const obs = new PerformanceObserver((list) => (gcs += list.getEntries().length));
/** Send n datagrams, 4 batches per event-loop turn (the turn lets the receive side run). */
const run = (n: number) =>
  new Promise<number>((resolve) => {
    let sent = 0;
    const pump = () => {
      for (let i = 0; i < 4 && sent < n; i++) sent += tx.send(pool, batch);
      if (sent < n) setImmediate(pump);
      else resolve(sent);
    };
    pump();
  });
const warm = run;
await warm(200_000);
(globalThis as { gc?: () => void }).gc?.();
const heap0 = process.memoryUsage().heapUsed;
const rx0 = received;
obs.observe({ entryTypes: ['gc'] });
const t0 = performance.now();
const sent = await run(total);
await new Promise((r) => setTimeout(r, 200));
const ms = performance.now() - t0;
obs.disconnect();
const heap1 = process.memoryUsage().heapUsed;
const got = received - rx0;
process.stdout.write(
  `sent ${sent}, received ${got} (${((got / sent) * 100).toFixed(1)} %; loopback drops when the receiver falls behind) in ${ms.toFixed(0)} ms\n` +
    `heap growth ${((heap1 - heap0) / 1024).toFixed(0)} KiB = ${((heap1 - heap0) / (sent + got)).toFixed(3)} bytes/packet; GCs during run: ${gcs}\n` +
    `tx syscalls ${tx.counters.get('txSyscalls')}, rx syscalls ${rx.counters.get('rxSyscalls')}, rx batches ${rx.counters.get('rxBatches')}, rx coalesced messages ${rx.counters.get('rxGroMessages')}\n`,
);
await tx.close();
await rx.close();
