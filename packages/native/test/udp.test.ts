import { describe, expect, it } from 'vitest';
import { BufferPool, ClosedError, InvalidConfigError, PacketBatch } from '@overlay/dataplane';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { NativeError, UdpTransport } from '@overlay/native';
import { collect, LOOP4, sendBodies, transports, until } from './helpers/udp.js';

// Loopback only (127.0.0.1 / ::1): no namespace needed for the socket layer.
const bind = transports();
/** Queue `n` datagrams "msg i" (padded to `size`) to port on 127.0.0.1 from `from`; returns how many went out. */
function sendMany(from: UdpTransport, pool: BufferPool, port: number, n: number, size = 0): number {
  const bodies = Array.from({ length: n }, (_, i) => {
    const body = Buffer.alloc(Math.max(size, 12));
    body.write(`msg ${i}`);
    return size ? body : Buffer.from(`msg ${i}`);
  });
  return sendBodies(from, pool, port, bodies);
}

describe('UdpTransport', () => {
  it('moves batches with recvmmsg/sendmmsg and reports each source', async () => {
    const pool = new BufferPool({ count: 2048 });
    const a = bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 4 << 20 });
    const b = bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 4 << 20, batchSize: 64 });
    const c = collect(b, pool);
    expect(sendMany(a, pool, b.localPort, 500)).toBe(500);
    await until(() => c.got.length === 500);
    expect(c.got.map(String)).toEqual(Array.from({ length: 500 }, (_, i) => `msg ${i}`));
    expect([...c.sources]).toEqual([`4 127.0.0.1:${a.localPort}`]);
    // 500 datagrams in far fewer syscalls: they were batched both ways.
    expect(a.counters.get('txSyscalls')).toBeLessThanOrEqual(10);
    expect(b.counters.get('rxPackets')).toBe(500);
    expect(b.counters.get('rxSyscalls')).toBeLessThan(100);
    expect(c.maxBatch).toBeGreaterThan(1);
    expect(c.maxBatch).toBeLessThanOrEqual(64);
    await b.close();
    expect(pool.available).toBe(pool.count);
  });

  it('is dual-stack on :: and reports IPv4 senders as IPv4, IPv6 as IPv6', async () => {
    const pool = new BufferPool({ count: 512 });
    const six = bind({ address: '::', port: 0 });
    const four = bind({ address: '127.0.0.1', port: 0 });
    const from6 = bind({ address: '::1', port: 0 });
    const seen: string[] = [];
    six.start(pool, (batch) => {
      for (let i = 0; i < batch.count; i++) {
        const s = batch.slots[i];
        const fam = pool.family[s];
        const a = pool.addr.subarray(s * 16, s * 16 + (fam === 4 ? 4 : 16));
        seen.push(`${fam} ${Buffer.from(a).toString('hex')} ${pool.port[s]} ${pool.copyOut(s)}`);
        pool.release(s);
      }
    });
    expect(sendMany(four, pool, six.localPort, 1)).toBe(1);
    const batch = new PacketBatch(1);
    const s = pool.acquire();
    pool.fill(s, Buffer.from('v6'));
    const loop6 = Buffer.alloc(16);
    loop6[15] = 1;
    pool.setEndpoint(s, 6, loop6, six.localPort);
    batch.push(s);
    expect(from6.send(pool, batch)).toBe(1);
    pool.release(s);
    await until(() => seen.length === 2);
    expect(seen.sort()).toEqual([`4 7f000001 ${four.localPort} msg 0`, `6 ${loop6.toString('hex')} ${from6.localPort} v6`].sort());
  });

  it('fails with errno-named NativeErrors and typed config errors', () => {
    const a = bind({ address: '127.0.0.1', port: 0 });
    let err: unknown;
    try {
      bind({ address: '127.0.0.1', port: a.localPort });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeError);
    expect(err).toMatchObject({ code: 'EADDRINUSE', errno: 98, syscall: 'bind' });
    expect(() => bind({ address: '198.19.300.1', port: 0 })).toThrow(InvalidConfigError);
    expect(() => bind({ address: '127.0.0.1', port: 70000 })).toThrow(InvalidConfigError);
    expect(() => bind({ address: '127.0.0.1', port: 0, batchSize: 0 })).toThrow(InvalidConfigError);
    // An address this host does not have.
    expect(() => bind({ address: '198.18.255.254', port: 0 })).toThrow(expect.objectContaining({ code: 'EADDRNOTAVAIL' }));
  });

  it('shares a port with reuseport', () => {
    const a = bind({ address: '127.0.0.1', port: 0, reuseport: true });
    const b = bind({ address: '127.0.0.1', port: a.localPort, reuseport: true });
    expect(b.localPort).toBe(a.localPort);
  });

  it('counts an IPv6 destination on an IPv4 socket as a send error, not a crash', () => {
    const pool = new BufferPool({ count: 4 });
    const a = bind({ address: '127.0.0.1', port: 0 });
    const batch = new PacketBatch(2);
    const s = pool.acquire();
    pool.fill(s, Buffer.from('x'));
    pool.setEndpoint(s, 6, Buffer.alloc(16, 1), 9);
    batch.push(s);
    const events: unknown[] = [];
    const listen = (m: unknown) => events.push(m);
    subscribe('overlay.native.drop', listen);
    try {
      expect(a.send(pool, batch)).toBe(0);
    } finally {
      unsubscribe('overlay.native.drop', listen);
    }
    expect(a.counters.get('txErrors')).toBe(1);
    expect(a.counters.get('txErrorsOther')).toBe(1);
    expect(a.counters.get('txUnsent')).toBe(1);
    // The native side counted it; the transport published it on the package's drop channel.
    expect(events).toEqual([{ reason: 'txUnsent', scope: -1, count: 1 }]);
  });

  it('skips a bad slot in the middle of a batch and sends the rest', async () => {
    const pool = new BufferPool({ count: 8 });
    const a = bind({ address: '127.0.0.1', port: 0 });
    const b = bind({ address: '127.0.0.1', port: 0 });
    const c = collect(b, new BufferPool({ count: 128 }));
    const batch = new PacketBatch(3);
    for (const [i, fam] of [[0, 4], [1, 6], [2, 4]] as const) {
      const s = pool.acquire();
      pool.fill(s, Buffer.from(`m${i}`));
      pool.setEndpoint(s, fam, fam === 4 ? LOOP4 : Buffer.alloc(16, 1), b.localPort);
      batch.push(s);
    }
    expect(a.send(pool, batch)).toBe(2);
    for (let i = 0; i < 3; i++) pool.release(batch.slots[i]);
    await until(() => c.got.length === 2);
    expect(c.got.map(String)).toEqual(['m0', 'm2']);
    expect(a.counters.get('txErrorsOther')).toBe(1);
    expect(a.counters.get('txUnsent')).toBe(1);
  });

  it('drops datagrams larger than a slot and counts them', async () => {
    const pool = new BufferPool({ count: 256, frameCapacity: 256, tailroom: 0 });
    const a = bind({ address: '127.0.0.1', port: 0 });
    const b = bind({ address: '127.0.0.1', port: 0 });
    const sizes: number[] = [];
    b.start(pool, (batch) => {
      for (let i = 0; i < batch.count; i++) {
        sizes.push(pool.len[batch.slots[i]]);
        pool.release(batch.slots[i]);
      }
    });
    expect(sendMany(a, pool, b.localPort, 1, 200)).toBe(1);
    // Build a 1000-byte datagram in a bigger pool: the receiver's slots hold 256.
    const big = new BufferPool({ count: 2 });
    expect(sendMany(a, big, b.localPort, 1, 1000)).toBe(1);
    expect(sendMany(a, pool, b.localPort, 1, 100)).toBe(1);
    await until(() => sizes.length === 2 && b.counters.get('rxTooBigDrops') === 1);
    expect(sizes).toEqual([200, 100]);
  });

  it('counts drops while the pool is exhausted and resumes when slots come back', async () => {
    const pool = new BufferPool({ count: 80 });
    const sendPool = new BufferPool({ count: 256 });
    const a = bind({ address: '127.0.0.1', port: 0 });
    const b = bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 1 << 20 });
    const held: number[] = [];
    b.start(pool, (batch) => {
      for (let i = 0; i < batch.count; i++) held.push(batch.slots[i]);
    });
    expect(sendMany(a, sendPool, b.localPort, 200)).toBe(200);
    await until(
      () => held.length + b.counters.get('rxNoBufferDrops') === 200,
      10_000,
      () => `held ${held.length} ${JSON.stringify(b.counters.snapshot())}`,
    );
    expect(held.length).toBe(80);
    expect(b.counters.get('rxNoBufferDrops')).toBe(120);
    expect(pool.exhausted).toBe(0);
    for (const s of held.splice(0)) pool.release(s);
    expect(sendMany(a, sendPool, b.localPort, 10)).toBe(10);
    await until(() => held.length === 10);
  });

  it('sends runs to one destination as UDP GSO messages, received as the same datagrams', async () => {
    const pool = new BufferPool({ count: 512 });
    const a = bind({ address: '127.0.0.1', port: 0, gso: true, sendBufferBytes: 4 << 20 });
    const b = bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 4 << 20 });
    const c = bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 4 << 20 });
    const got = new Map<number, string[]>();
    const sink = (t: UdpTransport) => (batch: PacketBatch) => {
      for (let i = 0; i < batch.count; i++) {
        const s = batch.slots[i];
        const list = got.get(t.localPort) ?? [];
        list.push(`${pool.len[s]}:${pool.data[pool.off[s]]}`);
        got.set(t.localPort, list);
        pool.release(s);
      }
    };
    b.start(pool, sink(b));
    c.start(pool, sink(c));
    // 40 × 1000 bytes to b, one 300-byte tail, then 3 to c, then 2 more to b.
    const plan: Array<[UdpTransport, number]> = [
      ...Array.from({ length: 40 }, () => [b, 1000] as [UdpTransport, number]),
      [b, 300],
      [c, 800],
      [c, 800],
      [c, 800],
      [b, 1000],
      [b, 1000],
    ];
    const batch = new PacketBatch(64);
    plan.forEach(([to, size], i) => {
      const s = pool.acquire();
      pool.fill(s, Buffer.alloc(size, i));
      pool.setEndpoint(s, 4, LOOP4, to.localPort);
      batch.push(s);
    });
    expect(a.send(pool, batch)).toBe(plan.length);
    for (let i = 0; i < batch.count; i++) pool.release(batch.slots[i]);
    await until(() => (got.get(b.localPort)?.length ?? 0) === 43 && (got.get(c.localPort)?.length ?? 0) === 3);
    const expectB = plan.map(([to, size], i) => (to === b ? `${size}:${i}` : '')).filter(Boolean);
    expect(got.get(b.localPort)).toEqual(expectB);
    expect(a.counters.get('txPackets')).toBe(plan.length);
    // Four GSO messages (40+1 to b, 3 to c, 2 to b) in one sendmmsg.
    expect(a.counters.get('txSyscalls')).toBe(1);
    expect(a.counters.get('txGsoFallbacks')).toBe(0);
  });

  it('keeps polling a new socket after a closed one that had the same descriptor is collected', async () => {
    // Regression: libuv deregisters a poll handle's fd from epoll when the handle is closed; the
    // old handle must be closed before its fd is, not at GC time after the number is reused.
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    const pool = new BufferPool({ count: 512 });
    const from = bind({ address: '127.0.0.1', port: 0 });
    for (let round = 0; round < 4; round++) {
      let old: UdpTransport | undefined = UdpTransport.bind({ address: '127.0.0.1', port: 0 });
      old.start(pool, () => {});
      await old.close();
      old = undefined;
      const fresh = bind({ address: '127.0.0.1', port: 0 });
      let got = 0;
      fresh.start(pool, (b) => {
        got += b.count;
        for (let i = 0; i < b.count; i++) pool.release(b.slots[i]);
      });
      gc();
      await new Promise((r) => setTimeout(r, 20));
      expect(sendMany(from, pool, fresh.localPort, 5)).toBe(5);
      await until(() => got === 5);
    }
  });

  it('refuses use after close', async () => {
    const pool = new BufferPool({ count: 4 });
    const a = UdpTransport.bind({ address: '127.0.0.1', port: 0 });
    a.start(pool, () => {});
    expect(pool.available).toBe(0);
    await a.close();
    await a.close();
    expect(pool.available).toBe(4);
    expect(() => a.send(pool, new PacketBatch(1))).toThrow(ClosedError);
  });
});
