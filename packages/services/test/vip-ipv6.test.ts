import { afterEach, describe, expect, it } from 'vitest';
import { createDataplane, formatIpAddress, type Dataplane } from '@overlay/dataplane';
import { buildNeighborSolicitation, createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';
import { ServiceVips, VipConfigError, type VipBackend, type VipTranslator } from '../src/vip/index.js';
import { ST_TCP_ESTABLISHED } from '../src/vip/conntrack.js';
import { frame6, parse6, type F6 } from './vip-frames.js';

// IPv6 VIPs: ND answered for the VIP, TCP/UDP/ICMPv6 echo translated both ways with the v6
// pseudo-header checksums updated incrementally (checked against a full recomputation), RSTs,
// hairpin, and an IPv4 VIP beside an IPv6 one in one translator.
const VNI = 46;
const U = (n: number) => `198.18.0.${n}`;
const MAC = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const IP6 = (n: number) => `2001:db8:46::${n.toString(16)}`;
const VIP6 = '2001:db8:46::ffff:1';
const VIP6_MAC = '0e:06:ff:ff:00:01';
const CLIENT = { ip: IP6(1), mac: MAC(1) };
const SYN = 0x02, ACK = 0x10, PSH = 0x08, RST = 0x04;

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function bed(n = 3): { net: Testnet; client: { dp: Dataplane; dev: MemoryDevice }; backends: { dev: MemoryDevice; ip: string; mac: string }[]; vips: ServiceVips; t: VipTranslator; spec: (states?: VipBackend['state'][]) => { vip: string; ports: number[]; backends: VipBackend[] } } {
  const net = createTestnet();
  const host = (i: number) => {
    const dev = createMemoryDevice({ name: `v6d${i}` });
    const dp = createDataplane({ transport: net.transport(U(i)), networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop' }] });
    dp.start();
    open.push(dp);
    return { dp, dev };
  };
  const client = host(1);
  const backends = Array.from({ length: n }, (_, k) => ({ ...host(k + 2), ip: IP6(k + 2), mac: MAC(k + 2) }));
  backends.forEach((b, k) => {
    client.dp.setFdb(VNI, b.mac, { address: U(k + 2) });
    b.dp.setFdb(VNI, CLIENT.mac, { address: U(1) });
  });
  const vips = new ServiceVips(client.dp, { capacity: 1024, timers: false });
  const spec = (states: VipBackend['state'][] = backends.map(() => 'healthy')) => ({
    vip: VIP6, ports: [80, 53], backends: backends.map((b, k) => ({ id: `web.${k}`, ip: b.ip, mac: b.mac, state: states[k] })),
  });
  vips.setVip(VNI, spec());
  return { net, client, backends, vips, t: vips.translator(VNI)!, spec };
}

const toVip = (o: Partial<F6> = {}) => frame6({ dstMac: VIP6_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP6, nh: 6, ...o });

describe('IPv6 VIPs', () => {
  it('answers a Neighbor Solicitation for the VIP with the VIP MAC (0e:06 + its last 4 bytes); nothing crosses the underlay', async () => {
    const b = bed();
    b.client.dev.inject(buildNeighborSolicitation({ srcMac: CLIENT.mac, srcIp: CLIENT.ip, targetIp: VIP6 }));
    b.client.dev.inject(buildNeighborSolicitation({ srcMac: CLIENT.mac, srcIp: CLIENT.ip, targetIp: IP6(0x77) }));
    await b.net.idle();
    expect(b.client.dev.received).toHaveLength(1);
    const r = b.client.dev.received[0];
    expect(r[54]).toBe(136); // NA
    expect([...r.subarray(6, 12)].map((x) => x.toString(16).padStart(2, '0')).join(':')).toBe(VIP6_MAC);
    expect(formatIpAddress(6, r, 22)).toBe(VIP6);
    expect(b.t.stats().counters.nd_answered).toBe(1);
    expect(b.t.vips()).toEqual([VIP6]);
  });

  it('TCP both ways, UDP and ICMPv6 echo: addresses, MACs and checksums right; a backend turned down gets a RST to its client', async () => {
    const b = bed();
    for (let p = 0; p < 30; p++) b.client.dev.inject(toVip({ sport: 41000 + p, flags: SYN, seq: p * 1_000_003, payload: new Uint8Array(p).fill(p) }));
    b.client.dev.inject(toVip({ nh: 17, sport: 5000, dport: 53, payload: Buffer.from('query') }));
    b.client.dev.inject(toVip({ nh: 58, type: 128, id: 9, payload: Buffer.from('ping!') }));
    await b.net.idle();
    const got = b.backends.map((x) => x.dev.received.splice(0).map(parse6));
    expect(got.flat()).toHaveLength(32);
    expect(got.filter((g) => g.length > 0).length).toBeGreaterThanOrEqual(2);
    got.forEach((g, k) => {
      for (const p of g) {
        expect([p.src, p.srcMac, p.dst, p.dstMac]).toEqual([CLIENT.ip, CLIENT.mac, b.backends[k].ip, b.backends[k].mac]);
        expect(p.checksumOk).toBe(true);
      }
    });
    // Replies from the backend that got port 41000's SYN, the UDP query and the echo.
    const k = got.findIndex((g) => g.some((p) => p.sport === 41000));
    const be = b.backends[k];
    be.dev.inject(frame6({ dstMac: CLIENT.mac, srcMac: be.mac, src: be.ip, dst: CLIENT.ip, nh: 6, sport: 80, dport: 41000, flags: SYN | ACK, seq: 9000, ack: 1 }));
    await b.net.idle();
    const back = b.client.dev.received.splice(0).map(parse6);
    expect(back.map((p) => [p.src, p.srcMac, p.dst, p.sport, p.dport, p.flags, p.checksumOk])).toEqual([[VIP6, VIP6_MAC, CLIENT.ip, 80, 41000, SYN | ACK, true]]);
    const ku = got.findIndex((g) => g.some((p) => p.nh === 17));
    const bu = b.backends[ku];
    bu.dev.inject(frame6({ dstMac: CLIENT.mac, srcMac: bu.mac, src: bu.ip, dst: CLIENT.ip, nh: 17, sport: 53, dport: 5000, payload: Buffer.from('answer!') }));
    const ki = got.findIndex((g) => g.some((p) => p.nh === 58));
    const bi = b.backends[ki];
    bi.dev.inject(frame6({ dstMac: CLIENT.mac, srcMac: bi.mac, src: bi.ip, dst: CLIENT.ip, nh: 58, type: 129, id: 9, payload: Buffer.from('ping!') }));
    await b.net.idle();
    const more = b.client.dev.received.splice(0).map(parse6);
    expect(more.map((p) => [p.src, p.nh, p.checksumOk]).sort()).toEqual([[VIP6, 17, true], [VIP6, 58, true]]);
    // A stranger from a backend's address (no flow) passes untouched.
    be.dev.inject(frame6({ dstMac: CLIENT.mac, srcMac: be.mac, src: be.ip, dst: CLIENT.ip, nh: 6, sport: 80, dport: 9, flags: ACK }));
    await b.net.idle();
    expect(b.client.dev.received.splice(0).map(parse6).map((p) => p.src)).toEqual([be.ip]);

    const ct = b.t.v6!.conntrack;
    let e = -1;
    ct.forEach((x) => {
      if (ct.clientPort[x] === 41000) e = x;
    });
    expect(ct.state[e]).toBe(ST_TCP_ESTABLISHED);
    const states = b.backends.map((_, j) => (j === k ? 'down' : 'healthy') as VipBackend['state']);
    b.vips.setVip(VNI, b.spec(states));
    await b.net.idle();
    const rsts = b.client.dev.received.splice(0).map(parse6);
    expect(rsts.length).toBe(got[k].filter((p) => p.nh === 6).length);
    for (const r of rsts) expect([r.src, r.dst, r.flags & RST, r.checksumOk, r.dstMac]).toEqual([VIP6, CLIENT.ip, RST, true, CLIENT.mac]);
    expect(rsts.some((r) => r.dport === 41000)).toBe(true);
  });

  it('drops what it cannot translate by reason; fragments and extension headers; closed ports', async () => {
    const b = bed();
    b.client.dev.inject(toVip({ dport: 443 }));
    b.client.dev.inject(toVip({ nextHeader: 44 }));
    b.client.dev.inject(toVip({ nextHeader: 0 }));
    b.client.dev.inject(toVip({ nh: 58, type: 1 }));
    const short = toVip();
    short.writeUInt16BE(200, 18); // payload length past the frame
    b.client.dev.inject(short);
    await b.net.idle();
    expect(b.backends.flatMap((x) => x.dev.received)).toHaveLength(0);
    expect(b.t.stats().drops).toMatchObject({ port_closed: 1, fragment: 1, unsupported_protocol: 2, malformed: 1 });
  });

  it('hairpin to a local IPv6 backend, and an IPv4 VIP beside the IPv6 one', async () => {
    const b = bed(1);
    const local = { ip: CLIENT.ip, mac: CLIENT.mac };
    b.vips.setVip(VNI, { vip: VIP6, ports: [80], backends: [{ id: 'me', ip: local.ip, mac: local.mac, state: 'healthy', local: true }] });
    b.client.dev.inject(toVip({ sport: 42000, flags: SYN }));
    await b.net.idle();
    const f = b.client.dev.received.splice(0).map(parse6);
    expect(f.map((p) => [p.src, p.dst, p.dstMac, p.checksumOk])).toEqual([[VIP6, CLIENT.ip, CLIENT.mac, true]]);
    b.client.dev.inject(frame6({ dstMac: VIP6_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP6, nh: 6, sport: 80, dport: 42000, flags: SYN | ACK }));
    await b.net.idle();
    const r = b.client.dev.received.splice(0).map(parse6);
    expect(r.map((p) => [p.src, p.dst, p.sport, p.dport, p.checksumOk])).toEqual([[VIP6, CLIENT.ip, 80, 42000, true]]);
    expect(b.net.stats.sent).toBe(0);
    b.vips.setVip(VNI, { vip: '198.19.46.1', backends: [{ id: 'w4', ip: '198.19.46.2', mac: MAC(2), state: 'healthy' }] });
    expect(b.t.vips().sort()).toEqual(['198.19.46.1', VIP6]);
    expect(() => b.vips.setVip(VNI, { vip: VIP6, backends: [{ id: 'x', ip: '198.19.46.3', mac: MAC(3), state: 'healthy' }] })).toThrow(VipConfigError);
    b.vips.removeVip(VNI, VIP6);
    expect(b.t.vips()).toEqual(['198.19.46.1']);
  });
});
