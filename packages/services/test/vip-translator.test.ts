import { afterEach, describe, expect, it } from 'vitest';
import { createDataplane, type Dataplane } from '@overlay/dataplane';
import { buildArpRequest, createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';
import { ServiceVips, VipConfigError, VipTranslator, type VipBackend, type VipSpec } from '../src/vip/index.js';
import { ST_TCP_CLOSING, ST_TCP_ESTABLISHED, ST_TCP_SYN, ST_UDP_REPLIED } from '../src/vip/conntrack.js';
import { checksumProblems, fragmentIpv4, ipv4Frame, parseIpv4Frame, reassembleIpv4 } from './vip-frames.js';

const VNI = 42;
const U = (n: number) => `198.18.0.${n}`;
const MAC = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const IP = (n: number) => `198.19.0.${n}`;
const VIP = '198.19.255.1';
const VIP_MAC = '0e:00:c6:13:ff:01';
const CLIENT = { ip: IP(1), mac: MAC(1) };
const SYN = 0x02, ACK = 0x10, PSH = 0x08, FIN = 0x01, RST = 0x04;

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

interface Bed {
  net: Testnet;
  client: { dp: Dataplane; dev: MemoryDevice };
  backends: { dp: Dataplane; dev: MemoryDevice; ip: string; mac: string }[];
  vips: ServiceVips;
  t: VipTranslator;
  clock: { now: number };
  spec: (states?: VipBackend['state'][], extra?: Partial<VipSpec>) => VipSpec;
}

/** Host 1 is the client with the translator; hosts 2..n+1 run one backend each. Fake clock, manual ticks. */
function bed(n = 3, o: { capacity?: number; drainMs?: number } = {}): Bed {
  const net = createTestnet();
  const host = (i: number) => {
    const dev = createMemoryDevice({ name: `d${i}` });
    const dp = createDataplane({ transport: net.transport(U(i)), networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop' }] });
    dp.start();
    open.push(dp);
    return { dp, dev };
  };
  const client = host(1);
  const backends = Array.from({ length: n }, (_, k) => ({ ...host(k + 2), ip: IP(k + 2), mac: MAC(k + 2) }));
  for (const b of backends) {
    client.dp.setFdb(VNI, b.mac, { address: U(backends.indexOf(b) + 2) });
    b.dp.setFdb(VNI, CLIENT.mac, { address: U(1) });
  }
  const clock = { now: 1_000 };
  const vips = new ServiceVips(client.dp, { capacity: o.capacity ?? 1024, drainMs: o.drainMs ?? 30_000, clock: () => clock.now, timers: false, timeouts: { tcpEstablishedMs: 60_000 } });
  const spec = (states: VipBackend['state'][] = backends.map(() => 'healthy'), extra: Partial<VipSpec> = {}): VipSpec => ({
    vip: VIP, ports: [80, 53], ...extra,
    backends: backends.map((b, k) => ({ id: `web.${k}`, ip: b.ip, mac: b.mac, state: states[k] })),
  });
  vips.setVip(VNI, spec());
  return { net, client, backends, vips, t: vips.translator(VNI)!, clock, spec };
}

const toVip = (o: Partial<Parameters<typeof ipv4Frame>[0]> = {}) => ipv4Frame({ dstMac: VIP_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP, proto: 'tcp', ...o });

/** Which backend got what since the last call (and clears). */
function arrivals(b: Bed) {
  return b.backends.map((x) => x.dev.received.splice(0).map(parseIpv4Frame));
}

describe('VIP translator in an in-memory overlay', () => {
  it('answers ARP for the VIP with the VIP MAC; nothing crosses the underlay', async () => {
    const b = bed();
    b.client.dev.inject(buildArpRequest({ srcMac: CLIENT.mac, srcIp: CLIENT.ip, targetIp: VIP }));
    await b.net.idle();
    expect(b.client.dev.received).toHaveLength(1);
    const r = b.client.dev.received[0];
    expect(r.readUInt16BE(20)).toBe(2);
    expect([...r.subarray(22, 28)].map((x) => x.toString(16).padStart(2, '0')).join(':')).toBe(VIP_MAC);
    expect(b.net.stats.sent).toBe(0);
    expect(b.t.stats().counters.arp_answered).toBe(1);
  });

  it('TCP through the VIP: SYN rewritten to one backend, SYN-ACK back from the VIP, the rest of the flow to the same backend; checksums equal a full recomputation', async () => {
    const b = bed();
    b.client.dev.inject(toVip({ sport: 40001, flags: SYN, seq: 100 }));
    await b.net.idle();
    const got = arrivals(b);
    const k = got.findIndex((g) => g.length === 1);
    expect(got.flat()).toHaveLength(1);
    const syn = b.backends[k].dev;
    const s = got[k][0];
    expect([s.dst, s.dstMac, s.src, s.srcMac, s.sport, s.dport, s.flags]).toEqual([b.backends[k].ip, b.backends[k].mac, CLIENT.ip, CLIENT.mac, 40001, 80, SYN]);
    const e = b.t.conntrack.find(6, 0xc6130001 | 0, 0xc613ff01 | 0, 40001, 80);
    expect(b.t.conntrack.state[e]).toBe(ST_TCP_SYN);

    syn.inject(ipv4Frame({ dstMac: CLIENT.mac, srcMac: b.backends[k].mac, src: b.backends[k].ip, dst: CLIENT.ip, proto: 'tcp', sport: 80, dport: 40001, flags: SYN | ACK, seq: 5000, ack: 101 }));
    await b.net.idle();
    const back = b.client.dev.received.splice(0);
    expect(back).toHaveLength(1);
    const sa = parseIpv4Frame(back[0]);
    expect([sa.src, sa.srcMac, sa.dst, sa.dstMac, sa.sport, sa.dport, sa.flags]).toEqual([VIP, VIP_MAC, CLIENT.ip, CLIENT.mac, 80, 40001, SYN | ACK]);
    expect(checksumProblems(back[0])).toEqual([]);
    expect(b.t.conntrack.state[e]).toBe(ST_TCP_ESTABLISHED);

    for (let i = 0; i < 20; i++) b.client.dev.inject(toVip({ sport: 40001, flags: ACK | PSH, seq: 101 + i * 7, ack: 5001, payload: Buffer.from(`data ${i}`.padEnd(7 + (i % 3))) }));
    await b.net.idle();
    const rest = arrivals(b);
    expect(rest[k]).toHaveLength(20);
    expect(rest.flat()).toHaveLength(20);
    for (const f of b.backends[k].dev.received) expect(checksumProblems(f)).toEqual([]);
    expect(b.t.stats().counters).toMatchObject({ translated_inside: 21, translated_outside: 1 });
  });

  it('every rewritten frame has valid checksums: TCP, UDP (with and without a checksum), ICMP echo, odd payload lengths', async () => {
    const b = bed();
    const frames = [
      ...Array.from({ length: 40 }, (_, i) => toVip({ sport: 30000 + i, flags: i % 2 ? SYN : ACK, seq: i * 0x10001 * 977, payload: new Uint8Array(i).fill(i * 37) })),
      ...Array.from({ length: 40 }, (_, i) => toVip({ proto: 'udp', sport: 20000 + i, dport: 53, payload: new Uint8Array(i).fill(255 - i), noUdpChecksum: i % 5 === 0 })),
      ...Array.from({ length: 10 }, (_, i) => toVip({ proto: 'icmp', id: 7 + i, payload: new Uint8Array(i * 3) })),
    ];
    for (const f of frames) b.client.dev.inject(f);
    await b.net.idle();
    const all = b.backends.flatMap((x) => x.dev.received);
    expect(all).toHaveLength(frames.length);
    for (const f of all) {
      expect(checksumProblems(f)).toEqual([]);
      expect(parseIpv4Frame(f).dst).not.toBe(VIP);
    }
    expect(all.filter((f) => f.readUInt16BE(14 + 20 + 6) === 0 && f[14 + 9] === 17)).toHaveLength(8); // no checksum stays none
    // Replies to UDP come back from the VIP and mark the flow replied.
    const u = all.map(parseIpv4Frame).find((p) => p.proto === 17)!;
    const owner = b.backends.find((x) => x.ip === u.dst)!;
    owner.dev.inject(ipv4Frame({ dstMac: CLIENT.mac, srcMac: owner.mac, src: owner.ip, dst: CLIENT.ip, proto: 'udp', sport: 53, dport: u.sport, payload: Buffer.from('answer') }));
    await b.net.idle();
    const r = b.client.dev.received.splice(0);
    expect(r.map(parseIpv4Frame).map((p) => [p.src, p.srcMac, p.dport])).toEqual([[VIP, VIP_MAC, u.sport]]);
    expect(checksumProblems(r[0])).toEqual([]);
    expect(b.t.conntrack.state[b.t.conntrack.find(17, 0xc6130001 | 0, 0xc613ff01 | 0, u.sport, 53)]).toBe(ST_UDP_REPLIED);
  });

  it('spreads flows over the healthy backends and keeps each flow on its backend', async () => {
    const b = bed(3);
    for (let round = 0; round < 2; round++) for (let p = 0; p < 300; p++) b.client.dev.inject(toVip({ sport: 10000 + p, flags: round ? ACK : SYN }));
    await b.net.idle();
    const got = arrivals(b);
    for (const g of got) expect(g.length).toBeGreaterThan(120); // 600 / 3 = 200 each, give or take
    for (const g of got) for (const f of g) expect(g.filter((x) => x.sport === f.sport)).toHaveLength(2);
  });

  it('drops what it cannot translate, each under its reason: closed port, no healthy backend, other protocols, fragments, truncated', async () => {
    const b = bed(2);
    b.client.dev.inject(toVip({ dport: 22 }));
    const frag = toVip({ proto: 'udp', dport: 53 });
    frag.writeUInt16BE(0x2000 | 100, 14 + 6); // a later fragment (offset 800) of a datagram whose first was never seen
    b.client.dev.inject(frag);
    const gre = toVip({ proto: 'udp', dport: 53 });
    gre[14 + 9] = 47;
    b.client.dev.inject(gre);
    const short = toVip({ proto: 'tcp' });
    short.writeUInt16BE(30, 16); // total length shorter than IP + TCP headers
    b.client.dev.inject(short);
    await b.net.idle();
    b.vips.setVip(VNI, b.spec(['down', 'draining']));
    b.client.dev.inject(toVip({ sport: 999 }));
    await b.net.idle();
    expect(b.client.dp.stats().stages.vip).toMatchObject({ port_closed: 1, fragment: 1, unsupported_protocol: 1, malformed: 1, no_backend: 1 });
    expect(b.t.stats().drops).toEqual(b.client.dp.stats().stages.vip);
    expect(arrivals(b).flat()).toHaveLength(0);
  });

  it('fragmented UDP and ICMP: the first fragment picks the flow, the later ones follow it, both ways; the datagram reassembles with valid checksums', async () => {
    const b = bed(3);
    const payload = Uint8Array.from({ length: 3001 }, (_, i) => (i * 7) & 255);
    for (const [proto, sport] of [['udp', 41000], ['udp', 41001], ['icmp', 77]] as const) {
      const whole = toVip({ proto, sport, dport: 53, id: sport, payload });
      whole.writeUInt16BE(sport, 14 + 4); // IP identification
      const frags = fragmentIpv4(whole, 1200);
      expect(frags).toHaveLength(3);
      // Out of order after the first: the first must come first (it carries the ports).
      for (const f of [frags[0], frags[2], frags[1]]) b.client.dev.inject(f);
      await b.net.idle();
      const got = b.backends.map((x) => x.dev.received.splice(0));
      const k = got.findIndex((g) => g.length > 0);
      expect(got.filter((g) => g.length > 0), `${proto} ${sport}: one backend gets all`).toHaveLength(1);
      expect(got[k]).toHaveLength(3);
      for (const f of got[k]) expect(parseIpv4Frame(f)).toMatchObject({ dst: b.backends[k].ip, dstMac: b.backends[k].mac, src: CLIENT.ip });
      const back = reassembleIpv4(got[k]);
      expect(checksumProblems(back)).toEqual([]);
      expect(Buffer.from(parseIpv4Frame(back).payload)).toEqual(Buffer.from(payload));

      // The answer, fragmented by the backend: every fragment leaves as the VIP.
      const reply = ipv4Frame({ proto, srcMac: b.backends[k].mac, dstMac: CLIENT.mac, src: b.backends[k].ip, dst: CLIENT.ip, sport: 53, dport: sport, icmpType: 0, id: sport, payload });
      reply.writeUInt16BE(sport + 1, 14 + 4);
      for (const f of fragmentIpv4(reply, 1200)) b.backends[k].dev.inject(f);
      await b.net.idle();
      const out = b.client.dev.received.splice(0);
      expect(out).toHaveLength(3);
      for (const f of out) expect(parseIpv4Frame(f)).toMatchObject({ src: VIP, srcMac: VIP_MAC, dst: CLIENT.ip });
      const answer = reassembleIpv4(out);
      expect(checksumProblems(answer)).toEqual([]);
      expect(Buffer.from(parseIpv4Frame(answer).payload)).toEqual(Buffer.from(payload));
    }
    expect(b.t.stats().counters.fragments_translated).toBe(12);
    // A later fragment of a datagram whose first fragment went elsewhere (or never came): dropped, counted.
    const stray = fragmentIpv4(toVip({ proto: 'udp', sport: 42000, dport: 53, payload }), 1200)[1];
    b.client.dev.inject(stray);
    await b.net.idle();
    expect(b.client.dp.stats().stages.vip).toMatchObject({ fragment: 1 });
    expect(arrivals(b).flat()).toHaveLength(0);
  });

  it('a backend turned down gets no new flows, and its TCP flows get a RST the client accepts (seq = backend next, ack = client next)', async () => {
    const b = bed(3);
    for (let p = 0; p < 60; p++) b.client.dev.inject(toVip({ sport: 20000 + p, flags: SYN, seq: 1000 * p }));
    await b.net.idle();
    const got = arrivals(b);
    const victim = 1;
    const mine = got[victim];
    expect(mine.length).toBeGreaterThan(5);
    // The victim answers its SYNs; the flows are established.
    for (const s of mine) b.backends[victim].dev.inject(ipv4Frame({ dstMac: CLIENT.mac, srcMac: b.backends[victim].mac, src: b.backends[victim].ip, dst: CLIENT.ip, proto: 'tcp', sport: 80, dport: s.sport, flags: SYN | ACK, seq: 7000 + s.sport, ack: s.seq + 1 }));
    await b.net.idle();
    b.client.dev.received.splice(0);

    b.vips.setVip(VNI, b.spec(['healthy', 'down', 'healthy']));
    const rsts = b.client.dev.received.splice(0).map(parseIpv4Frame);
    expect(rsts).toHaveLength(mine.length);
    for (const r of rsts) {
      const s = mine.find((m) => m.sport === r.dport)!;
      expect([r.src, r.srcMac, r.dst, r.dstMac, r.sport, r.flags, r.seq, r.ack]).toEqual([VIP, VIP_MAC, CLIENT.ip, CLIENT.mac, 80, RST | ACK, 7000 + s.sport + 1, s.seq + 1]);
    }
    for (const f of b.client.dev.received) expect(checksumProblems(f)).toEqual([]);
    expect(b.t.stats().counters).toMatchObject({ rst_sent: mine.length, flows_reset: mine.length });
    // New flows (and retransmissions of the reset ones) avoid it.
    for (let p = 0; p < 100; p++) b.client.dev.inject(toVip({ sport: 20000 + p, flags: SYN }));
    await b.net.idle();
    const after = arrivals(b);
    expect(after[victim]).toHaveLength(0);
    expect(after[0].length + after[2].length).toBe(100);
    // Flows of the others did not move (Maglev: minimal disruption).
    for (const k of [0, 2]) for (const s of got[k]) expect(after[k].some((f) => f.sport === s.sport)).toBe(true);
    expect(b.client.dp.pool.available).toBe(b.client.dp.pool.count);
  });

  it('a SYN-SENT flow of a removed backend gets RST+ACK acknowledging the SYN; removing the VIP resets the rest', async () => {
    const b = bed(2);
    for (let p = 0; p < 20; p++) b.client.dev.inject(toVip({ sport: 21000 + p, flags: SYN, seq: 555 }));
    await b.net.idle();
    const got = arrivals(b);
    b.vips.setVip(VNI, { ...b.spec(), backends: b.spec().backends.slice(1) }); // backend 0 removed
    const rsts = b.client.dev.received.splice(0).map(parseIpv4Frame);
    expect(rsts.map((r) => [r.flags, r.seq, r.ack])).toEqual(got[0].map(() => [RST | ACK, 0, 556]));
    b.vips.removeVip(VNI, VIP);
    expect(b.client.dev.received.splice(0)).toHaveLength(got[1].length);
    expect(b.client.dp.stages(VNI)).not.toContain('vip');
    expect(b.vips.stats()).toEqual([]);
  });

  it('draining: no new flows, existing ones kept until the drain timeout, then reset', async () => {
    const b = bed(2, { drainMs: 30_000 });
    for (let p = 0; p < 40; p++) b.client.dev.inject(toVip({ sport: 22000 + p, flags: SYN }));
    await b.net.idle();
    const got = arrivals(b);
    b.vips.setVip(VNI, b.spec(['draining', 'healthy']));
    expect(b.client.dev.received).toHaveLength(0);
    b.clock.now += 29_000;
    b.t.tick();
    for (let p = 0; p < 40; p++) b.client.dev.inject(toVip({ sport: 22000 + p, flags: ACK }));
    for (let p = 0; p < 40; p++) b.client.dev.inject(toVip({ sport: 23000 + p, flags: SYN }));
    await b.net.idle();
    const mid = arrivals(b);
    expect(mid[0].map((f) => f.sport).sort()).toEqual(got[0].map((f) => f.sport).sort()); // old flows only
    expect(mid[1]).toHaveLength(got[1].length + 40);
    // A repeated draining record does not restart the timer.
    b.vips.setVip(VNI, b.spec(['draining', 'healthy']));
    b.clock.now += 1_500;
    b.t.tick();
    expect(b.client.dev.received.splice(0).map(parseIpv4Frame).every((r) => r.flags === (RST | ACK))).toBe(true);
    expect(b.t.stats().counters).toMatchObject({ drains_expired: 1, rst_sent: got[0].length });
  });

  it('a flow whose entry expired still reaches its backend (idle connections survive)', async () => {
    const b = bed(3);
    for (let p = 0; p < 30; p++) b.client.dev.inject(toVip({ sport: 24000 + p, flags: ACK }));
    await b.net.idle();
    const first = arrivals(b).map((g) => g.map((f) => f.sport).sort());
    expect(b.t.stats().flows).toBe(30);
    b.clock.now += 61_000 + 250;
    b.t.tick();
    expect(b.t.stats().flows).toBe(0);
    expect(b.t.stats().conntrack.expired).toBe(30);
    for (let p = 0; p < 30; p++) b.client.dev.inject(toVip({ sport: 24000 + p, flags: ACK }));
    await b.net.idle();
    expect(arrivals(b).map((g) => g.map((f) => f.sport).sort())).toEqual(first);
  });

  it('a full table refuses new flows (counted) and established flows keep flowing', async () => {
    const b = bed(2, { capacity: 16 });
    for (let p = 0; p < 16; p++) b.client.dev.inject(toVip({ sport: 25000 + p, flags: ACK }));
    await b.net.idle();
    expect(arrivals(b).flat()).toHaveLength(16);
    for (let p = 0; p < 2000; p++) b.client.dev.inject(toVip({ sport: 30000 + p, flags: SYN }));
    for (let p = 0; p < 16; p++) b.client.dev.inject(toVip({ sport: 25000 + p, flags: ACK }));
    await b.net.idle();
    expect(arrivals(b).flat().map((f) => f.sport).sort()).toEqual(Array.from({ length: 16 }, (_, p) => 25000 + p));
    expect(b.client.dp.stats().stages.vip.table_full).toBe(2000);
    expect(b.t.stats().conntrack.refused_full).toBe(2000);
  });

  it('two VIPs on one backend port: a second flow with the same reply key is refused (tuple_clash), not mixed up', async () => {
    const b = bed(1);
    const VIP2 = '198.19.255.2';
    b.vips.setVip(VNI, { vip: VIP2, ports: [80], backends: [{ id: 'web.0', ip: b.backends[0].ip, mac: b.backends[0].mac, state: 'healthy' }] });
    b.client.dev.inject(toVip({ sport: 26000, flags: SYN }));
    b.client.dev.inject(ipv4Frame({ dstMac: '0e:00:c6:13:ff:02', srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP2, proto: 'tcp', sport: 26000, dport: 80, flags: SYN }));
    b.client.dev.inject(ipv4Frame({ dstMac: '0e:00:c6:13:ff:02', srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP2, proto: 'tcp', sport: 26001, dport: 80, flags: SYN }));
    await b.net.idle();
    expect(arrivals(b)[0].map((f) => f.sport)).toEqual([26000, 26001]);
    expect(b.client.dp.stats().stages.vip.tuple_clash).toBe(1);
    expect(b.t.vips().sort()).toEqual([VIP, VIP2]);
  });

  it('a closing flow whose ports are reused by a new SYN gets a fresh pick; FIN and RST close flows', async () => {
    const b = bed(3);
    const ct = b.t.conntrack;
    const key = () => ct.find(6, 0xc6130001 | 0, 0xc613ff01 | 0, 27000, 80);
    b.client.dev.inject(toVip({ sport: 27000, flags: SYN }));
    await b.net.idle();
    b.client.dev.inject(toVip({ sport: 27000, flags: FIN | ACK }));
    await b.net.idle();
    expect(ct.state[key()]).toBe(ST_TCP_CLOSING);
    b.client.dev.inject(toVip({ sport: 27000, flags: SYN }));
    await b.net.idle();
    expect(ct.state[key()]).toBe(ST_TCP_SYN);
    expect(b.t.stats().conntrack).toMatchObject({ opened: 2, removed: 1 });
    expect(arrivals(b).flat()).toHaveLength(3);
  });

  it('a direct connection to a backend from a tracked flow\'s client port supersedes the flow: its replies pass untranslated', async () => {
    const b = bed();
    b.client.dev.inject(toVip({ sport: 40002, flags: SYN, seq: 100 }));
    await b.net.idle();
    const k = arrivals(b).findIndex((g) => g.length === 1);
    const be = b.backends[k];
    // The client's kernel, its VIP socket closed, reuses port 40002 straight to the backend's address.
    b.client.dev.inject(ipv4Frame({ dstMac: be.mac, srcMac: CLIENT.mac, src: CLIENT.ip, dst: be.ip, proto: 'tcp', sport: 40002, dport: 80, flags: SYN, seq: 9000 }));
    await b.net.idle();
    const direct = arrivals(b)[k].map((f) => [f.src, f.dst, f.sport, f.flags]);
    expect(direct).toEqual([[CLIENT.ip, be.ip, 40002, SYN]]);
    expect(b.t.stats().counters.flows_superseded).toBe(1);
    be.dev.inject(ipv4Frame({ dstMac: CLIENT.mac, srcMac: be.mac, src: be.ip, dst: CLIENT.ip, proto: 'tcp', sport: 80, dport: 40002, flags: SYN | ACK, seq: 7000, ack: 9001 }));
    await b.net.idle();
    const back = b.client.dev.received.splice(0).map(parseIpv4Frame);
    expect(back.map((f) => [f.src, f.sport, f.flags])).toEqual([[be.ip, 80, SYN | ACK]]); // from the backend, not the VIP
    expect(b.t.stats().counters.translated_outside).toBe(0);
    // A non-SYN to the backend, or a SYN from another port, touches nothing.
    b.client.dev.inject(toVip({ sport: 40003, flags: SYN, seq: 1 }));
    await b.net.idle();
    const k2 = arrivals(b).findIndex((g) => g.length === 1);
    b.client.dev.inject(ipv4Frame({ dstMac: b.backends[k2].mac, srcMac: CLIENT.mac, src: CLIENT.ip, dst: b.backends[k2].ip, proto: 'tcp', sport: 40003, dport: 80, flags: ACK, seq: 5 }));
    await b.net.idle();
    expect(b.t.stats().counters.flows_superseded).toBe(1);
  });

  it('refuses bad specs with VipConfigError naming the field, and dnsrr removes the VIP', () => {
    const b = bed(1);
    const bad: [Partial<VipSpec>, string][] = [
      [{ vip: '300.1.1.1' }, 'vip'],
      [{ ports: [0] }, 'ports'],
      [{ mac: 'zz' }, 'mac'],
      [{ backends: [{ id: 'a', ip: IP(9), mac: MAC(9), state: 'healthy' }, { id: 'a', ip: IP(8), mac: MAC(8), state: 'healthy' }] }, 'backends[1].id'],
      [{ backends: [{ id: 'a', ip: 'x', mac: MAC(9), state: 'healthy' }] }, 'backends[0].ip'],
      [{ backends: [{ id: 'a', ip: IP(9), mac: MAC(9), state: 'sick' as 'down' }] }, 'backends[0].state'],
    ];
    for (const [patch, field] of bad) {
      let err: unknown;
      try {
        b.vips.setVip(VNI, { ...b.spec(), ...patch });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(VipConfigError);
      expect(err).toMatchObject({ code: 'OVL_ERR_VIP_CONFIG', field });
    }
    expect(b.t.vips()).toEqual([VIP]);
    b.vips.setVip(VNI, { ...b.spec(), endpointMode: 'dnsrr' });
    expect(b.client.dp.stages(VNI)).not.toContain('vip');
  });
});
