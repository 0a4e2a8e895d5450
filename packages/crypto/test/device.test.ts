// Two devices over an in-process wire with a fake clock: handshake, data, queueing, rekey,
// timers, cookies, roaming, and the negative cases (replay, tampering, unknown keys).
import { describe, expect, it } from 'vitest';
import { generatePresharedKey, generatePrivateKey } from '../src/index.js';
import { constants as C } from '../src/index.js';
import { pair, payloadOf, makeSide, Clock, connect } from './helpers/pair.js';
import { ipBytes, ipv6, Wire } from './helpers/wire.js';
import { PacketBatch } from '@overlay/dataplane';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';

describe('handshake and transport data (L3)', () => {
  for (const withPsk of [false, true]) {
    it(`establishes a session on first packet and carries data both ways${withPsk ? ' with a preshared key' : ''}`, () => {
      const { wire, a, b } = pair({}, {}, withPsk ? generatePresharedKey() : undefined);
      expect(a.sendIp('198.19.0.2', Buffer.from('hello'))).toBe(1); // queued
      wire.flush();
      expect(b.received.map(payloadOf)).toEqual(['hello']);
      expect(a.events).toEqual(['peer-up']);
      expect(b.events).toEqual(['peer-up']);
      b.sendIp('198.19.0.1', Buffer.from('world'));
      wire.flush();
      expect(a.received.map(payloadOf)).toEqual(['world']);
      // Padding to 16 on the wire, trimmed by the IP length on receipt.
      const data = wire.log.filter((d) => d.bytes[0] === 4 && d.bytes.length > 32);
      for (const d of data) expect((d.bytes.length - 32) % 16).toBe(0);
      expect(a.dev.stats().tx.handshakeInitiations).toBe(1);
      expect(b.dev.stats().tx.handshakeResponses).toBe(1);
    });
  }

  it('fails the handshake when preshared keys differ, and counts it', () => {
    const { wire, a, b } = pair();
    a.dev.setPeer({ publicKey: b.dev.publicKey, presharedKey: generatePresharedKey() });
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    expect(b.received).toEqual([]);
    expect(a.dev.stats().drops.handshake_failed).toBe(1);
    expect(a.events).toEqual([]);
  });

  it('queues a bounded number of packets during the handshake and counts the overflow', () => {
    const { wire, a, b } = pair({ queueLimit: 4 });
    for (let i = 0; i < 6; i++) a.sendIp('198.19.0.2', Buffer.from(`p${i}`));
    expect(a.dev.stats().drops.queue_full).toBe(2);
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['p0', 'p1', 'p2', 'p3']);
    expect(a.dev.stats().tx.handshakeInitiations).toBe(1);
    expect(a.pool.available).toBe(a.pool.count);
  });

  it('drops packets with no route and inner sources outside the peer\'s allowed IPs', () => {
    const { wire, a, b } = pair();
    const events: unknown[] = [];
    const listen = (m: unknown) => events.push(m);
    subscribe('overlay.crypto.drop', listen);
    try {
      a.sendIp('198.19.9.9', Buffer.from('nowhere'));
    } finally {
      unsubscribe('overlay.crypto.drop', listen);
    }
    expect(events).toEqual([{ reason: 'no_peer', scope: -1, count: 1 }]);
    expect(a.dev.stats().drops.no_peer).toBe(1);
    a.sendIp('198.19.0.2', Buffer.from('ok'));
    wire.flush();
    // b only accepts 198.19.0.1 from a: widen a's route so a spoofed source is sent at all.
    b.dev.setPeer({ publicKey: a.dev.publicKey, allowedIPs: ['198.19.0.1/32'] });
    const spoof = a.sendIp('198.19.0.2', Buffer.from('spoof'), '198.19.0.77');
    expect(spoof).toBe(1);
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['ok']);
    expect(b.dev.stats().drops.source_not_allowed).toBe(1);
  });

  it('carries IPv6 packets routed and checked by IPv6 allowed IPs', () => {
    const { wire, a, b } = pair();
    a.dev.setPeer({ publicKey: b.dev.publicKey, allowedIPs: ['198.19.0.2/32', '2001:db8::/64'] });
    b.dev.setPeer({ publicKey: a.dev.publicKey, allowedIPs: ['198.19.0.1/32', '2001:db8:1::1/128'] });
    const send6 = (src: string, text: string) => {
      const slot = a.pool.acquire();
      a.pool.fill(slot, ipv6(ipBytes(src), ipBytes('2001:db8::2'), Buffer.from(text)));
      const batch = new PacketBatch(1);
      batch.push(slot);
      a.dev.send(a.pool, batch);
      a.pool.release(slot);
    };
    send6('2001:db8:1::1', 'v6 hello');
    send6('2001:db8:1::9', 'v6 spoof');
    wire.flush();
    expect(b.received.map((p) => p.subarray(40).toString())).toEqual(['v6 hello']);
    expect(b.received[0].length).toBe(40 + 8); // padding trimmed by the IPv6 payload length
    expect(b.dev.stats().drops.source_not_allowed).toBe(1);
  });

  it('routes by longest prefix match', () => {
    const wire = new Wire();
    const clock = new Clock();
    const a = makeSide(wire, clock, '198.18.0.1', '198.19.0.1');
    const b = makeSide(wire, clock, '198.18.0.2', '198.19.1.2');
    const c = makeSide(wire, clock, '198.18.0.3', '198.19.1.3');
    a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: b.addr, port: 51820 }, allowedIPs: ['198.19.0.0/16'] });
    a.dev.setPeer({ publicKey: c.dev.publicKey, endpoint: { address: c.addr, port: 51820 }, allowedIPs: ['198.19.1.0/24'] });
    b.dev.setPeer({ publicKey: a.dev.publicKey, endpoint: { address: a.addr, port: 51820 }, allowedIPs: ['198.19.0.1/32'] });
    c.dev.setPeer({ publicKey: a.dev.publicKey, endpoint: { address: a.addr, port: 51820 }, allowedIPs: ['198.19.0.1/32'] });
    a.sendIp('198.19.1.3', Buffer.from('to-c'));
    a.sendIp('198.19.2.3', Buffer.from('to-b'));
    wire.flush();
    expect(c.received.map(payloadOf)).toEqual(['to-c']);
    expect(b.received.map(payloadOf)).toEqual(['to-b']);
  });
});

describe('negative cases', () => {
  it('rejects and counts a replayed transport packet', () => {
    const { wire, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('once'));
    wire.flush();
    const captured = wire.log.filter((d) => d.bytes[0] === 4 && d.bytes.length > 32).at(-1)!;
    wire.inject(captured.from, captured.to, captured.bytes);
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['once']);
    expect(b.dev.stats().drops.replay).toBe(1);
  });

  it('rejects a flipped bit anywhere in the ciphertext or tag', () => {
    const { wire, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('first'));
    wire.flush();
    wire.log.length = 0;
    wire.filter = (d) => d.bytes[0] !== 4;
    a.sendIp('198.19.0.2', Buffer.from('tamper me'));
    wire.flush();
    const pkt = wire.log[0];
    wire.filter = () => true;
    for (const at of [16, 20, pkt.bytes.length - 1]) {
      const copy = Buffer.from(pkt.bytes);
      copy[at] ^= 0x01;
      wire.inject(pkt.from, pkt.to, copy);
    }
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['first']);
    expect(b.dev.stats().drops.decrypt_failed).toBe(3);
    // The genuine packet still gets through afterwards: the failures changed no state.
    wire.inject(pkt.from, pkt.to, pkt.bytes);
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['first', 'tamper me']);
  });

  it('gives no response to an initiation from an unknown key', () => {
    const wire = new Wire();
    const clock = new Clock();
    const a = makeSide(wire, clock, '198.18.0.1', '198.19.0.1');
    const b = makeSide(wire, clock, '198.18.0.2', '198.19.0.2');
    // a knows b, b does not know a.
    a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: b.addr, port: 51820 }, allowedIPs: ['198.19.0.2/32'] });
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    expect(b.end.sent).toBe(0);
    expect(b.dev.stats().drops.unknown_peer).toBe(1);
    expect(b.dev.stats().tx.handshakeResponses).toBe(0);
  });

  it('rejects a replayed initiation (TAI64N not newer) without responding', () => {
    const { wire, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    const init = wire.log.find((d) => d.bytes[0] === 1)!;
    const sentBefore = b.end.sent;
    wire.inject(init.from, init.to, init.bytes);
    wire.flush();
    expect(b.end.sent).toBe(sentBefore);
    expect(b.dev.stats().drops.replayed_initiation).toBe(1);
    // The established session is undisturbed.
    a.sendIp('198.19.0.2', Buffer.from('still'));
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['x', 'still']);
  });

  it('drops an initiation with a bad mac1 before any public-key work', () => {
    const { wire, a, b } = pair();
    wire.filter = (d) => d.bytes[0] !== 1;
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    const init = wire.log.find((d) => d.bytes[0] === 1)!;
    const bad = Buffer.from(init.bytes);
    bad[C.INIT_MAC1] ^= 0xff;
    wire.inject(init.from, init.to, bad);
    wire.flush();
    expect(b.dev.stats().drops.bad_mac1).toBe(1);
    expect(b.dev.stats().rx.handshakeInitiations).toBe(0);
  });

  it('after close(), send and receive are counted drops and attach is refused', async () => {
    const { wire, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    await b.dev.close();
    a.sendIp('198.19.0.2', Buffer.from('after close'));
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['x']);
    expect(b.dev.stats().drops.device_closed).toBe(1);
    expect(b.pool.available).toBe(b.pool.count);
    await a.dev.close();
    expect(a.sendIp('198.19.0.2', Buffer.from('y'))).toBe(0);
    expect(a.dev.stats().drops.device_closed).toBe(1);
    expect(() => a.dev.attach(a.pool, a.end)).toThrow(/already attached/);
  });

  it('wipes a peer\'s static shared secret and preshared key when it is replaced, removed or the device closes', async () => {
    const { a, b } = pair({}, {}, generatePresharedKey());
    type Secrets = { staticShared: Buffer; presharedKey: Buffer | null };
    const secretsOf = (s: typeof a, key: string) => (s.dev as unknown as { e: { peersByKey: Map<string, Secrets> } }).e.peersByKey.get(key)!;
    const zero = Buffer.alloc(32);
    const pa = secretsOf(a, b.dev.publicKey);
    const oldPsk = pa.presharedKey!;
    a.dev.setPeer({ publicKey: b.dev.publicKey, presharedKey: generatePresharedKey() });
    expect(oldPsk.equals(zero)).toBe(true);
    const { staticShared, presharedKey } = pa;
    expect(staticShared.equals(zero) || presharedKey!.equals(zero)).toBe(false);
    a.dev.removePeer(b.dev.publicKey);
    expect(staticShared.equals(zero)).toBe(true);
    expect(presharedKey!.equals(zero)).toBe(true);
    const pb = secretsOf(b, a.dev.publicKey);
    await b.dev.close();
    expect(pb.staticShared.equals(zero)).toBe(true);
    expect(pb.presharedKey!.equals(zero)).toBe(true);
    await a.dev.close();
  });

  it('never puts key material in errors', () => {
    const secret = generatePrivateKey();
    const bad = secret.slice(0, -2) + '!=';
    try {
      const wire = new Wire();
      makeSide(wire, new Clock(), '198.18.0.9', '198.19.0.9').dev.setPeer({ publicKey: bad });
      expect.unreachable();
    } catch (e) {
      expect((e as { code: string }).code).toBe('OVL_ERR_INVALID_KEY');
      expect(String((e as Error).message)).not.toContain(secret.slice(0, 10));
    }
  });
});

describe('timers (fake clock)', () => {
  it('rekeys after REKEY_AFTER_TIME without losing a packet', () => {
    const { wire, clock, a, b } = pair();
    let n = 0;
    const send = () => a.sendIp('198.19.0.2', Buffer.from(`m${n++}`));
    send();
    wire.flush();
    for (let step = 0; step < 30; step++) {
      clock.advance(5_000, a.dev, b.dev);
      send();
      b.sendIp('198.19.0.1', Buffer.from('ack'));
      wire.flush();
    }
    expect(a.events).toContain('rekey');
    expect(b.events).toContain('rekey');
    expect(b.received.map(payloadOf)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
    expect(a.dev.stats().tx.handshakeInitiations).toBeGreaterThanOrEqual(2);
  });

  it('accepts packets sealed under the previous keypair that arrive after the rekey', () => {
    const { wire, clock, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('m0'));
    wire.flush();
    // Time passes with the wire delivering (b's keepalive reaches a), up to REKEY_AFTER_TIME.
    for (let t = 0; t <= C.REKEY_AFTER_TIME; t += 1000) {
      clock.advance(1000, a.dev, b.dev);
      wire.flush();
    }
    expect(a.dev.stats().tx.handshakeInitiations).toBe(1);
    // Hold a's data packets (sealed under the old keypair) while the new handshake completes.
    const held: { from: string; to: string; bytes: Buffer }[] = [];
    wire.filter = (d) => {
      if (d.bytes[0] === 4 && d.bytes.length > 32 && held.length < 3) {
        held.push(d);
        return false;
      }
      return true;
    };
    for (const m of ['m1', 'm2', 'm3']) a.sendIp('198.19.0.2', Buffer.from(m)); // the first starts the rekey
    wire.flush();
    expect(a.events).toContain('rekey');
    expect(b.events).toContain('rekey');
    wire.filter = () => true;
    a.sendIp('198.19.0.2', Buffer.from('m4')); // under the new keypair
    for (const d of held) wire.inject(d.from, d.to, d.bytes);
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['m0', 'm4', 'm1', 'm2', 'm3']);
    expect(b.dev.stats().drops.unknown_index).toBe(0);
  });

  it('sends a keepalive KEEPALIVE_TIMEOUT after receiving data when it had nothing to send', () => {
    const { wire, clock, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    const before = b.dev.stats().tx.keepalives;
    clock.advance(C.KEEPALIVE_TIMEOUT + 1000, a.dev, b.dev);
    wire.flush();
    expect(b.dev.stats().tx.keepalives).toBe(before + 1);
    expect(a.dev.stats().rx.keepalives).toBeGreaterThanOrEqual(1);
  });

  it('retransmits initiations every REKEY_TIMEOUT and gives up after REKEY_ATTEMPT_TIME', () => {
    const { wire, clock, a } = pair();
    wire.filter = () => false; // a black hole
    a.sendIp('198.19.0.2', Buffer.from('lost'));
    clock.advance(C.REKEY_ATTEMPT_TIME + 10_000, a.dev);
    const inits = a.dev.stats().tx.handshakeInitiations;
    expect(inits).toBeGreaterThanOrEqual(Math.floor(C.REKEY_ATTEMPT_TIME / (C.REKEY_TIMEOUT + C.REKEY_TIMEOUT_JITTER + 100)));
    expect(inits).toBeLessThanOrEqual(C.REKEY_ATTEMPT_TIME / C.REKEY_TIMEOUT + 1);
    expect(a.dev.stats().drops.handshake_timeout).toBe(1);
    expect(a.pool.available).toBe(a.pool.count);
    clock.advance(30_000, a.dev);
    expect(a.dev.stats().tx.handshakeInitiations).toBe(inits);
  });

  it('zeroes keys after REJECT_AFTER_TIME × 3 of silence and reports the peer down', () => {
    const { wire, clock, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    clock.advance(C.REJECT_AFTER_TIME * 3 + 5_000, a.dev, b.dev);
    wire.flush();
    expect(a.events).toContain('peer-down');
    expect(b.events).toContain('peer-down');
    expect(a.dev.peer(b.dev.publicKey)!.up).toBe(false);
  });

  it('sends persistent keepalives', () => {
    const { wire, clock, a, b } = pair();
    a.dev.setPeer({ publicKey: b.dev.publicKey, persistentKeepalive: 25 });
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    const k0 = a.dev.stats().tx.keepalives;
    for (let i = 0; i < 4; i++) {
      clock.advance(25_000, a.dev, b.dev);
      wire.flush();
    }
    expect(a.dev.stats().tx.keepalives - k0).toBeGreaterThanOrEqual(3);
  });
});

describe('cookies and roaming', () => {
  it('answers with a cookie reply under load; the retried initiation with mac2 succeeds', () => {
    const wire = new Wire();
    const clock = new Clock();
    const a = makeSide(wire, clock, '198.18.0.1', '198.19.0.1');
    const b = makeSide(wire, clock, '198.18.0.2', '198.19.0.2', { underLoadThreshold: 0 });
    connect(a, b);
    a.sendIp('198.19.0.2', Buffer.from('under load'));
    wire.flush();
    expect(b.dev.stats().tx.cookieReplies).toBe(1);
    expect(b.dev.stats().drops.under_load_cookie_sent).toBe(1);
    expect(a.dev.stats().rx.cookieReplies).toBe(1);
    expect(b.received).toEqual([]);
    clock.advance(C.REKEY_TIMEOUT + 1000, a.dev, b.dev);
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['under load']);
    expect(a.dev.stats().drops.bad_cookie).toBe(0);
  });

  it('consumes at most one initiation per 20 ms per peer, and rate-limits sources under load', () => {
    const wire = new Wire();
    const clock = new Clock();
    const a = makeSide(wire, clock, '198.18.0.1', '198.19.0.1');
    const b = makeSide(wire, clock, '198.18.0.2', '198.19.0.2', { underLoadThreshold: 0 });
    connect(a, b);
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush(); // cookie reply
    clock.advance(C.REKEY_TIMEOUT + 1000, a.dev, b.dev);
    wire.flush(); // handshake with mac2
    expect(b.received.map(payloadOf)).toEqual(['x']);
    clock.t += 100; // the bucket refills to its burst of 5
    // Ten fresh initiations (newer timestamps, valid mac1 and mac2) at one instant.
    const engine = (a.dev as unknown as { e: { peersByKey: Map<string, unknown>; initiate(p: unknown, retransmit: boolean): void } }).e;
    const peer = engine.peersByKey.get(b.dev.publicKey);
    const initiate = engine.initiate.bind(engine);
    for (let i = 0; i < 10; i++) initiate(peer, true);
    wire.flush();
    const d = b.dev.stats().drops;
    expect(d.rate_limited).toBe(5);
    expect(d.initiation_flood).toBe(4);
    expect(b.dev.stats().tx.handshakeResponses).toBe(2);
  });

  it('follows a peer to its new address (roaming)', () => {
    const { wire, clock, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    // a moves: its datagrams now come from another address.
    const moved = wire.transport('198.18.0.77');
    moved.start(a.pool, () => {});
    a.end.send = moved.send.bind(moved);
    const route = wire['ends'] as Map<string, unknown>;
    route.set('198.18.0.77:51820', a.end);
    (a.end as unknown as { address: string }).address = '198.18.0.77';
    a.sendIp('198.19.0.2', Buffer.from('from new place'));
    wire.flush();
    expect(b.dev.peer(a.dev.publicKey)!.endpoint).toEqual({ address: '198.18.0.77', port: 51820 });
    b.sendIp('198.19.0.1', Buffer.from('reply'));
    wire.flush();
    expect(a.received.map(payloadOf)).toContain('reply');
    void clock;
  });
});

describe('message limits', () => {
  it('enforces limits that are exact JS integers, at most 2^53 − 1, rekeying before rejecting', () => {
    expect(Number.isSafeInteger(C.REJECT_AFTER_MESSAGES)).toBe(true);
    expect(Number.isSafeInteger(C.REKEY_AFTER_MESSAGES)).toBe(true);
    expect(C.REJECT_AFTER_MESSAGES).toBe(2 ** 53 - 1);
    expect(BigInt(C.REJECT_AFTER_MESSAGES) <= C.SPEC_REJECT_AFTER_MESSAGES).toBe(true);
    expect(BigInt(C.REKEY_AFTER_MESSAGES) <= C.SPEC_REKEY_AFTER_MESSAGES).toBe(true);
    expect(C.REKEY_AFTER_MESSAGES).toBeLessThan(C.REJECT_AFTER_MESSAGES);
  });

  it('never sends two messages with one counter at the end of the exact range: a new session takes over', () => {
    const { wire, clock, a, b } = pair();
    a.sendIp('198.19.0.2', Buffer.from('first'));
    wire.flush();
    // A new initiation may follow the first only REKEY_TIMEOUT later.
    clock.advance(C.REKEY_TIMEOUT + 1000, a.dev, b.dev);
    wire.flush();
    // Jump the session to the last exact counter (2^53 − 1); sending goes on for three more.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const peer = [...(a.dev as any).e.peersByKey.values()][0];
    peer.current.sendCounter = 2 ** 53 - 1;
    const from = wire.log.length;
    for (const t of ['x1', 'x2', 'x3']) a.sendIp('198.19.0.2', Buffer.from(t));
    wire.flush();
    clock.advance(C.REKEY_TIMEOUT + 1000, a.dev, b.dev);
    wire.flush();
    const counters = wire.log
      .slice(from)
      .filter((d) => d.bytes[0] === 4 && d.bytes.length > 32)
      .map((d) => d.bytes.readBigUInt64LE(8));
    expect(counters.length).toBeGreaterThanOrEqual(3);
    for (const c of counters) expect(c < BigInt(C.REJECT_AFTER_MESSAGES)).toBe(true);
    // Counters of one session never repeat: (receiver index, counter) pairs are unique.
    const keys = wire.log.slice(from).filter((d) => d.bytes[0] === 4).map((d) => `${d.bytes.readUInt32LE(4)}/${d.bytes.readBigUInt64LE(8)}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(b.received.map(payloadOf)).toEqual(['first', 'x1', 'x2', 'x3']);
    expect(a.dev.stats().tx.handshakeInitiations).toBe(2);
  });
});
