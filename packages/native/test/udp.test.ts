import { afterEach, describe, expect, it } from 'vitest';
import { BufferPool, ClosedError, InvalidConfigError, PacketBatch } from '@overlay/dataplane';
import { NativeError, UdpTransport } from '@overlay/native';

// Loopback only (127.0.0.1 / ::1): no namespace needed for the socket layer.
const open: UdpTransport[] = [];
const bind = (o: Parameters<typeof UdpTransport.bind>[0]) => {
  const t = UdpTransport.bind(o);
  open.push(t);
  return t;
};
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

const LOOP4 = Buffer.from([127, 0, 0, 1]);
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** Queue `n` datagrams "msg i" to port on 127.0.0.1 from `from`; returns how many went out. */
function sendMany(from: UdpTransport, pool: BufferPool, port: number, n: number, size = 0): number {
  let sent = 0;
  const batch = new PacketBatch(n);
  for (let i = 0; i < n; i++) {
    const s = pool.acquire();
    const body = Buffer.alloc(Math.max(size, 12));
    body.write(`msg ${i}`);
    pool.fill(s, size ? body : Buffer.from(`msg ${i}`));
    pool.setEndpoint(s, 4, LOOP4, port);
    batch.push(s);
  }
  sent = from.send(pool, batch);
  for (let i = 0; i < batch.count; i++) pool.release(batch.slots[i]);
  return sent;
}

describe('UdpTransport', () => {
  it('moves batches with recvmmsg/sendmmsg and reports each source', async () => {
    const pool = new BufferPool({ count: 2048 });
    const a = bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 4 << 20 });
    const b = bind({ address: '127.0.0.1', port: 0, recvBufferBytes: 4 << 20, batchSize: 64 });
    const got: string[] = [];
    const sources = new Set<string>();
    let maxBatch = 0;
    b.start(pool, (batch) => {
      maxBatch = Math.max(maxBatch, batch.count);
      for (let i = 0; i < batch.count; i++) {
        const s = batch.slots[i];
        got.push(pool.copyOut(s).toString());
        sources.add(`${pool.family[s]} ${[...pool.addr.subarray(s * 16, s * 16 + 4)].join('.')}:${pool.port[s]}`);
        pool.release(s);
      }
    });
    expect(sendMany(a, pool, b.localPort, 500)).toBe(500);
    await until(() => got.length === 500);
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => `msg ${i}`));
    expect([...sources]).toEqual([`4 127.0.0.1:${a.localPort}`]);
    // 500 datagrams in far fewer syscalls: they were batched both ways.
    expect(a.counters.get('txSyscalls')).toBeLessThanOrEqual(10);
    expect(b.counters.get('rxPackets')).toBe(500);
    expect(b.counters.get('rxSyscalls')).toBeLessThan(100);
    expect(maxBatch).toBeGreaterThan(1);
    expect(maxBatch).toBeLessThanOrEqual(64);
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
    expect(a.send(pool, batch)).toBe(0);
    expect(a.counters.get('txErrors')).toBe(1);
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
    await until(() => held.length + b.counters.get('rxNoBufferDrops') === 200);
    expect(held.length).toBe(80);
    expect(b.counters.get('rxNoBufferDrops')).toBe(120);
    expect(pool.exhausted).toBe(0);
    for (const s of held.splice(0)) pool.release(s);
    expect(sendMany(a, sendPool, b.localPort, 10)).toBe(10);
    await until(() => held.length === 10);
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
