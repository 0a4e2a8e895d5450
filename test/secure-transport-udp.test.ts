// The encrypted overlay's receive path as openHost assembles it: createSecureTransport over a
// UdpTransport with GRO and deferSealed (transport data opened straight from the socket's staging
// area by the addon's AEAD), two devices over loopback. Forged, replayed and short datagrams sent
// from a third socket are still counted drops with their reasons, and everything authentic
// arrives intact; the same with the copy (deferSealed off) as the control.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch, type Transport } from '@overlay/dataplane';
import { resolveAead, UdpTransport } from '@overlay/native';
import { WireGuardDevice, createSecureTransport, generatePrivateKey } from '@overlay/crypto';

const LOOP = Buffer.from([127, 0, 0, 1]);

async function until(cond: () => boolean, what: () => string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Send `bodies` as one batch from `t` (a Transport over `pool`) to 127.0.0.1:port. */
function sendAll(t: Transport, pool: BufferPool, port: number, bodies: Buffer[]): number {
  const batch = new PacketBatch(bodies.length);
  for (const b of bodies) {
    const s = pool.acquire();
    pool.fill(s, b);
    pool.setEndpoint(s, 4, LOOP, port);
    batch.push(s);
  }
  const n = t.send(pool, batch);
  for (let i = 0; i < batch.count; i++) pool.release(batch.slots[i]);
  return n;
}

describe('secure transport over UDP with deferred copies', () => {
  for (const defer of [true, false]) {
    it(`forged, replayed and short datagrams are counted drops; the rest arrives intact (deferSealed ${defer})`, async () => {
      const aead = resolveAead('native');
      const open: Array<{ close(): Promise<void> }> = [];
      try {
        const udp = (gso: boolean) => {
          const u = UdpTransport.bind({ address: '127.0.0.1', port: 0, gso, gro: true, deferSealed: defer, recvBufferBytes: 4 << 20, sendBufferBytes: 4 << 20 });
          open.push(u);
          return u;
        };
        const ua = udp(true);
        const ub = udp(false);
        const spy = UdpTransport.bind({ address: '127.0.0.1', port: 0 });
        open.push(spy);
        // A's transport data as it leaves, and one message held back (not sent) to forge later.
        const wire: Buffer[] = [];
        let holdNext = false;
        let held: Buffer | null = null;
        const tapA: Transport = {
          localPort: ua.localPort,
          start: (p, sink) => ua.start(p, sink),
          close: () => ua.close(),
          send(p, batch) {
            const keep = new PacketBatch(batch.count);
            for (let i = 0; i < batch.count; i++) {
              const s = batch.slots[i];
              const bytes = p.copyOut(s);
              if (bytes.readUInt32LE(0) === 4 && bytes.length > 32 && holdNext && !held) held = bytes;
              else {
                if (bytes.readUInt32LE(0) === 4 && bytes.length > 32) wire.push(bytes);
                keep.push(s);
              }
            }
            return ua.send(p, keep) + (batch.count - keep.count);
          },
        };
        const da = new WireGuardDevice({ privateKey: generatePrivateKey(), mode: 'overlay', tickMs: 0, aead });
        const db = new WireGuardDevice({ privateKey: generatePrivateKey(), mode: 'overlay', tickMs: 0, aead });
        da.setPeer({ publicKey: db.publicKey, endpoint: { address: '127.0.0.1', port: ub.localPort } });
        db.setPeer({ publicKey: da.publicKey, endpoint: { address: '127.0.0.1', port: ua.localPort } });
        const ta = createSecureTransport({ inner: tapA, device: da });
        const tb = createSecureTransport({ inner: ub, device: db });
        open.push(ta, tb);
        const pa = new BufferPool({ count: 512 });
        const pb = new BufferPool({ count: 512 });
        const got: Buffer[] = [];
        ta.start(pa, (batch) => {
          for (let i = 0; i < batch.count; i++) pa.release(batch.slots[i]);
        });
        tb.start(pb, (batch) => {
          for (let i = 0; i < batch.count; i++) {
            got.push(pb.copyOut(batch.slots[i]));
            pb.release(batch.slots[i]);
          }
        });
        // 40 datagrams of 1400 bytes (the first ones wait for the handshake), then one more held back.
        const bodies = Array.from({ length: 40 }, () => randomBytes(1400));
        expect(sendAll(ta, pa, ub.localPort, bodies)).toBe(40);
        await until(() => got.length === 40, () => `${got.length}/40 ${JSON.stringify(db.stats().drops)}`);
        holdNext = true;
        const late = randomBytes(900);
        sendAll(ta, pa, ub.localPort, [late]);
        expect(held).not.toBeNull();
        // From a third socket: a replay of a delivered message, the held one forged, a 20-byte
        // datagram of type 4, then the held one as it was (authentic, never seen: delivered).
        const forged = Buffer.from(held!);
        forged[16 + 450] ^= 1;
        const short = Buffer.alloc(20);
        short.writeUInt32LE(4, 0);
        for (const d of [wire[5], forged, short, held!]) expect(sendAll(spy, pb, ub.localPort, [d])).toBe(1);
        await until(() => got.length === 41, () => `${got.length}/41 ${JSON.stringify(db.stats().drops)}`);
        await until(() => (db.stats().drops.too_short ?? 0) === 1, () => JSON.stringify(db.stats().drops));
        const drops = db.stats().drops;
        expect([drops.replay, drops.decrypt_failed, drops.too_short]).toEqual([1, 1, 1]);
        expect(got.slice(0, 40).every((g, i) => g.equals(bodies[i]))).toBe(true);
        expect(got[40].equals(late)).toBe(true);
        expect(ub.counters.get('rxNoBufferDrops') + ub.counters.get('rxTooBigDrops')).toBe(0);
      } finally {
        for (const t of open.reverse()) await t.close().catch(() => {});
      }
    });
  }
});
