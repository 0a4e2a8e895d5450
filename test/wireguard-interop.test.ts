// Interop with Debian's unmodified wireguard-go, configured by `wg`, in network namespaces:
// our side is an L3 peer on a real TUN device with a recvmmsg/sendmmsg UDP socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { latestHandshake } from './lib/wg-go.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { capture, OUR_INNER, startPair, THEIR_INNER, type Pair } from './lib/wg-interop.js';

const MB = 50;

describe.sequential('interop with wireguard-go (L3, TUN)', () => {
  let tb: Testbed;
  let pair: Pair | null = null;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'wgi' });
  });
  afterAll(async () => {
    await pair?.close();
    await tb?.destroy();
  });
  const fresh = async (o: Parameters<typeof startPair>[1]) => {
    await pair?.close();
    pair = null;
    pair = await startPair(tb, o);
    return pair;
  };

  for (const psk of [false, true]) {
    const tag = psk ? 'with a preshared key' : 'without a preshared key';

    it(`wireguard-go initiates, ${tag}: ping and ${MB} MB TCP both ways`, async () => {
      const p = await fresh({ psk });
      expect(await ping(p.them, OUR_INNER, 5)).toBeGreaterThanOrEqual(4);
      const s = await p.ours.stats();
      expect(s.device.rx.handshakeInitiations).toBeGreaterThanOrEqual(1);
      expect(s.device.tx.handshakeInitiations).toBe(0);
      expect(p.ours.events[0]).toBe('peer-up');
      let t0 = Date.now();
      const up = await tcpTransfer(p.them, p.us, OUR_INNER, 5021, MB << 20, 150_000);
      const upMs = Date.now() - t0;
      expect(up.received.bytes).toBe(MB << 20);
      expect(up.received).toEqual(up.sent);
      t0 = Date.now();
      const down = await tcpTransfer(p.us, p.them, THEIR_INNER, 5022, MB << 20, 150_000);
      const downMs = Date.now() - t0;
      expect(down.received.bytes).toBe(MB << 20);
      expect(down.received).toEqual(down.sent);
      console.log(`interop ${tag}: ${MB} MB them->us ${upMs} ms, us->them ${downMs} ms`);
    });

    it(`we initiate, ${tag}: ping both ways`, async () => {
      const p = await fresh({ psk });
      expect(await ping(p.us, THEIR_INNER, 5)).toBeGreaterThanOrEqual(4);
      const s = await p.ours.stats();
      expect(s.device.tx.handshakeInitiations).toBeGreaterThanOrEqual(1);
      expect(s.device.rx.handshakeResponses).toBeGreaterThanOrEqual(1);
      // Not asserting that wireguard-go never initiated: on a loaded machine it may also start a
      // handshake of its own (both sides have traffic queued); the response proves ours completed.
      expect(await ping(p.them, OUR_INNER, 3)).toBe(3);
      expect(await latestHandshake(p.them, p.iface)).toBeGreaterThan(0);
    });
  }

  it('a capture of the encrypted transfer contains no plaintext marker (the TUN side does)', async () => {
    const p = await fresh({});
    expect(await ping(p.us, THEIR_INNER, 2)).toBeGreaterThanOrEqual(1);
    const marker = `PLAINTEXT-MARKER-${process.pid}`;
    let inner: Buffer = Buffer.alloc(0);
    const outer = await capture(p.us, 'ul0', ['udp', 'port', '51820'], async () => {
      inner = await capture(p.us, p.tun, ['tcp'], async () => {
        const t = await tcpTransfer(p.us, p.them, THEIR_INNER, 5023, 2 << 20, 150_000, marker);
        expect(t.received).toEqual(t.sent);
      });
    });
    expect(outer.length).toBeGreaterThan(2 << 20); // the transfer went through the underlay
    expect(inner.includes(Buffer.from(marker))).toBe(true); // positive control
    expect(outer.includes(Buffer.from(marker))).toBe(false);
  });

  it('rekeys while traffic flows, our side initiating on its fast clock, without loss', async () => {
    // 30× clock: REKEY_AFTER_TIME (120 s) passes every 4 s of real time.
    const p = await fresh({ clockSpeed: 30 });
    expect(await ping(p.us, THEIR_INNER, 2)).toBeGreaterThanOrEqual(1);
    const first = await latestHandshake(p.them, p.iface);
    const received = await ping(p.us, THEIR_INNER, 60);
    const s = await p.ours.stats();
    expect(p.ours.events.filter((e) => e === 'rekey').length).toBeGreaterThanOrEqual(2);
    expect(s.device.tx.handshakeInitiations).toBeGreaterThanOrEqual(3);
    expect(await latestHandshake(p.them, p.iface)).toBeGreaterThan(first);
    expect(received).toBe(60);
  });
});
