import { afterEach } from 'vitest';
import { PacketBatch, type BufferPool } from '@overlay/dataplane';
import { UdpTransport } from '@overlay/native';

export const LOOP4 = Buffer.from([127, 0, 0, 1]);

/** Bind UdpTransports that are closed after each test of the calling file. */
export function transports(): (o: Parameters<typeof UdpTransport.bind>[0]) => UdpTransport {
  const open: UdpTransport[] = [];
  afterEach(async () => {
    for (const t of open.splice(0)) await t.close();
  });
  return (o) => {
    const t = UdpTransport.bind(o);
    open.push(t);
    return t;
  };
}

/** Poll `cond` every 5 ms; throw (with `what()`) after `ms`. */
export async function until(cond: () => boolean, ms = 10_000, what = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Send `bodies` from `from` as one batch of slots of `pool` to port on `addr` (default 127.0.0.1),
 * release the slots, return how many went out.
 */
export function sendBodies(from: UdpTransport, pool: BufferPool, port: number, bodies: Buffer[], family: 4 | 6 = 4, addr = LOOP4): number {
  const batch = new PacketBatch(bodies.length);
  for (const b of bodies) {
    const s = pool.acquire();
    pool.fill(s, b);
    pool.setEndpoint(s, family, addr, port);
    batch.push(s);
  }
  const sent = from.send(pool, batch);
  for (let i = 0; i < batch.count; i++) pool.release(batch.slots[i]);
  return sent;
}

/** What `collect` saw: each datagram's bytes and source ('4 127.0.0.1:port' or '6 HEX:port'), largest batch. */
export interface Collected {
  got: Buffer[];
  sources: Set<string>;
  maxBatch: number;
}

/** Start `t` with a sink that copies every datagram out and releases its slot. */
export function collect(t: UdpTransport, pool: BufferPool): Collected {
  const c: Collected = { got: [], sources: new Set(), maxBatch: 0 };
  t.start(pool, (batch) => {
    c.maxBatch = Math.max(c.maxBatch, batch.count);
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      c.got.push(pool.copyOut(s));
      const a = pool.addr.subarray(s * 16, s * 16 + 16);
      const addr = pool.family[s] === 4 ? [...a.subarray(0, 4)].join('.') : Buffer.from(a).toString('hex');
      c.sources.add(`${pool.family[s]} ${addr}:${pool.port[s]}`);
      pool.release(s);
    }
  });
  return c;
}
