import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ENDPOINTS, Keyring, SimCluster, generateSigningKey, signRecord, type EndpointData } from '@overlay/agent';
import { encodeHeader, encodeMessageField } from '../src/wire.js';

const blue = { name: 'blue', vni: 100 };

/** An unsealed (PlainSealer) gossip packet from `node-x`: [0x00][header][fields]. */
function plainPacket(now: number, seq: number, fields: Uint8Array[] = [], session = 1): Uint8Array {
  const h = encodeHeader({ pmin: 2, pmax: 2, from: 'node-x', session, seq, ts: now });
  const p = new Uint8Array(1 + h.length + fields.reduce((n, f) => n + f.length, 0));
  p.set(h, 1);
  let off = 1 + h.length;
  for (const f of fields) {
    p.set(f, off);
    off += f.length;
  }
  return p;
}

function snapshot(c: SimCluster) {
  const a = c.agents[0];
  return JSON.stringify({ members: a.membership.all().map((m) => [m.name, m.state, m.incarnation]), digest: a.table.digest(), inc: a.membership.incarnation, queued: a.queue.size });
}

describe('gossip fuzzing', () => {
  it('drops and counts 100 000+ malformed, oversized, wrongly keyed and replayed packets; state unchanged', () => {
    const c = new SimCluster({ n: 4, seed: 9, encrypt: true, networks: [blue] });
    // Capture real sealed packets addressed to node 0 for replays.
    const captured: Uint8Array[] = [];
    const a0 = c.agents[0];
    const orig = a0.handlePacket.bind(a0);
    a0.handlePacket = (from, bytes) => {
      if (captured.length < 500) captured.push(bytes);
      orig(from, bytes);
    };
    c.bootstrapAll();
    for (let i = 0; i < 4; i++) c.agents[i].publish(blue, { id: `e${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, i) });
    c.run(30_000);
    a0.handlePacket = orig;
    expect(captured.length).toBeGreaterThan(50);
    const before = snapshot(c);
    const drops0 = a0.drops.total();
    const from = c.addrs[1];
    const wrong = new Keyring([Buffer.alloc(32, 99)]);
    const right = new Keyring([new Uint8Array(32).fill(7)]); // the cluster key SimCluster uses
    const validHead = () => encodeHeader({ pmin: 2, pmax: 2, from: 'node-1', session: 1, seq: 1, ts: c.clock.now() });
    let sent = 0;

    // 1) random bytes of any length (also oversized up to 4 KiB)
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 4096 }), (b) => { a0.handlePacket(from, b); sent++; }), { numRuns: 50_000, seed: 1 });
    // 1b) oversized datagrams, genuine-looking or not
    for (let i = 0; i < 1000; i++) { a0.handlePacket(from, right.seal(new Uint8Array(1400 + i * 4))); sent++; }
    // 2) random plaintext sealed with a wrong key
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1300 }), (b) => { a0.handlePacket(from, wrong.seal(b)); sent++; }), { numRuns: 20_000, seed: 2 });
    // 3) correctly keyed garbage and mutated valid envelopes (bad protobuf, bad protocol range, self sender, stale time)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1300 }), fc.nat(10), (b, mode) => {
      let plain: Uint8Array = b;
      if (mode === 1) plain = encodeHeader({ pmin: 9, pmax: 12, from: 'node-1', session: 1, seq: 1, ts: c.clock.now() });
      if (mode === 2) plain = encodeHeader({ pmin: 2, pmax: 2, from: 'node-0', session: 1, seq: 1, ts: c.clock.now() });
      if (mode === 3) plain = Buffer.concat([encodeHeader({ pmin: 2, pmax: 2, from: 'node-1', session: 1, seq: 2, ts: c.clock.now() - 3_600_000 }), encodeMessageField({ dead: { name: 'node-2', incarnation: 99, from: 'node-1' } })]);
      if (mode === 4) plain = Buffer.concat([validHead(), b]);
      a0.handlePacket(from, right.seal(plain));
      sent++;
    }), { numRuns: 20_000, seed: 3 });
    // 4) replays of captured genuine packets (each already accepted once)
    for (let r = 0; r < 40; r++) for (const p of captured) { a0.handlePacket(from, p); sent++; }
    // 5) bit flips of genuine packets
    fc.assert(fc.property(fc.nat(captured.length - 1), fc.nat(2000), (i, pos) => {
      const p = Buffer.from(captured[i]);
      p[pos % p.length] ^= 0x20;
      a0.handlePacket(from, p);
      sent++;
    }), { numRuns: 10_000, seed: 4 });

    expect(sent).toBeGreaterThanOrEqual(100_000);
    expect(snapshot(c)).toBe(before);
    const drops = a0.drops.total() - drops0;
    // mode 4 and random bytes may decode as an empty-but-valid envelope only if sealed right; all else must drop
    expect(drops).toBeGreaterThan(sent - 10_000);
    expect(a0.drops.get('auth_failed')).toBeGreaterThan(60_000);
    expect(a0.drops.get('replayed') + a0.drops.get('old_session')).toBeGreaterThanOrEqual(40 * captured.length);
    expect(a0.drops.get('protocol_mismatch')).toBeGreaterThan(0);
    expect(a0.drops.get('bad_sender')).toBeGreaterThan(0);
    expect(a0.drops.get('stale_timestamp')).toBeGreaterThan(0);
    expect(a0.drops.get('oversized')).toBeGreaterThan(0);
    // The agent still works: time runs on and the cluster stays healthy.
    c.run(5000);
    expect(a0.membership.aliveCount()).toBe(4);
  });
});

describe('replay window', () => {
  it('accepts reordering inside the 64-packet window, rejects duplicates, stale sequence numbers and older sessions', () => {
    const c = new SimCluster({ n: 2, seed: 3 });
    c.bootstrapAll();
    const a = c.agents[0];
    const from = c.addrs[1];
    const send = (session: number, seq: number) => a.handlePacket(from, plainPacket(c.clock.now(), seq, [], session));
    const drops = () => a.drops.get('replayed') + a.drops.get('old_session');
    send(10, 5);
    send(10, 3);
    send(10, 4);
    expect(drops()).toBe(0);
    send(10, 3);
    expect(a.drops.get('replayed')).toBe(1);
    send(10, 100);
    send(10, 37); // 63 behind: inside the window
    expect(a.drops.get('replayed')).toBe(1);
    send(10, 36); // 64 behind: outside
    expect(a.drops.get('replayed')).toBe(2);
    send(9, 1000);
    expect(a.drops.get('old_session')).toBe(1);
    send(11, 1); // a restart: new session, window resets
    expect(drops()).toBe(3);
  });
});

describe('records naming the receiver as owner', () => {
  it('a forged or malformed record of ours is dropped and counted, never stored or signed over', () => {
    const c = new SimCluster({ n: 2, seed: 5, networks: [blue] });
    c.bootstrapAll();
    const a = c.agents[0];
    let seq = 0;
    const head = { network: 'blue', id: 'forged', owner: 'node-0', version: 5, deleted: false };
    const data: EndpointData = { vni: 100, mac: Uint8Array.of(2, 0, 0, 0, 0, 9), ipv4: new Uint8Array(0), ipv6: new Uint8Array(0), vtep: '198.18.0.1' };
    const deliver = (h: typeof head, d: EndpointData, key: Uint8Array) => {
      const r = signRecord(ENDPOINTS, h, d, key);
      a.handlePacket(c.addrs[1], plainPacket(c.clock.now(), ++seq, [encodeMessageField({ record: { body: r.body, sig: r.sig } })]));
    };
    const other = generateSigningKey();
    deliver(head, data, other);
    deliver({ ...head, deleted: true }, data, other);
    deliver(head, { ...data, mac: new Uint8Array(3) }, other);
    expect(a.drops.get('record_bad_signature')).toBe(2);
    expect(a.drops.get('record_malformed')).toBe(1);
    expect(a.endpoint('blue', 'forged')).toBeUndefined();
  });
});

describe('alive messages that cannot name a member', () => {
  it('empty or over-long names and bad addresses are counted, never inserted', () => {
    const c = new SimCluster({ n: 2, seed: 6 });
    c.bootstrapAll();
    const a = c.agents[0];
    const meta = a.membership.selfAlive().meta;
    const before = a.membership.all().length;
    let seq = 0;
    for (const alive of [
      { name: '', incarnation: 1, ip: '198.18.0.9', port: 7946, meta },
      { name: 'x'.repeat(65), incarnation: 1, ip: '198.18.0.9', port: 7946, meta },
      { name: 'ok-name', incarnation: 1, ip: '', port: 7946, meta },
      { name: 'ok-name', incarnation: 1, ip: '198.18.0.9', port: 70000, meta },
    ]) {
      a.handlePacket(c.addrs[1], plainPacket(c.clock.now(), ++seq, [encodeMessageField({ alive })]));
    }
    expect(a.membership.counters.get('bad_alive')).toBe(4);
    expect(a.membership.all().length).toBe(before);
  });
});
