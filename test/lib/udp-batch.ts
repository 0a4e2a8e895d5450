/**
 * A UdpTransport in a testbed namespace, driven from the test process (native-send-errors.test.ts).
 *
 *   udp-batch.ts recv ADDRESS PORT
 *     binds, prints `READY`, counts every datagram it receives; each line on stdin is answered
 *     with `COUNT {"total":n,"bySource":{...}}` (bySource keyed by the datagram's first word).
 *   udp-batch.ts send JSON
 *     JSON = { from, port, dests: string[], rounds, gapMs?, gso? }: binds on from:0, sends
 *     `rounds` batches, each one datagram per entry of `dests` (in that order, to dests[j]:port,
 *     payload "<dest> <round> <j>"), waits gapMs between batches, prints
 *     `RESULT {"returned":sum of send() results,"counters":{...}}` and exits.
 */
import { BufferPool, PacketBatch, parseIpAddress } from '@overlay/dataplane';
import { UdpTransport } from '@overlay/native';
import { createInterface } from 'node:readline';

interface SendJob {
  from: string;
  port: number;
  dests: string[];
  rounds: number;
  gapMs?: number;
  gso?: boolean;
}

const [mode, a1, a2] = process.argv.slice(2);

if (mode === 'recv') {
  const pool = new BufferPool({ count: 4096 });
  const t = UdpTransport.bind({ address: a1, port: Number(a2), recvBufferBytes: 8 << 20 });
  let total = 0;
  const bySource: Record<string, number> = {};
  t.start(pool, (batch) => {
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      const text = pool.copyOut(s).toString();
      const key = text.slice(0, text.indexOf(' '));
      bySource[key] = (bySource[key] ?? 0) + 1;
      total++;
      pool.release(s);
    }
  });
  createInterface({ input: process.stdin }).on('line', () => {
    process.stdout.write(`COUNT ${JSON.stringify({ total, bySource })}\n`);
  });
  process.stdin.on('end', () => void t.close().then(() => process.exit(0)));
  process.stdout.write('READY\n');
} else if (mode === 'send') {
  const job = JSON.parse(a1) as SendJob;
  const pool = new BufferPool({ count: 1024 });
  const t = UdpTransport.bind({ address: job.from, port: 0, gso: job.gso ?? false, sendBufferBytes: 8 << 20 });
  const dests = job.dests.map((d) => parseIpAddress(d));
  const batch = new PacketBatch(job.dests.length);
  let returned = 0;
  for (let r = 0; r < job.rounds; r++) {
    for (let j = 0; j < dests.length; j++) {
      const s = pool.acquire();
      pool.fill(s, Buffer.from(`${job.dests[j]} ${r} ${j}`));
      pool.setEndpoint(s, dests[j].family, dests[j].bytes, job.port);
      batch.push(s);
    }
    returned += t.send(pool, batch);
    for (let i = 0; i < batch.count; i++) pool.release(batch.slots[i]);
    batch.clear();
    if (job.gapMs) await new Promise((res) => setTimeout(res, job.gapMs));
  }
  process.stdout.write(`RESULT ${JSON.stringify({ returned, counters: t.counters.snapshot() })}\n`);
  await t.close();
} else {
  process.stderr.write('usage: udp-batch.ts recv ADDRESS PORT | send JSON\n');
  process.exit(2);
}
