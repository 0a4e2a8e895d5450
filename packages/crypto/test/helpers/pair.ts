/** Two L3 WireGuard devices on an in-process wire, a fake clock, and their pools. */
import { createHash } from 'node:crypto';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import { WireGuardDevice, generatePrivateKey, type WireGuardDeviceOptions } from '../../src/index.js';
import { ipv4, Wire, type End } from './wire.js';

export interface Side {
  dev: WireGuardDevice;
  pool: BufferPool;
  end: End;
  addr: string;
  inner: string;
  received: Buffer[];
  events: string[];
  /** Sends one IP packet from this side's inner address to `dst`. */
  sendIp(dst: string, payload: Buffer, src?: string): number;
}

export class Clock {
  t = 1_000_000;
  now = (): number => this.t;
  advance(ms: number, ...devs: WireGuardDevice[]): void {
    // Step in 100 ms increments so timers fire in order, as the real interval would.
    const end = this.t + ms;
    while (this.t < end) {
      this.t = Math.min(end, this.t + 100);
      for (const d of devs) d.tick();
    }
  }
}

export function makeSide(wire: Wire, clock: Clock, addr: string, inner: string, extra: Partial<WireGuardDeviceOptions> = {}): Side {
  const privateKey = generatePrivateKey();
  const dev = new WireGuardDevice({ privateKey, now: clock.now, tickMs: 0, ...extra });
  const pool = new BufferPool({ count: 1024, frameCapacity: 2048 });
  const end = wire.transport(addr);
  const received: Buffer[] = [];
  const events: string[] = [];
  for (const ev of ['peer-up', 'peer-down', 'rekey']) dev.on(ev, () => events.push(ev));
  dev.attach(pool, end);
  const out = new PacketBatch(64);
  end.start(pool, (batch) => {
    out.clear();
    dev.receive(pool, batch, out);
    for (let i = 0; i < out.count; i++) {
      received.push(pool.copyOut(out.slots[i]));
      pool.release(out.slots[i]);
    }
  });
  const side: Side = {
    dev, pool, end, addr, inner, received, events,
    sendIp(dst, payload, src = inner) {
      const slot = pool.acquire();
      pool.fill(slot, ipv4(src, dst, payload));
      const b = new PacketBatch(1);
      b.push(slot);
      const n = dev.send(pool, b);
      pool.release(slot);
      return n;
    },
  };
  return side;
}

export function connect(a: Side, b: Side, psk?: string): void {
  a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: b.addr, port: 51820 }, allowedIPs: [`${b.inner}/32`], presharedKey: psk });
  b.dev.setPeer({ publicKey: a.dev.publicKey, endpoint: { address: a.addr, port: 51820 }, allowedIPs: [`${a.inner}/32`], presharedKey: psk });
}

export function pair(extraA: Partial<WireGuardDeviceOptions> = {}, extraB: Partial<WireGuardDeviceOptions> = {}, psk?: string) {
  const wire = new Wire();
  const clock = new Clock();
  const a = makeSide(wire, clock, '198.18.0.1', '198.19.0.1', extraA);
  const b = makeSide(wire, clock, '198.18.0.2', '198.19.0.2', extraB);
  connect(a, b, psk);
  return { wire, clock, a, b };
}

/** The payload bytes of an IPv4 packet received by a side. */
export const payloadOf = (pkt: Buffer) => pkt.subarray(20).toString();

/**
 * Two devices with an established session (the first initiation answered by a cookie reply under
 * load, the retry completing), and the last captured sample of each message type (1 initiation,
 * 2 response, 3 cookie reply, 4 data with a payload). `b.received` holds the 2 packets delivered.
 */
export function sessionWithSamples() {
  const wire = new Wire();
  const clock = new Clock();
  const a = makeSide(wire, clock, '198.18.0.1', '198.19.0.1');
  const b = makeSide(wire, clock, '198.18.0.2', '198.19.0.2', { underLoadThreshold: 0 });
  connect(a, b);
  a.sendIp('198.19.0.2', Buffer.from('first'));
  wire.flush(); // initiation -> cookie reply
  clock.advance(6_000, a.dev, b.dev);
  wire.flush(); // retried initiation with mac2 -> response -> data
  b.sendIp('198.19.0.1', Buffer.from('back'));
  a.sendIp('198.19.0.2', Buffer.from('payload that will be mutated'));
  wire.flush();
  const pick = (t: number) => wire.log.filter((d) => d.bytes[0] === t && (t !== 4 || d.bytes.length > 32)).at(-1)!.bytes;
  return { a, b, samples: { 1: pick(1), 2: pick(2), 3: pick(3), 4: pick(4) } as Record<number, Buffer> };
}

/**
 * Everything a packet could change in a device: peers, indices, keypairs, replay windows,
 * timestamps, cookies, timers (the fuzz test and bench/fuzz-deep.ts compare it before and after).
 */
export function stateOf(dev: WireGuardDevice): string {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const d = (dev as any).e;
  const kp = (k: any) =>
    k && { i: k.localIndex, r: k.remoteIndex, s: k.sendCounter, last: k.replay.last, bm: createHash('sha1').update(k.replay.bitmap).digest('hex') };
  return JSON.stringify({
    peers: dev.peers(),
    indices: [...d.indices.keys()].sort(),
    detail: [...d.peersByKey.values()].map((p: any) => ({
      hs: p.handshake?.localIndex ?? null, cur: kp(p.current), next: kp(p.next), prev: kp(p.previous),
      ts: p.lastTimestamp.toString('hex'), lic: p.lastInitiationConsumedAt, ep: p.endpoint?.toEndpoint(),
      cookie: p.cookies.cookie?.toString('hex') ?? null, timers: [p.retransmitAt, p.keepaliveAt, p.newHandshakeAt, p.zeroKeysAt],
    })),
    tx: dev.stats().tx,
  });
}
