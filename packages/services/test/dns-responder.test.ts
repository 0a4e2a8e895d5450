import { createSocket, type Socket } from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { createDataplane, internetChecksum, ipv4PseudoHeaderSum, udpChecksumIpv4, udpChecksumIpv6, type Dataplane } from '@overlay/dataplane';
import { buildUdpFrame, createMemoryDevice, createTestnet, type MemoryDevice } from '@overlay/dataplane/testing';
import { DnsResponder } from '../src/dns/responder.js';
import { Forwarder } from '../src/dns/forward.js';
import { createDnsCounters } from '../src/dns/counters.js';
import { fixtureDirectory, query } from './dns-fixture.js';

// The responder stage inside a real dataplane (in-memory device and underlay): queries from the
// local endpoint to the resolver address are answered back to the device, nothing crosses the underlay.

const EP_MAC = '02:00:00:00:00:01';
const RESOLVER_MAC = '02:00:00:00:00:53';
const R4 = '198.19.0.53';
const R6 = '2001:db8:53::53';

let cleanup: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

async function upstream(): Promise<{ sock: Socket; port: number }> {
  const sock = createSocket('udp4');
  sock.on('message', (m, r) => {
    const q = dnsPacket.decode(m);
    if (q.questions![0].name.startsWith('slow')) return;
    sock.send(dnsPacket.encode({ type: 'response', id: q.id, questions: q.questions, answers: [{ type: 'A', name: q.questions![0].name, ttl: 9, data: '198.19.7.7' }] }), r.port, r.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  cleanup.push(() => void sock.close());
  return { sock, port: sock.address().port };
}

async function setup(o: { forward?: boolean; maxHeld?: number } = {}) {
  const counters = createDnsCounters();
  let forwarder: Forwarder | undefined;
  if (o.forward) {
    const up = await upstream();
    forwarder = new Forwarder({ counters, upstreams: [`127.0.0.1:${up.port}`], timeoutMs: 300 });
    cleanup.push(() => forwarder!.close());
  }
  const net = createTestnet();
  const dev = createMemoryDevice({ name: 'vx0' });
  const dp: Dataplane = createDataplane({ transport: net.transport('198.18.0.1'), networks: [{ vni: 42, device: dev }] });
  const responder = new DnsResponder({ directory: fixtureDirectory(), networks: ['blue'], address4: R4, address6: R6, forwarder, counters, maxHeld: o.maxHeld });
  dp.addStage(42, responder);
  dp.setNeighbour(42, R4, RESOLVER_MAC);
  dp.start();
  cleanup.push(() => dp.close());
  return { dp, dev, net, responder, counters };
}

function ask(dev: MemoryDevice, payload: Uint8Array, v6 = false, srcPort = 40000): void {
  dev.inject(buildUdpFrame({ srcMac: EP_MAC, dstMac: RESOLVER_MAC, src: v6 ? '2001:db8:53::1' : '198.19.0.1', dst: v6 ? R6 : R4, srcPort, dstPort: 53, payload }));
}

/** Check the reply frame's headers and checksums; return the decoded DNS message. */
function reply(f: Buffer, v6 = false): dnsPacket.DecodedPacket & { rcode: string } {
  expect(f.subarray(0, 6).toString('hex')).toBe(EP_MAC.replaceAll(':', ''));
  expect(f.subarray(6, 12).toString('hex')).toBe(RESOLVER_MAC.replaceAll(':', ''));
  const ip = 14;
  const g = Buffer.from(f);
  let udp: number;
  if (!v6) {
    expect(f.subarray(ip + 12, ip + 16)).toEqual(Buffer.from([198, 19, 0, 53]));
    expect(f.subarray(ip + 16, ip + 20)).toEqual(Buffer.from([198, 19, 0, 1]));
    expect(internetChecksum(f, ip, 20)).toBe(0);
    expect(f.readUInt16BE(ip + 2)).toBe(f.length - 14);
    udp = ip + 20;
    g.writeUInt16BE(0, udp + 6);
    expect(f.readUInt16BE(udp + 6)).toBe(udpChecksumIpv4(g, udp, f.length - udp, g.readUInt32BE(ip + 12), g.readUInt32BE(ip + 16)));
  } else {
    udp = ip + 40;
    expect(f.readUInt16BE(ip + 4)).toBe(f.length - udp);
    g.writeUInt16BE(0, udp + 6);
    expect(f.readUInt16BE(udp + 6)).toBe(udpChecksumIpv6(g, udp, f.length - udp, ip + 8, ip + 24));
  }
  expect(f.readUInt16BE(udp)).toBe(53);
  expect(f.readUInt16BE(udp + 4)).toBe(f.length - udp);
  return dnsPacket.decode(f.subarray(udp + 8)) as dnsPacket.DecodedPacket & { rcode: string };
}

describe('DNS responder stage in the dataplane', () => {
  it('answers an IPv4 query in place back to the device; nothing crosses the underlay', async () => {
    const { dev, net, dp } = await setup();
    ask(dev, query('tasks.web', 'A', { id: 31 }));
    const [f] = await dev.waitFor(1, 2000);
    const r = reply(f);
    expect(r.id).toBe(31);
    expect((r.answers ?? []).map((a) => (a as { data: string }).data).sort()).toEqual(['198.19.0.11', '198.19.0.12']);
    expect(f.readUInt16BE(14 + 20 + 2)).toBe(40000);
    expect(net.stats.sent).toBe(0);
    expect(dp.stats().inside.stageReplies).toBe(1);
  });

  it('answers IPv6 queries (AAAA, NODATA) with a valid UDP checksum', async () => {
    const { dev } = await setup();
    ask(dev, query('db', 'AAAA'), true);
    ask(dev, query('v4only', 'AAAA', { edns: 1232 }), true);
    const fs = await dev.waitFor(2, 2000);
    expect((reply(fs[0], true).answers ?? []).map((a) => (a as { data: string }).data)).toEqual(['2001:db8::21']);
    const nodata = reply(fs[1], true);
    expect(nodata.rcode).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
  });

  it('forwards other names upstream and answers when the reply comes back (TAKEN, then toDevice)', async () => {
    const { dev, dp, responder } = await setup({ forward: true });
    ask(dev, query('example.test', 'A', { id: 77 }));
    const [f] = await dev.waitFor(1, 3000);
    const r = reply(f);
    expect(r.id).toBe(77);
    expect((r.answers![0] as { data: string }).data).toBe('198.19.7.7');
    expect(dp.stats().inside.stageTaken).toBe(1);
    expect(responder.heldCount).toBe(0);
  });

  it('an upstream that never answers: SERVFAIL to the endpoint; over maxHeld SERVFAIL at once; removing the stage releases held slots', async () => {
    const { dev, dp, responder, counters } = await setup({ forward: true, maxHeld: 2 });
    const pool = dp.pool;
    ask(dev, query('slow1.test', 'A', { id: 1 }), false, 40001);
    ask(dev, query('slow2.test', 'A', { id: 2 }), false, 40002);
    ask(dev, query('slow3.test', 'A', { id: 3 }), false, 40003);
    const [first] = await dev.waitFor(1, 2000);
    expect(reply(first).rcode).toBe('SERVFAIL');
    expect(reply(first).id).toBe(3);
    expect(counters.get('responder_held')).toBe(1);
    expect(responder.heldCount).toBe(2);
    const fs = await dev.waitFor(3, 3000);
    expect(fs.slice(1).map((f) => reply(f).rcode)).toEqual(['SERVFAIL', 'SERVFAIL']);
    expect(counters.get('forward_timeouts')).toBe(2);
    // Held slots go back to the pool when the stage leaves.
    ask(dev, query('slow4.test', 'A'));
    for (let i = 0; i < 50 && responder.heldCount === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(responder.heldCount).toBe(1);
    const before = pool.available;
    dp.removeStage(42, 'dns');
    expect(responder.heldCount).toBe(0);
    expect(pool.available).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(dev.received).toHaveLength(3); // the late SERVFAIL for slow4 was not written
  });

  it('drops malformed frames to the resolver and DNS responses under its own reasons; other traffic passes', async () => {
    const { dev, dp } = await setup();
    const bad = buildUdpFrame({ srcMac: EP_MAC, dstMac: RESOLVER_MAC, src: '198.19.0.1', dst: R4, srcPort: 1, dstPort: 53, payload: query('web', 'A') });
    bad.writeUInt16BE(4000, 14 + 20 + 4); // UDP length beyond the packet
    dev.inject(bad);
    const resp = query('web', 'A');
    resp[2] |= 0x80;
    ask(dev, resp);
    // To another address: not ours, on to forwarding (an unknown MAC, an empty flood list), never answered.
    dev.inject(buildUdpFrame({ srcMac: EP_MAC, dstMac: RESOLVER_MAC, src: '198.19.0.1', dst: '198.19.0.54', srcPort: 1, dstPort: 53, payload: query('web', 'A') }));
    const passed = () => dp.stats().drops.no_fdb_entry + dp.stats().drops.no_flood_vtep;
    for (let i = 0; i < 100 && passed() < 1; i++) await new Promise((r) => setTimeout(r, 10));
    const s = dp.stats();
    expect(s.stages.dns).toEqual({ malformed: 1, not_a_query: 1, tcp_absorbed: 0, superseded: 0 });
    expect(passed()).toBe(1);
    expect(dev.received).toHaveLength(0);
  });
});

/** An Ethernet/IPv4/TCP frame from the endpoint to the resolver's port 53. */
function tcpFrame(o: { seq: number; ack: number; flags: number; payload?: Uint8Array; window?: number }): Buffer {
  const payload = o.payload ?? new Uint8Array(0);
  const f = buildUdpFrame({ srcMac: EP_MAC, dstMac: RESOLVER_MAC, src: '198.19.0.1', dst: R4, srcPort: 1, dstPort: 1, payload: new Uint8Array(12 + payload.length) });
  f[14 + 9] = 6;
  f.writeUInt16BE(0, 14 + 10);
  f.writeUInt16BE(internetChecksum(f, 14, 20), 14 + 10);
  const t = 34;
  f.writeUInt16BE(41000, t);
  f.writeUInt16BE(53, t + 2);
  f.writeUInt32BE(o.seq, t + 4);
  f.writeUInt32BE(o.ack, t + 8);
  f[t + 12] = 5 << 4;
  f[t + 13] = o.flags;
  f.writeUInt16BE(o.window ?? 65535, t + 14);
  f.writeUInt16BE(0, t + 16);
  f.writeUInt16BE(0, t + 18);
  f.set(payload, t + 20);
  f.writeUInt16BE(internetChecksum(f, t, 20 + payload.length, ipv4PseudoHeaderSum(f.readUInt32BE(26), f.readUInt32BE(30), 6, 20 + payload.length)), t + 16);
  return f;
}

function tcpOk(f: Buffer): { seq: number; ack: number; flags: number; data: Buffer; mss?: number } {
  expect(internetChecksum(f, 14, 20)).toBe(0);
  const len = f.readUInt16BE(16) - 20;
  expect(internetChecksum(f, 34, len, ipv4PseudoHeaderSum(f.readUInt32BE(26), f.readUInt32BE(30), 6, len))).toBe(0);
  expect(f.readUInt16BE(34)).toBe(53);
  expect(f.readUInt16BE(36)).toBe(41000);
  const hl = (f[34 + 12] >> 4) * 4;
  return { seq: f.readUInt32BE(38), ack: f.readUInt32BE(42), flags: f[47], data: f.subarray(34 + hl, 34 + len), mss: hl === 24 ? f.readUInt16BE(34 + 22) : undefined };
}

describe('DNS responder stage over TCP', () => {
  it('SYN → SYN-ACK with MSS; a whole query → the whole answer in MSS segments with FIN; FIN → ACK', async () => {
    const { dev } = await setup();
    dev.inject(tcpFrame({ seq: 1000, ack: 0, flags: 0x02 }));
    const [synack] = await dev.waitFor(1, 2000);
    const sa = tcpOk(synack);
    expect(sa.flags).toBe(0x12);
    expect(sa.ack).toBe(1001);
    expect(sa.mss).toBe(1450 - 40);
    const q = query('all.tasks.big', 'A');
    const framed = Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]);
    dev.inject(tcpFrame({ seq: 1001, ack: sa.seq + 1, flags: 0x18, payload: framed }));
    const all = await dev.waitFor(5, 2000);
    const segs = all.slice(1).map(tcpOk).sort((a, b) => a.seq - b.seq);
    expect(segs.map((s) => s.seq - (sa.seq + 1))).toEqual([0, 1410, 2820, 4230]);
    expect(segs.every((s) => s.ack === 1001 + framed.length)).toBe(true);
    expect(segs.map((s) => s.flags & 0x01)).toEqual([0, 0, 0, 1]);
    const stream = Buffer.concat(segs.map((s) => s.data));
    expect(stream.readUInt16BE(0)).toBe(stream.length - 2);
    const r = dnsPacket.decode(stream.subarray(2));
    expect(r.flag_tc).toBe(false);
    expect(r.answers).toHaveLength(300);
    // The client closes: its FIN is ACKed.
    dev.inject(tcpFrame({ seq: 1001 + framed.length, ack: sa.seq + 1 + stream.length + 1, flags: 0x11 }));
    const [, , , , , fin] = await dev.waitFor(6, 2000);
    const f = tcpOk(fin);
    expect(f.flags).toBe(0x10);
    expect(f.ack).toBe(1001 + framed.length + 1);
  });

  it('absorbs what it cannot answer (a part of a query on no connection it opened, a bare ACK), counted', async () => {
    const { dev, dp, counters } = await setup();
    const q = query('web', 'A');
    dev.inject(tcpFrame({ seq: 5, ack: 7, flags: 0x18, payload: Buffer.from([0, q.length]) }));
    dev.inject(tcpFrame({ seq: 7, ack: 7, flags: 0x10 }));
    for (let i = 0; i < 100 && (dp.stats().stages.dns?.tcp_absorbed ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(dp.stats().stages.dns.tcp_absorbed).toBe(2);
    expect(counters.get('tcp_reassembly_out_of_order')).toBe(1);
    expect(dev.received).toHaveLength(0);
  });
});
