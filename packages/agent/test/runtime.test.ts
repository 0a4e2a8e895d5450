import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createRealIo, sourceKey, PushPullStreamError, type RealIo, type RealIoOptions } from '../src/runtime.js';
import { Keyring } from '../src/keyring.js';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function frame(bytes: number): Buffer {
  const b = Buffer.alloc(4 + bytes, 0xab);
  b.writeUInt32BE(bytes, 0);
  return b;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw client from a chosen loopback source address; `closed` resolves when the server cuts it. */
function rawClient(port: number, localAddress = '127.0.0.1') {
  const sock = net.connect({ host: '127.0.0.1', port, localAddress });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  const connected = new Promise<void>((r) => sock.once('connect', () => r()));
  return { sock, closed, connected };
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
const within = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), sleep(ms).then(() => false)]);

describe('push-pull server (real TCP on loopback)', () => {
  let io: RealIo | null = null;
  const socks: net.Socket[] = [];
  afterEach(async () => {
    for (const s of socks.splice(0)) s.destroy();
    await io?.close();
    io = null;
  });
  const keyring = new Keyring([randomBytes(32)]);
  let exchanges = 0;
  async function serve(options: RealIoOptions, authenticate = true): Promise<number> {
    const port = await freePort();
    exchanges = 0;
    io = createRealIo({ ip: '127.0.0.1', port }, options);
    await io.bind({
      handlePacket: () => {},
      handleExchange: (_f, chunks) => (exchanges++, [keyring.seal(Buffer.from(`reply to ${chunks.length}`))]),
      ...(authenticate ? { authenticateFrame: (f: Uint8Array) => keyring.open(f) !== null } : {}),
    });
    return port;
  }
  const client = (port: number, localAddress?: string) => {
    const c = rawClient(port, localAddress);
    socks.push(c.sock);
    return c;
  };
  const exchange = (port: number, chunks: Uint8Array[]) =>
    new Promise<Uint8Array[]>((resolve, reject) => io!.exchange({ ip: '127.0.0.1', port }, chunks, 5000, (e, r) => (e ? reject(e) : resolve(r!))));

  it('answers a complete exchange whose first frame authenticates', async () => {
    const port = await serve({ maxBufferedBytes: 256 * 1024 });
    const reply = await exchange(port, [keyring.seal(Buffer.alloc(1000, 1)), Buffer.alloc(2000, 2)]);
    expect(exchanges).toBe(1);
    expect(reply.map((c) => Buffer.from(keyring.open(c)!).toString())).toEqual(['reply to 2']);
    expect(io!.drops.total()).toBe(0);
    // The slot is given back when the client closes its end.
    for (let i = 0; i < 50 && io!.streams().open > 0; i++) await sleep(20);
    expect(io!.streams()).toEqual({ open: 0, unauthenticated: 0 });
  });

  it('cuts a stream whose first frame does not open with the keyring, before reading on, and never hands it on', async () => {
    const port = await serve({});
    const c = client(port);
    await c.connected;
    c.sock.write(Buffer.concat([frame(1000), frame(40 * 1024)]));
    expect(await within(c.closed, 2000)).toBe(true);
    expect(io!.drops.get('first_frame_unauthenticated')).toBe(1);
    expect(exchanges).toBe(0);
    const e = await exchange(port, [Buffer.alloc(100, 7)]).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(Error); // the client sees its stream cut
    expect(io!.drops.get('first_frame_unauthenticated')).toBe(2);
  });

  it('cuts a stream that sends no complete first frame within the deadline', async () => {
    const port = await serve({ firstFrameMs: 300 });
    const c = client(port);
    await c.connected;
    c.sock.write(frame(1000).subarray(0, 500)); // half a frame, then silence
    const t0 = Date.now();
    expect(await within(c.closed, 3000)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(io!.drops.get('first_frame_timeout')).toBe(1);
    expect(io!.streams().open).toBe(0);
  });

  it('refuses streams beyond the per-source limit at once; other sources still get through', async () => {
    const port = await serve({ maxStreamsPerSource: 3 });
    const held = [0, 1, 2].map(() => client(port, '127.0.0.2'));
    await Promise.all(held.map((c) => c.connected));
    await sleep(50);
    const extra = client(port, '127.0.0.2');
    expect(await within(extra.closed, 1000)).toBe(true);
    expect(io!.drops.get('source_limit')).toBe(1);
    for (const c of held) expect(c.sock.destroyed).toBe(false);
    await exchange(port, [keyring.seal(Buffer.from('join'))]);
    expect(exchanges).toBe(1);
  });

  it('a legitimate exchange evicts the oldest unauthenticated stream when every slot is taken', async () => {
    const port = await serve({ maxStreams: 6, maxUnauthenticated: 6, maxStreamsPerSource: 2 });
    // Six idle connects from three sources fill every slot.
    const idle = [2, 2, 3, 3, 4, 4].map((i) => client(port, `127.0.0.${i}`));
    await Promise.all(idle.map((c) => c.connected));
    await sleep(50);
    expect(io!.streams()).toEqual({ open: 6, unauthenticated: 6 });
    const reply = await exchange(port, [keyring.seal(Buffer.from('join'))]);
    expect(Buffer.from(keyring.open(reply[0])!).toString()).toBe('reply to 1');
    expect(io!.drops.get('unauthenticated_evicted')).toBe(1);
    expect(await within(idle[0].closed, 1000)).toBe(true); // the oldest went
    expect(idle[5].sock.destroyed).toBe(false);
  });

  it('refuses a stream when every slot holds an authenticated exchange', async () => {
    const port = await serve({ maxStreams: 2, maxUnauthenticated: 2 });
    // Two authenticated but unfinished exchanges (no end frame) hold both slots.
    const held = [0, 1].map(() => client(port));
    for (const c of held) {
      await c.connected;
      const f = keyring.seal(Buffer.from('partial'));
      const h = Buffer.alloc(4);
      h.writeUInt32BE(f.length);
      c.sock.write(Buffer.concat([h, f]));
    }
    await sleep(100);
    expect(io!.streams()).toEqual({ open: 2, unauthenticated: 0 });
    const e = await exchange(port, [keyring.seal(Buffer.from('x'))]).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(Error);
    expect(io!.drops.get('global_limit')).toBe(1);
  });

  it('refuses unauthenticated streams that would hold more than the budget, and never hands them on', async () => {
    const port = await serve({ maxBufferedBytes: 256 * 1024 }, false);
    // Two streams of well-formed frames (garbage contents, never terminated), 200 KiB each: the
    // second one crosses the shared budget while the first is still open.
    const cs = [0, 1].map(() => client(port));
    for (const c of cs) {
      await c.connected;
      for (let i = 0; i < 5; i++) c.sock.write(frame(40 * 1024));
      await sleep(100);
    }
    // The server drops at least one stream at once (not after its 10 s timeout).
    expect(await within(Promise.any(cs.map((c) => c.closed)), 3000)).toBe(true);
    expect(io!.streamsRefused).toBeGreaterThanOrEqual(1);
    expect(io!.drops.get('buffer_budget')).toBe(io!.streamsRefused);
    expect(exchanges).toBe(0);
  });

  it('reports a timed-out exchange of ours as a typed error', async () => {
    const port = await freePort();
    const silent = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => silent.listen(port, '127.0.0.1', () => r()));
    try {
      io = createRealIo({ ip: '127.0.0.1', port: await freePort() });
      const e = await new Promise<unknown>((resolve) => io!.exchange({ ip: '127.0.0.1', port }, [Buffer.from('x')], 200, (err) => resolve(err)));
      expect(e).toBeInstanceOf(PushPullStreamError);
      expect((e as PushPullStreamError).code).toBe('OVL_ERR_AGENT_PUSHPULL_STREAM');
      expect((e as PushPullStreamError).reason).toBe('exchange_timeout');
    } finally {
      silent.close();
    }
  });
});

describe('sourceKey', () => {
  it('keys IPv4 (also IPv4-mapped) by address and IPv6 by /64', () => {
    expect(sourceKey('198.18.0.1')).toBe('198.18.0.1');
    expect(sourceKey('::ffff:198.18.0.1')).toBe('198.18.0.1');
    expect(sourceKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2::9')).toBe(sourceKey('2001:0db8:0001:0002:ffff::1'));
    expect(sourceKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(sourceKey('2001:db8:0:1::1')).not.toBe(sourceKey('2001:db8::1'));
  });
});

describe('gossip datagrams on close (real UDP on loopback)', () => {
  it('close() waits for datagrams handed to the socket: the last ones before it (a graceful leave) still go out', async () => {
    // dgram sends complete asynchronously; closing the socket at once discarded the unsent ones, so
    // an agent that sent its leave and closed in the same tick told nobody (failed the netns
    // partition test). 50 sends then close(): every one must arrive (loopback does not drop 50
    // small datagrams into an empty 200 KiB+ receive buffer).
    const [pa, pb] = [await freePort(), await freePort()];
    const a = createRealIo({ ip: '127.0.0.1', port: pa });
    const b = createRealIo({ ip: '127.0.0.1', port: pb });
    let got = 0;
    await a.bind({ handlePacket: () => {}, handleExchange: () => [] });
    await b.bind({ handlePacket: () => void got++, handleExchange: () => [] });
    try {
      for (let i = 0; i < 50; i++) a.send({ ip: '127.0.0.1', port: pb }, Buffer.alloc(200, i));
      await a.close();
      for (let t = 0; t < 50 && got < 50; t++) await sleep(20);
      expect(got).toBe(50);
      expect(() => a.send({ ip: '127.0.0.1', port: pb }, Buffer.alloc(10))).not.toThrow(); // after close: ignored
    } finally {
      await b.close();
    }
  });
});
