// The first exchange between freshly configured peers must get through within a round trip, or
// after a loss within REKEY_TIMEOUT + jitter (+ one 100 ms tick + a round trip), whatever the
// order: both sides initiating at once, one side configured late, setPeer repeated while the
// handshake is pending, the endpoint changed, the first initiation/response/confirmation lost.
// Discrete-event simulation on a fake clock (helpers/sim.ts), plus one run on the real clock.
import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch, type Transport } from '@overlay/dataplane';
import { createTestnet, seededRandom } from '@overlay/dataplane/testing';
import { constants as C } from '../src/index.js';
import { Sim, type SimDatagram, type SimHost } from './helpers/sim.js';
import { vtepSide } from './helpers/vtep.js';

const ONE_WAY = 5;
const RTT = 2 * ONE_WAY;
/** A lossless first exchange: handshake (1 RTT) plus the data (½ RTT), with slack. */
const LOSSLESS_BOUND = 3 * RTT;
/** After one lost handshake message: the retransmission timer, one tick late at most, then a lossless exchange. */
const ONE_LOSS_BOUND = C.REKEY_TIMEOUT + C.REKEY_TIMEOUT_JITTER + 100 + LOSSLESS_BOUND;

/** Drops the first `n` datagrams that match. */
function dropFirst(n: number, match: (d: SimDatagram) => boolean) {
  let left = n;
  return (d: SimDatagram): boolean => {
    if (left > 0 && match(d)) {
      left--;
      return true;
    }
    return false;
  };
}

function twoHosts(drop: (d: SimDatagram) => boolean = () => false) {
  const sim = new Sim((d) => (drop(d) ? null : ONE_WAY));
  const a = sim.host({}, 0);
  const b = sim.host({}, 37);
  return { sim, a, b };
}

function connectBoth(a: SimHost, b: SimHost): void {
  a.add(b);
  b.add(a);
}

/** Two configured hosts that each send their first packet to the other at the same instant. */
function crossingFirstPackets(drop?: (d: SimDatagram) => boolean) {
  const { sim, a, b } = twoHosts(drop);
  connectBoth(a, b);
  const t0 = sim.t;
  a.send(b, 'a1');
  b.send(a, 'b1');
  return { sim, a, b, t0 };
}

/** Time from `start` until `host` received `text`; fails the test if it never did. */
function latency(host: SimHost, text: string, start: number): number {
  const at = host.got(text);
  expect(at, `${text} never arrived`).toBeDefined();
  return at! - start;
}

describe('first handshake: simultaneous initiation', () => {
  it('both sides send at the same instant: both first packets arrive within a round trip, and the sessions carry later traffic', () => {
    const { sim, a, b, t0 } = crossingFirstPackets();
    sim.run(1000);
    expect(latency(b, 'a1', t0)).toBeLessThanOrEqual(LOSSLESS_BOUND);
    expect(latency(a, 'b1', t0)).toBeLessThanOrEqual(LOSSLESS_BOUND);
    // Each side answered the other's initiation and completed its own: both keypairs usable.
    const t1 = sim.t;
    for (let i = 2; i <= 5; i++) {
      a.send(b, `a${i}`);
      b.send(a, `b${i}`);
      sim.run(50);
    }
    for (let i = 2; i <= 5; i++) {
      expect(latency(b, `a${i}`, t1)).toBeLessThan(250);
      expect(latency(a, `b${i}`, t1)).toBeLessThan(250);
    }
    for (const h of [a, b]) {
      expect(h.dev.stats().drops.unknown_index).toBe(0);
      expect(h.dev.peers()[0].queued).toBe(0);
    }
  });

  it('crossing initiations at every offset within a round trip: no first packet waits for a timer', () => {
    for (let offset = 0; offset <= 2 * RTT; offset++) {
      const { sim, a, b } = twoHosts();
      connectBoth(a, b);
      const t0 = sim.t;
      a.send(b, 'a1');
      sim.at(t0 + offset, () => b.send(a, 'b1'));
      sim.run(2000);
      expect(latency(b, 'a1', t0), `offset ${offset}`).toBeLessThanOrEqual(LOSSLESS_BOUND);
      expect(latency(a, 'b1', t0 + offset), `offset ${offset}`).toBeLessThanOrEqual(LOSSLESS_BOUND);
      a.send(b, 'a2');
      b.send(a, 'b2');
      sim.run(100);
      expect(b.got('a2'), `offset ${offset}`).toBeDefined();
      expect(a.got('b2'), `offset ${offset}`).toBeDefined();
    }
  });

  it('all-pairs among 5 hosts starting together, random delays (40 seeds): every first packet within a round trip', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = seededRandom(seed);
      const sim = new Sim(() => 1 + Math.floor(rnd() * 20));
      const hosts = Array.from({ length: 5 }, () => sim.host({}, Math.floor(rnd() * 100)));
      for (const x of hosts) for (const y of hosts) if (x !== y) x.add(y);
      const t0 = sim.t;
      for (const x of hosts) for (const y of hosts) if (x !== y) sim.at(t0 + Math.floor(rnd() * 30), () => x.send(y, `${x.addr}>${y.addr}`));
      sim.run(3000);
      for (const x of hosts) {
        for (const y of hosts) {
          if (x === y) continue;
          // Sent by t0+30, at most 20 ms per leg: handshake, response, data.
          expect(latency(y, `${x.addr}>${y.addr}`, t0), `seed ${seed}`).toBeLessThanOrEqual(30 + 3 * 20);
        }
      }
      // The second round rides established sessions.
      const t1 = sim.t;
      for (const x of hosts) for (const y of hosts) if (x !== y) x.send(y, `2:${x.addr}>${y.addr}`);
      sim.run(200);
      for (const x of hosts) for (const y of hosts) if (x !== y) expect(latency(y, `2:${x.addr}>${y.addr}`, t1), `seed ${seed}`).toBeLessThanOrEqual(20);
    }
  });
});

describe('first handshake: late configuration and repeated setPeer', () => {
  it('the first initiation reaches a host that does not know us yet: retried after REKEY_TIMEOUT and answered once configured', () => {
    const { sim, a, b } = twoHosts();
    a.add(b);
    const t0 = sim.t;
    a.send(b, 'a1');
    sim.run(1000);
    expect(b.dev.stats().drops.unknown_peer).toBe(1);
    b.add(a);
    sim.run(C.REKEY_TIMEOUT * 2);
    expect(latency(b, 'a1', t0)).toBeLessThanOrEqual(ONE_LOSS_BOUND);
  });

  it('the late host sends as soon as it is configured: both directions complete at once', () => {
    const { sim, a, b } = twoHosts();
    a.add(b);
    const t0 = sim.t;
    a.send(b, 'a1');
    sim.run(1000);
    const t1 = sim.t;
    b.add(a);
    b.send(a, 'b1');
    sim.run(C.REKEY_TIMEOUT * 2);
    expect(latency(a, 'b1', t1)).toBeLessThanOrEqual(LOSSLESS_BOUND);
    // a's queued packet rides the session b initiated (a confirms b's keypair with it).
    expect(latency(b, 'a1', t1)).toBeLessThanOrEqual(LOSSLESS_BOUND);
    expect(t1 - t0).toBe(1000);
  });

  it('setPeer repeated with the same configuration while the handshake is pending changes nothing', () => {
    const { sim, a, b, t0 } = crossingFirstPackets();
    // While the initiations are in flight, and again while the responses are.
    sim.at(t0 + 2, () => connectBoth(a, b));
    sim.at(t0 + ONE_WAY + 2, () => connectBoth(a, b));
    sim.run(1000);
    expect(latency(b, 'a1', t0)).toBeLessThanOrEqual(LOSSLESS_BOUND);
    expect(latency(a, 'b1', t0)).toBeLessThanOrEqual(LOSSLESS_BOUND);
    expect(a.dev.stats().tx.handshakeInitiations).toBe(1);
    expect(b.dev.stats().tx.handshakeInitiations).toBe(1);
  });

  it('setPeer with unchanged configuration keeps a roamed endpoint', () => {
    const { sim, a, b } = twoHosts();
    connectBoth(a, b);
    a.send(b, 'a1');
    sim.run(100);
    // a's packets now arrive from a new address: b follows it.
    const roamed = { address: '198.18.0.9', port: 51820 };
    a.sourceAddr = roamed.address;
    a.send(b, 'a2');
    sim.run(2 * ONE_WAY);
    expect(b.got('a2')).toBeDefined();
    const endpoint = () => b.dev.peer(a.dev.publicKey)!.endpoint;
    expect(endpoint()).toEqual(roamed);
    b.add(a); // the same configuration again, as an agent re-programming its members does
    expect(endpoint()).toEqual(roamed);
  });

  it('setPeer with unchanged configuration keeps the persistent-keepalive schedule', () => {
    const { sim, a, b } = twoHosts();
    const cfg = { publicKey: b.dev.publicKey, endpoint: { address: b.addr, port: 51820 }, allowedIPs: [`${b.inner}/32`], persistentKeepalive: 25 };
    a.dev.setPeer(cfg);
    b.add(a);
    a.dev.connect(b.dev.publicKey);
    sim.run(100);
    const keepalivesFromA = () => sim.log.filter((d) => d.from === a.addr && d.type === 4 && d.bytes.length === 32).map((d) => d.sentAt);
    // The initiator confirmed the session with a keepalive; the schedule runs from there.
    expect(keepalivesFromA()).toHaveLength(1);
    const confirmedAt = keepalivesFromA()[0];
    sim.run(20_000);
    a.dev.setPeer(cfg);
    sim.run(5_500);
    const next = keepalivesFromA()[1];
    expect(next).toBeDefined();
    // 25 s after the last packet, one tick late at most, not 25 s after the repeated setPeer.
    expect(next - confirmedAt).toBeGreaterThanOrEqual(25_000);
    expect(next - confirmedAt).toBeLessThanOrEqual(25_100);
  });

  it('an endpoint changed while the handshake is pending: the queued packet goes to the new endpoint at once', () => {
    const { sim, a, b } = twoHosts();
    b.add(a);
    a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: '198.18.0.99', port: 51820 }, allowedIPs: [`${b.inner}/32`] });
    a.send(b, 'a1');
    sim.run(1000);
    const t1 = sim.t;
    a.add(b); // the right endpoint
    sim.run(C.REKEY_TIMEOUT * 2);
    expect(latency(b, 'a1', t1)).toBeLessThanOrEqual(LOSSLESS_BOUND);
  });
  it('a peer configured without an endpoint: packets wait, and go as soon as the endpoint is set', () => {
    const { sim, a, b } = twoHosts();
    b.add(a);
    a.dev.setPeer({ publicKey: b.dev.publicKey, allowedIPs: [`${b.inner}/32`] });
    expect(a.send(b, 'a1')).toBe(1); // queued
    expect(a.dev.stats().drops.no_endpoint).toBe(1);
    sim.run(1000);
    const t1 = sim.t;
    a.add(b);
    sim.run(1000);
    expect(latency(b, 'a1', t1)).toBeLessThanOrEqual(LOSSLESS_BOUND);
  });
});

describe('first handshake: loss', () => {
  const cases: { name: string; drop: (d: SimDatagram) => boolean; both: boolean }[] = [
    { name: 'the first initiation', drop: dropFirst(1, (d) => d.type === 1), both: false },
    { name: 'the first response', drop: dropFirst(1, (d) => d.type === 2), both: false },
    { name: "the initiator's first data packet (responder holds only the unconfirmed keypair)", drop: dropFirst(1, (d) => d.type === 4), both: false },
    { name: 'both crossing initiations', drop: dropFirst(2, (d) => d.type === 1), both: true },
    { name: 'both crossing responses', drop: dropFirst(2, (d) => d.type === 2), both: true },
    { name: 'the first initiation of one of two crossing handshakes', drop: dropFirst(1, (d) => d.type === 1), both: true },
    { name: 'the first data packet each way', drop: dropFirst(2, (d) => d.type === 4), both: true },
  ];
  for (const c of cases) {
    it(`loses ${c.name}${c.both ? ' (both sides sending)' : ''}: the next packets get through within REKEY_TIMEOUT + jitter`, () => {
      const { sim, a, b } = twoHosts(c.drop);
      connectBoth(a, b);
      const t0 = sim.t;
      a.send(b, 'a1');
      if (c.both) b.send(a, 'b1');
      // Keep sending as ping does, once a second, and measure when the first one gets through.
      for (let i = 1; i <= 8; i++) {
        sim.at(t0 + i * 1000, () => {
          a.send(b, `a-${i}`);
          if (c.both) b.send(a, `b-${i}`);
        });
      }
      sim.run(10_000);
      const first = (h: SimHost, prefix: string) => Math.min(...h.received.filter((r) => r.text.startsWith(prefix)).map((r) => r.at)) - t0;
      expect(first(b, 'a')).toBeLessThanOrEqual(ONE_LOSS_BOUND);
      if (c.both) expect(first(a, 'b')).toBeLessThanOrEqual(ONE_LOSS_BOUND);
      // Once through, every later packet arrives.
      for (let i = 6; i <= 8; i++) {
        expect(b.got(`a-${i}`)).toBeDefined();
        if (c.both) expect(a.got(`b-${i}`)).toBeDefined();
      }
    });
  }

  it('a responder with queued packets and an unconfirmed keypair does not wait forever when the confirmation and its own initiation are lost', () => {
    // a initiates; b answers, then has data for a (queued: its keypair is unconfirmed) and
    // initiates too. a's confirming packet and b's initiation are lost.
    const drop = (() => {
      const data = dropFirst(1, (d) => d.type === 4 && d.from === '198.18.0.1');
      const init = dropFirst(1, (d) => d.type === 1 && d.from === '198.18.0.2');
      return (d: SimDatagram) => data(d) || init(d);
    })();
    const { sim, a, b } = twoHosts(drop);
    connectBoth(a, b);
    const t0 = sim.t;
    a.dev.connect(b.dev.publicKey);
    sim.at(t0 + ONE_WAY + 1, () => b.send(a, 'b1'));
    sim.run(10_000);
    expect(latency(a, 'b1', t0)).toBeLessThanOrEqual(ONE_LOSS_BOUND);
  });
});

describe('first handshake on the real clock (100 ms tick, overlay mode over createSecureTransport)', () => {
  it('a lost first initiation is retransmitted after REKEY_TIMEOUT and the datagram arrives', async () => {
    const net = createTestnet({ delayMs: 1 });
    let dropped = 0;
    const dropFirstInitiation = (raw: Transport): Transport => ({
      get localPort() {
        return raw.localPort;
      },
      start: (p, sink) => raw.start(p, sink),
      send(p: BufferPool, batch: PacketBatch): number {
        if (dropped === 0 && batch.count === 1 && p.data[p.off[batch.slots[0]]] === 1) {
          dropped++;
          return 1;
        }
        return raw.send(p, batch);
      },
      close: () => raw.close(),
    });
    const a = vtepSide(net, '198.18.0.1', { tickMs: 100, wrap: dropFirstInitiation });
    const b = vtepSide(net, '198.18.0.2', { tickMs: 100 });
    try {
      a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: b.address, port: 4789 } });
      b.dev.setPeer({ publicKey: a.dev.publicKey, endpoint: { address: a.address, port: 4789 } });
      const t0 = performance.now();
      a.send(b.address, 'first');
      const deadline = t0 + C.REKEY_TIMEOUT * 2;
      while (b.got.length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(dropped).toBe(1);
      expect(b.got.map((g) => g.text)).toEqual(['first']);
      const took = b.got[0].at - t0;
      expect(took).toBeGreaterThanOrEqual(C.REKEY_TIMEOUT - 5);
      // Timer slack on a loaded 2-core machine: one tick plus scheduling delays.
      expect(took).toBeLessThanOrEqual(C.REKEY_TIMEOUT + C.REKEY_TIMEOUT_JITTER + 100 + 500);
    } finally {
      await a.t.close();
      await b.t.close();
    }
  });
});
