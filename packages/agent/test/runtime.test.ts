import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRealIo, type RealIo } from '../src/runtime.js';

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

describe('push-pull server (real TCP on loopback)', () => {
  let io: RealIo | null = null;
  afterEach(async () => {
    await io?.close();
    io = null;
  });

  it('answers a complete exchange within the buffer budget', async () => {
    const port = await freePort();
    const seen: number[] = [];
    io = createRealIo({ ip: '127.0.0.1', port }, { maxBufferedBytes: 256 * 1024 });
    await io.bind({ handlePacket: () => {}, handleExchange: (_f, chunks) => (seen.push(chunks.length), [Buffer.from('reply')]) });
    const reply = await new Promise<Uint8Array[]>((resolve, reject) =>
      io!.exchange({ ip: '127.0.0.1', port }, [Buffer.alloc(1000, 1), Buffer.alloc(2000, 2)], 5000, (e, r) => (e ? reject(e) : resolve(r!))),
    );
    expect(seen).toEqual([2]);
    expect(reply.map((c) => Buffer.from(c).toString())).toEqual(['reply']);
    expect(io.streamsRefused).toBe(0);
  });

  it('refuses unauthenticated streams that would hold more than the budget, and never hands them on', async () => {
    const port = await freePort();
    let exchanges = 0;
    io = createRealIo({ ip: '127.0.0.1', port }, { maxBufferedBytes: 256 * 1024 });
    await io.bind({ handlePacket: () => {}, handleExchange: () => (exchanges++, []) });
    // Two streams of well-formed frames (garbage contents, never terminated), 200 KiB each: the
    // second one crosses the shared budget while the first is still open.
    const socks = [0, 1].map(() => net.connect({ host: '127.0.0.1', port }));
    const closed = socks.map((s) => new Promise<void>((r) => (s.on('error', () => {}), s.once('close', () => r()))));
    const connected = socks.map((s) => new Promise<void>((r) => s.once('connect', () => r())));
    for (const [i, s] of socks.entries()) {
      await connected[i];
      for (let i = 0; i < 5; i++) s.write(frame(40 * 1024));
      await new Promise((r) => setTimeout(r, 100));
    }
    // The server drops at least one stream at once (not after its 10 s timeout).
    await Promise.race([Promise.any(closed), new Promise((_, rej) => setTimeout(() => rej(new Error('no stream refused')), 3000))]);
    expect(io.streamsRefused).toBeGreaterThanOrEqual(1);
    expect(exchanges).toBe(0);
    for (const s of socks) s.destroy();
    await Promise.all(closed);
  });
});
