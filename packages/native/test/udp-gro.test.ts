import { describe, expect, it } from 'vitest';
import { BufferPool } from '@overlay/dataplane';
import type { UdpTransport } from '@overlay/native';
import { collect, sendBodies, transports, until } from './helpers/udp.js';

// Loopback carries a UDP GSO message whole to a socket with UDP_GRO on, so the receiver gets it
// as one coalesced message and must split it into per-datagram slots.
const bind = transports();

/** Datagram number `seq` of `size` bytes: its number, then bytes that depend on both. */
function body(seq: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (seq * 31 + i * 7) & 0xff;
  if (size >= 4) b.writeUInt32BE(seq, 0);
  return b;
}

/** Send datagrams of `sizes` (numbered from `first`) to port in one batch; returns how many went out. */
const sendRun = (from: UdpTransport, pool: BufferPool, port: number, sizes: number[], first: number) =>
  sendBodies(from, pool, port, sizes.map((size, i) => body(first + i, size)));

describe('UdpTransport with gro', () => {
  it('splits coalesced messages into one slot per datagram, every byte intact and in order, odd tails included', async () => {
    const sendPool = new BufferPool({ count: 256 });
    const pool = new BufferPool({ count: 1024 });
    const a = bind({ address: '127.0.0.1', port: 0, gso: true, sendBufferBytes: 4 << 20 });
    // batchSize 16: a 41-datagram message spans several deliveries (datagrams wait in the staging area).
    const b = bind({ address: '127.0.0.1', port: 0, gro: true, batchSize: 16, recvBufferBytes: 4 << 20 });
    const c = collect(b, pool);
    const { got, sources } = c;
    // Runs of equal sizes with short, odd tails (1 byte, 7, 999), a lone datagram, and a run of
    // small ones: each run is one GSO message from the sender.
    const plan = [
      [...Array<number>(40).fill(1400), 1],
      [...Array<number>(20).fill(1000), 999],
      [333],
      [...Array<number>(30).fill(64), 7],
      [...Array<number>(63).fill(1001)],
    ];
    let seq = 0;
    for (const sizes of plan) {
      expect(sendRun(a, sendPool, b.localPort, sizes, seq)).toBe(sizes.length);
      seq += sizes.length;
    }
    const sizes = plan.flat();
    await until(() => got.length >= sizes.length, 10_000, () => `${got.length}/${sizes.length} ${JSON.stringify(b.counters.snapshot())}`);
    expect(got.length).toBe(sizes.length);
    got.forEach((g, i) => expect(g.equals(body(i, sizes[i])), `datagram ${i} (${sizes[i]} bytes)`).toBe(true));
    expect([...sources]).toEqual([`4 127.0.0.1:${a.localPort}`]);
    // Coalescing happened (else this test would prove nothing about GRO) and was accounted.
    expect(b.counters.get('rxGroMessages')).toBeGreaterThanOrEqual(4);
    expect(b.counters.get('rxGroDatagrams')).toBeGreaterThanOrEqual(sizes.length - 1);
    expect(b.counters.get('rxPackets')).toBe(sizes.length);
    expect(b.counters.get('rxSyscalls')).toBeLessThan(20);
    expect(c.maxBatch).toBe(16);
    expect(b.counters.get('rxNoBufferDrops') + b.counters.get('rxTooBigDrops')).toBe(0);
    await b.close();
    expect(pool.available).toBe(pool.count);
  });

  it('coalesces over IPv6 too and reports the IPv6 source of every datagram', async () => {
    const pool = new BufferPool({ count: 256 });
    const a = bind({ address: '::1', port: 0, gso: true });
    const b = bind({ address: '::', port: 0, gro: true });
    const { got, sources } = collect(b, pool);
    const sizes = [...Array<number>(30).fill(1200), 11];
    const loop6 = Buffer.alloc(16);
    loop6[15] = 1;
    const bodies = sizes.map((size, i) => body(i, size));
    expect(sendBodies(a, pool, b.localPort, bodies, 6, loop6)).toBe(sizes.length);
    await until(() => got.length === sizes.length);
    got.forEach((g, i) => expect(g.equals(body(i, sizes[i]))).toBe(true));
    expect([...sources]).toEqual([`6 ${loop6.toString('hex')}:${a.localPort}`]);
    expect(b.counters.get('rxGroMessages')).toBe(1);
  });

  it('keeps what is pending intact when the sink sends on the same socket between deliveries', async () => {
    const pool = new BufferPool({ count: 256 });
    const replyPool = new BufferPool({ count: 8 });
    const a = bind({ address: '127.0.0.1', port: 0, gso: true });
    const b = bind({ address: '127.0.0.1', port: 0, gro: true, gso: true, batchSize: 16 });
    const c = bind({ address: '127.0.0.1', port: 0 });
    const replies = collect(c, new BufferPool({ count: 128 }));
    const got: Buffer[] = [];
    b.start(pool, (batch) => {
      for (let i = 0; i < batch.count; i++) {
        got.push(pool.copyOut(batch.slots[i]));
        pool.release(batch.slots[i]);
      }
      // A reply per delivery, as a tunnel answering a handshake would: same socket, mid-message.
      expect(sendBodies(b, replyPool, c.localPort, [Buffer.from('ack')])).toBe(1);
    });
    const sizes = [...Array<number>(40).fill(900), 13];
    expect(sendRun(a, pool, b.localPort, sizes, 0)).toBe(41);
    await until(() => got.length === 41 && replies.got.length >= 3, 10_000, () => `${got.length} ${replies.got.length}`);
    got.forEach((g, i) => expect(g.equals(body(i, sizes[i])), `datagram ${i}`).toBe(true));
    expect(b.counters.get('rxGroMessages')).toBe(1);
  });

  it('receives ordinary datagrams unchanged', async () => {
    const pool = new BufferPool({ count: 512 });
    const a = bind({ address: '127.0.0.1', port: 0 });
    const b = bind({ address: '127.0.0.1', port: 0, gro: true });
    const { got } = collect(b, pool);
    const sizes = Array.from({ length: 100 }, (_, i) => 1 + ((i * 97) % 1400));
    expect(sendRun(a, pool, b.localPort, sizes, 0)).toBe(100);
    await until(() => got.length === 100);
    got.forEach((g, i) => expect(g.equals(body(i, sizes[i]))).toBe(true));
    expect(b.counters.get('rxGroMessages')).toBe(0);
  });

  it('counts the datagrams of a coalesced message it has no slots for, and resumes', async () => {
    const sendPool = new BufferPool({ count: 128 });
    const pool = new BufferPool({ count: 30 });
    const a = bind({ address: '127.0.0.1', port: 0, gso: true });
    const b = bind({ address: '127.0.0.1', port: 0, gro: true, batchSize: 16 });
    const held: number[] = [];
    b.start(pool, (batch) => {
      for (let i = 0; i < batch.count; i++) held.push(batch.slots[i]);
    });
    const sizes = [...Array<number>(40).fill(1000), 17];
    expect(sendRun(a, sendPool, b.localPort, sizes, 0)).toBe(41);
    await until(
      () => held.length + b.counters.get('rxNoBufferDrops') === 41,
      10_000,
      () => `held ${held.length} ${JSON.stringify(b.counters.snapshot())}`,
    );
    expect(b.counters.get('rxGroMessages')).toBe(1);
    expect(held.length).toBe(30);
    expect(b.counters.get('rxNoBufferDrops')).toBe(11);
    // The first 30 arrived in order.
    held.forEach((s, i) => expect(pool.copyOut(s).equals(body(i, 1000))).toBe(true));
    for (const s of held.splice(0)) pool.release(s);
    expect(sendRun(a, sendPool, b.localPort, [500, 500, 3], 100)).toBe(3);
    await until(() => held.length === 3);
    expect(held.map((s) => pool.copyOut(s).equals(body(100 + held.indexOf(s), pool.len[s])))).toEqual([true, true, true]);
  });

  it('drops a coalesced datagram larger than a slot, counted, and delivers the rest', async () => {
    const sendPool = new BufferPool({ count: 64 });
    const pool = new BufferPool({ count: 256, frameCapacity: 256, tailroom: 0 });
    const a = bind({ address: '127.0.0.1', port: 0, gso: true });
    const b = bind({ address: '127.0.0.1', port: 0, gro: true });
    const sizes: number[] = [];
    b.start(pool, (batch) => {
      for (let i = 0; i < batch.count; i++) {
        sizes.push(pool.len[batch.slots[i]]);
        pool.release(batch.slots[i]);
      }
    });
    expect(sendRun(a, sendPool, b.localPort, [1000, 1000, 1000, 5], 0)).toBe(4);
    expect(sendRun(a, sendPool, b.localPort, [200, 200, 9], 4)).toBe(3);
    await until(() => sizes.length === 4 && b.counters.get('rxTooBigDrops') === 3, 10_000, () => `${sizes} ${JSON.stringify(b.counters.snapshot())}`);
    expect(sizes).toEqual([5, 200, 200, 9]);
  });
});
