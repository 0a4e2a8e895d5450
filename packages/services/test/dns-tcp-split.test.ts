import * as dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferPool, REPLY, createDataplane, internetChecksum, ipv4PseudoHeaderSum, ipv6PseudoHeaderSum, type Dataplane, type StageContext } from '@overlay/dataplane';
import { buildUdpFrame, createMemoryDevice, createTestnet, type MemoryDevice } from '@overlay/dataplane/testing';
import { DnsResponder } from '../src/dns/responder.js';
import { createDnsCounters } from '../src/dns/counters.js';
import type { TcpReassemblyOptions } from '../src/dns/tcp-reassembly.js';
import { fixtureDirectory, query } from './dns-fixture.js';

// The responder stage's TCP path with a query split over segments (the 2-byte length apart from
// the message, the message cut), inside a real dataplane with an in-memory device: the endpoint's
// TCP is played here, segment by segment, so every split, duplicate, gap and bound is exact.

const EP_MAC = '02:00:00:00:00:01';
const RESOLVER_MAC = '02:00:00:00:00:53';
const R4 = '198.19.0.53';
const R6 = '2001:db8:53::53';
const SYN = 0x02;
const ACK = 0x10;
const PSH_ACK = 0x18;
const FIN = 0x01;

let cleanup: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

function setup(tcpReassembly?: TcpReassemblyOptions) {
  const counters = createDnsCounters();
  const net = createTestnet();
  const dev = createMemoryDevice({ name: 'vx0' });
  const dp: Dataplane = createDataplane({ transport: net.transport('198.18.0.1'), networks: [{ vni: 42, device: dev }] });
  dp.addStage(42, new DnsResponder({ directory: fixtureDirectory(), networks: ['blue'], address4: R4, address6: R6, counters, tcpReassembly }));
  dp.start();
  cleanup.push(() => dp.close());
  return { dp, dev, counters };
}

interface Seg {
  seq: number;
  ack: number;
  flags: number;
  payload?: Uint8Array;
  port?: number;
  v6?: boolean;
}

/** An Ethernet/IP/TCP frame from the endpoint to the resolver's port 53, checksums right. */
function tcpFrame(o: Seg): Buffer {
  const payload = o.payload ?? new Uint8Array(0);
  const v6 = o.v6 === true;
  const f = buildUdpFrame({ srcMac: EP_MAC, dstMac: RESOLVER_MAC, src: v6 ? '2001:db8:53::1' : '198.19.0.1', dst: v6 ? R6 : R4, srcPort: 1, dstPort: 1, payload: new Uint8Array(12 + payload.length) });
  const ip = 14;
  const t = v6 ? ip + 40 : ip + 20;
  const len = 20 + payload.length;
  if (v6) f[ip + 6] = 6;
  else {
    f[ip + 9] = 6;
    f.writeUInt16BE(0, ip + 10);
    f.writeUInt16BE(internetChecksum(f, ip, 20), ip + 10);
  }
  f.writeUInt16BE(o.port ?? 41000, t);
  f.writeUInt16BE(53, t + 2);
  f.writeUInt32BE(o.seq >>> 0, t + 4);
  f.writeUInt32BE(o.ack >>> 0, t + 8);
  f[t + 12] = 5 << 4;
  f[t + 13] = o.flags;
  f.writeUInt16BE(65535, t + 14);
  f.writeUInt16BE(0, t + 16);
  f.writeUInt16BE(0, t + 18);
  f.set(payload, t + 20);
  const pseudo = v6 ? ipv6PseudoHeaderSum(f, ip + 8, ip + 24, 6, len) : ipv4PseudoHeaderSum(f.readUInt32BE(ip + 12), f.readUInt32BE(ip + 16), 6, len);
  f.writeUInt16BE(internetChecksum(f, t, len, pseudo), t + 16);
  return f;
}

/** A reply segment: checksums verified (IPv4 header, TCP over the pseudo-header), ports swapped. */
function parse(f: Buffer): { seq: number; ack: number; flags: number; data: Buffer; port: number } {
  const ip = 14;
  const v6 = f[ip] >> 4 === 6;
  const t = v6 ? ip + 40 : ip + 20;
  const len = v6 ? f.readUInt16BE(ip + 4) : f.readUInt16BE(ip + 2) - 20;
  expect(f.length).toBe(t + len);
  if (!v6) expect(internetChecksum(f, ip, 20)).toBe(0);
  const pseudo = v6 ? ipv6PseudoHeaderSum(f, ip + 8, ip + 24, 6, len) : ipv4PseudoHeaderSum(f.readUInt32BE(ip + 12), f.readUInt32BE(ip + 16), 6, len);
  expect(internetChecksum(f, t, len, pseudo)).toBe(0);
  expect(f.readUInt16BE(t)).toBe(53);
  expect(f.subarray(0, 6).toString('hex')).toBe(EP_MAC.replaceAll(':', ''));
  const hl = (f[t + 12] >> 4) * 4;
  return { seq: f.readUInt32BE(t + 4), ack: f.readUInt32BE(t + 8), flags: f[t + 13], data: f.subarray(t + hl, t + len), port: f.readUInt16BE(t + 2) };
}

/** The endpoint's side of one connection: SYN first, then data parts at chosen offsets. */
async function connect(dev: MemoryDevice, o: { isn: number; port?: number; v6?: boolean }) {
  const before = dev.received.length;
  dev.inject(tcpFrame({ seq: o.isn, ack: 0, flags: SYN, port: o.port, v6: o.v6 }));
  const sa = parse((await dev.waitFor(before + 1, 2000))[before]);
  expect(sa.flags).toBe(SYN | ACK);
  expect(sa.ack).toBe((o.isn + 1) >>> 0);
  const ours = (sa.seq + 1) >>> 0;
  return {
    ours,
    /** Send bytes [from, to) of `stream` (seq = isn + 1 + from); resolves with the frames it brought back. */
    async part(stream: Buffer, from: number, to: number, flags = PSH_ACK, expect = 1) {
      const at = dev.received.length;
      dev.inject(tcpFrame({ seq: (o.isn + 1 + from) >>> 0, ack: ours, flags, payload: stream.subarray(from, to), port: o.port, v6: o.v6 }));
      if (expect === 0) return [];
      return (await dev.waitFor(at + expect, 2000)).slice(at, at + expect).map(parse);
    },
  };
}

const framed = (q: Buffer) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]);
const settle = () => new Promise((r) => setTimeout(r, 30));

describe('DNS responder stage over TCP: queries split over segments', () => {
  it('the length apart from the message: the first part is ACKed, the second answered (IPv4 and IPv6)', async () => {
    for (const v6 of [false, true]) {
      const { dev, counters } = setup();
      const stream = framed(query('web', v6 ? 'AAAA' : 'A', { id: 77 }));
      const c = await connect(dev, { isn: 0xfffffff0, v6 }); // sequence numbers wrap during the query
      const [a1] = await c.part(stream, 0, 2);
      expect(a1.flags).toBe(ACK);
      expect(a1.ack).toBe((0xfffffff0 + 1 + 2) >>> 0);
      expect(a1.data.length).toBe(0);
      const [ans] = await c.part(stream, 2, stream.length);
      expect(ans.flags & (ACK | FIN)).toBe(ACK | FIN);
      expect(ans.seq).toBe(c.ours);
      expect(ans.ack).toBe((0xfffffff0 + 1 + stream.length) >>> 0);
      expect(ans.data.readUInt16BE(0)).toBe(ans.data.length - 2);
      const r = dnsPacket.decode(ans.data.subarray(2));
      expect(r.id).toBe(77);
      expect(r.answers?.map((x) => (x as { data: string }).data)).toEqual([v6 ? '2001:db8:1::10' : '198.19.1.10']);
      expect(counters.get('tcp_reassembled')).toBe(1);
    }
  });

  it('one byte, a duplicate, a gap, then the rest: duplicate re-ACKed, the gap asked for again, the answer whole', async () => {
    const { dev, counters } = setup();
    const stream = framed(query('all.tasks.big', 'A', { id: 9 }));
    const c = await connect(dev, { isn: 1000 });
    expect((await c.part(stream, 0, 1))[0].ack).toBe(1002);
    expect((await c.part(stream, 0, 1))[0].ack).toBe(1002); // duplicate
    const [gap] = await c.part(stream, 10, 20); // bytes 1..10 missing
    expect(gap.flags).toBe(ACK);
    expect(gap.ack).toBe(1002);
    expect(counters.get('tcp_reassembly_out_of_order')).toBe(1);
    expect((await c.part(stream, 1, 10))[0].ack).toBe(1011);
    // Overlapping the bytes already held, to the end: the whole 300-record answer (4 segments at MSS 1410).
    const segs = (await c.part(stream, 5, stream.length, PSH_ACK, 4)).sort((a, b) => a.seq - b.seq);
    expect(segs.map((s) => s.seq - c.ours)).toEqual([0, 1410, 2820, 4230]);
    expect(segs.every((s) => s.ack === 1001 + stream.length)).toBe(true);
    const out = Buffer.concat(segs.map((s) => s.data));
    expect(out.readUInt16BE(0)).toBe(out.length - 2);
    expect(dnsPacket.decode(out.subarray(2)).answers).toHaveLength(300);
    expect(counters.get('tcp_reassembled')).toBe(1);
  });

  it('the last part retransmitted (our answer was lost) is answered again; the FIN frees the flow', async () => {
    const { dev, dp } = setup();
    const stream = framed(query('db', 'A', { id: 5 }));
    const c = await connect(dev, { isn: 50 });
    await c.part(stream, 0, 7);
    const [first] = await c.part(stream, 7, stream.length);
    const [again] = await c.part(stream, 7, stream.length);
    expect(again.data.equals(first.data)).toBe(true);
    expect(again.seq).toBe(first.seq);
    const responder = dp.stats().stages.dns;
    expect(responder.tcp_absorbed).toBe(0);
    dev.inject(tcpFrame({ seq: 51 + stream.length, ack: c.ours + first.data.length + 1, flags: FIN | ACK }));
    const fin = parse((await dev.waitFor(5, 2000))[4]);
    expect(fin.ack).toBe(51 + stream.length + 1);
  });

  it('a middle part with no flow (not the start of the stream) is absorbed and counted', async () => {
    const { dev, dp, counters } = setup();
    const stream = framed(query('web', 'A'));
    const c = await connect(dev, { isn: 7000 });
    await c.part(stream, 4, 12, PSH_ACK, 0);
    await settle();
    expect(counters.get('tcp_reassembly_out_of_order')).toBe(1);
    expect(dp.stats().stages.dns.tcp_absorbed).toBe(1);
    expect(dev.received).toHaveLength(1); // the SYN-ACK only
  });

  it('bounded: flows (full), bytes (oversize, two queries in one stream), time (expired, then reused)', async () => {
    let now = 0;
    const { dev, dp, counters } = setup({ maxFlows: 2, maxBytes: 64, timeoutMs: 1000, now: () => now });
    const stream = framed(query('web', 'A'));
    const a = await connect(dev, { isn: 1, port: 50001 });
    const b = await connect(dev, { isn: 2, port: 50002 });
    const c = await connect(dev, { isn: 3, port: 50003 });
    await a.part(stream, 0, 2);
    await b.part(stream, 0, 2);
    await c.part(stream, 0, 2, PSH_ACK, 0);
    await settle();
    expect(counters.get('tcp_reassembly_full')).toBe(1);
    // After the timeout a's and b's flows are reclaimed: c gets one (counted expired) and is answered.
    now = 1500;
    expect((await c.part(stream, 0, 2))[0].ack).toBe(3 + 1 + 2);
    expect(counters.get('tcp_reassembly_expired')).toBe(2);
    const [ans] = await c.part(stream, 2, stream.length);
    expect(dnsPacket.decode(ans.data.subarray(2)).answers).toHaveLength(1);
    // A length over the byte bound, and two queries in one stream: dropped, counted.
    const big = Buffer.from([0, 200]);
    const d = await connect(dev, { isn: 4, port: 50004 });
    await d.part(Buffer.concat([big, Buffer.alloc(10)]), 0, 12, PSH_ACK, 0);
    const e = await connect(dev, { isn: 5, port: 50005 });
    await e.part(Buffer.concat([stream, stream]), 0, stream.length + 3, PSH_ACK, 0);
    await settle();
    expect(counters.get('tcp_reassembly_oversize')).toBe(2);
    expect(dp.stats().stages.dns.tcp_absorbed).toBe(3);
  });
});

describe('DNS responder stage over TCP: random segments', () => {
  it('20 000 segments (SYNs, parts of queries in and out of order, junk, FIN, RST) on 8 ports: no throw, flows bounded, every one a reply or a counted drop', () => {
    let now = 0;
    const counters = createDnsCounters();
    const responder = new DnsResponder({ directory: fixtureDirectory(), networks: ['blue'], address4: R4, counters, tcpReassembly: { maxFlows: 4, maxBytes: 64, timeoutMs: 200, now: () => now } });
    const pool = new BufferPool({ count: 64 });
    const ctx = { pool, vni: 42, etherType: 0x0800, l3: 0, group: false, toDevice: (s: number) => pool.release(s), toNetwork() {}, drop() {} } as unknown as StageContext & { l3: number };
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const pick = (n: number) => Math.floor(rnd() * n);
    const stream = framed(query('web', 'A'));
    // Per port: the client's ISN and our ISN + 1 from the SYN-ACK (0 before a SYN).
    const isn = new Map<number, number>();
    const ours = new Map<number, number>();
    let replies = 0;
    let drops = 0;
    let maxFlows = 0;
    let leaked = 0;
    const N = 20_000;
    for (let i = 0; i < N; i++) {
      now += rnd() < 0.005 ? 250 : pick(3); // now and then a pause longer than a flow lives
      const port = 50000 + pick(8);
      const r = rnd();
      let seg: Seg;
      const cIsn = isn.get(port) ?? pick(2 ** 32);
      const ack = rnd() < 0.8 ? (ours.get(port) ?? pick(2 ** 32)) : pick(2 ** 32);
      if (r < 0.1 || !isn.has(port)) {
        isn.set(port, cIsn);
        seg = { seq: cIsn, ack: 0, flags: SYN, port };
      } else if (r < 0.85) {
        const from = rnd() < 0.3 ? 0 : pick(stream.length); // often a stream's first part
        const to = Math.min(stream.length, from + 1 + pick(stream.length));
        const junk = rnd() < 0.15;
        const payload = junk ? Buffer.from(Array.from({ length: 1 + pick(80) }, () => pick(256))) : stream.subarray(from, to);
        seg = { seq: (cIsn + 1 + (junk ? pick(100) : from)) >>> 0, ack, flags: rnd() < 0.9 ? PSH_ACK : PSH_ACK | FIN, port, payload };
      } else if (r < 0.95) seg = { seq: (cIsn + 1 + stream.length) >>> 0, ack, flags: FIN | ACK, port };
      else seg = { seq: (cIsn + 1 + pick(40)) >>> 0, ack, flags: 0x04, port };
      const f = tcpFrame(seg);
      const slot = pool.acquire();
      expect(slot).toBeGreaterThanOrEqual(0);
      pool.fill(slot, f);
      ctx.l3 = pool.off[slot] + 14;
      const v = responder.inside(ctx, slot);
      if (v === REPLY) {
        replies++;
        if (seg.flags === SYN) ours.set(port, (pool.data.readUInt32BE(pool.off[slot] + 34 + 4) + 1) >>> 0);
      } else if (v < 0) drops++;
      pool.release(slot);
      if (responder.tcpFlowCount > maxFlows) maxFlows = responder.tcpFlowCount;
      if (pool.available !== 64) leaked++;
    }
    expect(maxFlows).toBe(4);
    expect(leaked).toBe(0);
    expect(replies + drops).toBe(N);
    // The walk reached every path: answers put together, and each kind of counted drop.
    for (const k of ['tcp_reassembled', 'tcp_reassembly_full', 'tcp_reassembly_oversize', 'tcp_reassembly_expired', 'tcp_reassembly_out_of_order'] as const) expect(counters.get(k)).toBeGreaterThan(0);
  });
});
