/**
 * One side of the UDP packets-per-second comparison, run inside a namespace by pps.ts:
 *   pps-peer.ts recv MODE PORT SECONDS            prints `RX <packets> <pps> <cpu µs per packet>`
 *   pps-peer.ts send MODE ADDRESS PORT SECONDS SIZE   prints `TX <packets> <pps> <cpu µs per packet>`
 * MODE: dgram, native, gso (native, the sender uses UDP GSO) or gro (gso, and the receiver UDP GRO).
 * Senders send as fast as the API allows for SECONDS (bounded by time), in batches of 64.
 */
import dgram from 'node:dgram';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import { UdpTransport } from '@overlay/native';

const [role, mode, ...rest] = process.argv.slice(2);
const BATCH = 64;

/** CPU time (user + system) of this process in µs. */
const cpuMicros = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

async function recv(port: number, seconds: number) {
  let n = 0;
  let cpu0 = 0;
  let first = 0;
  let last = 0;
  const tick = () => {
    const t = performance.now();
    if (!first) {
      first = t;
      cpu0 = cpuMicros();
    }
    last = t;
  };
  let close: () => void;
  if (mode === 'dgram') {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
    s.on('message', () => {
      n++;
      tick();
    });
    await new Promise<void>((r) => s.bind(port, '0.0.0.0', r));
    close = () => s.close();
  } else {
    const pool = new BufferPool({ count: 4096, frameCapacity: 2048 });
    const t = UdpTransport.bind({ address: '0.0.0.0', port, recvBufferBytes: 8 << 20, batchSize: BATCH, gro: mode === 'gro' });
    t.start(pool, (b) => {
      n += b.count;
      for (let i = 0; i < b.count; i++) pool.release(b.slots[i]);
      tick();
    });
    close = () => void t.close();
  }
  process.stdout.write('LISTENING\n');
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = cpuMicros() - cpu0;
  close();
  const dur = (last - first) / 1000;
  process.stdout.write(`RX ${n} ${dur > 0 ? Math.round(n / dur) : 0} ${n ? (cpu / n).toFixed(3) : 0}\n`);
}

async function send(address: string, port: number, seconds: number, size: number) {
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  const cpu0 = cpuMicros();
  let n = 0;
  const payload = Buffer.alloc(size, 0xab);
  if (mode === 'dgram') {
    const s = dgram.createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
    await new Promise<void>((r) => s.bind(0, r));
    s.connect(port, address);
    await new Promise((r) => s.once('connect', r));
    while (performance.now() < end) {
      // A batch of sends, then wait for the last callback so the queue stays bounded.
      await new Promise<void>((resolve) => {
        for (let i = 0; i < BATCH; i++) s.send(payload, i === BATCH - 1 ? () => resolve() : undefined);
      });
      n += BATCH;
    }
    s.close();
  } else {
    const pool = new BufferPool({ count: BATCH, frameCapacity: 2048 });
    const t = UdpTransport.bind({ address: '0.0.0.0', port: 0, sendBufferBytes: 8 << 20, batchSize: BATCH, gso: mode !== 'native' });
    const batch = new PacketBatch(BATCH);
    const dst = Buffer.from(address.split('.').map(Number));
    for (let i = 0; i < BATCH; i++) {
      const slot = pool.acquire();
      pool.fill(slot, payload);
      pool.setEndpoint(slot, 4, dst, port);
      batch.push(slot);
    }
    while (performance.now() < end) {
      n += t.send(pool, batch);
      // Yield now and then so the process stays responsive; the kernel paces us through EAGAIN.
      if ((n & 0xffff) < BATCH) await new Promise((r) => setImmediate(r));
    }
    await t.close();
  }
  const dur = (performance.now() - start) / 1000;
  process.stdout.write(`TX ${n} ${Math.round(n / dur)} ${n ? ((cpuMicros() - cpu0) / n).toFixed(3) : 0}\n`);
}

if (role === 'recv') await recv(Number(rest[0]), Number(rest[1]));
else await send(rest[0], Number(rest[1]), Number(rest[2]), Number(rest[3]));
process.exit(0);
