import { describe, expect, it } from 'vitest';
import { BufferPool, createDataplane } from '@overlay/dataplane';
import { CountingDevice, CountingTransport, buildArpRequest, buildNeighborSolicitation, seededRandom } from '@overlay/dataplane/testing';
import { ServiceVips, VIP_DROP_REASONS, type VipBackend } from '../src/vip/index.js';
import { handBatch, tag8021q } from './fuzz-batch.js';
import { frame6, ipv4Frame } from './vip-frames.js';

const VNI = 42;
const VIP = '198.19.255.1';
const VIP_MAC = '0e:00:c6:13:ff:01';
const CLIENT_MAC = '02:00:00:00:00:01';
const BACKENDS = [2, 3, 4].map((n) => ({ id: `b${n}`, ip: `198.19.0.${n}`, mac: `02:00:00:00:00:0${n}` }));
// The IPv6 VIP: the same hosts, and the client's own address as a local (hairpin) backend.
const VIP6 = '2001:db8:42::ff:1';
const VIP6_MAC = '0e:06:00:ff:00:01';
const CLIENT6 = '2001:db8:42::1';
const BACKENDS6 = [2, 3, 4].map((n) => ({ id: `b${n}`, ip: `2001:db8:42::${n}`, mac: `02:00:00:00:00:0${n}` }));

/** Valid frames of every kind the translator handles, in both directions, some 802.1Q-tagged. */
function templates(): { inside: Buffer[]; outside: Buffer[] } {
  const inside: Buffer[] = [];
  for (const flags of [0x02, 0x10, 0x18, 0x11, 0x04, 0x12]) inside.push(ipv4Frame({ dstMac: VIP_MAC, srcMac: CLIENT_MAC, src: '198.19.0.1', dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags, payload: Buffer.alloc(flags & 8 ? 30 : 0) }));
  inside.push(ipv4Frame({ dstMac: VIP_MAC, srcMac: CLIENT_MAC, src: '198.19.0.1', dst: VIP, proto: 'udp', sport: 5353, dport: 53, payload: Buffer.alloc(21) }));
  inside.push(ipv4Frame({ dstMac: VIP_MAC, srcMac: CLIENT_MAC, src: '198.19.0.1', dst: VIP, proto: 'icmp', id: 9 }));
  inside.push(ipv4Frame({ dstMac: '02:00:00:00:00:02', srcMac: CLIENT_MAC, src: '198.19.0.1', dst: '198.19.0.2', proto: 'tcp' })); // not for the VIP
  inside.push(buildArpRequest({ srcMac: CLIENT_MAC, srcIp: '198.19.0.1', targetIp: VIP }));
  inside.push(...inside.slice(0, 4).map(tag8021q));
  const outside: Buffer[] = [];
  for (const b of BACKENDS) {
    for (const flags of [0x12, 0x10, 0x11, 0x04]) outside.push(ipv4Frame({ dstMac: CLIENT_MAC, srcMac: b.mac, src: b.ip, dst: '198.19.0.1', proto: 'tcp', sport: 80, dport: 40000, flags }));
    outside.push(ipv4Frame({ dstMac: CLIENT_MAC, srcMac: b.mac, src: b.ip, dst: '198.19.0.1', proto: 'udp', sport: 53, dport: 5353, payload: Buffer.alloc(9) }));
    outside.push(ipv4Frame({ dstMac: CLIENT_MAC, srcMac: b.mac, src: b.ip, dst: '198.19.0.1', proto: 'icmp', icmpType: 0, id: 9 }));
    // An ICMP error (unreachable) quoting the client's translated segment.
    const cause = ipv4Frame({ dstMac: b.mac, srcMac: CLIENT_MAC, src: '198.19.0.1', dst: b.ip, proto: 'tcp', sport: 40000, dport: 80, flags: 0x02 });
    outside.push(ipv4Frame({ dstMac: CLIENT_MAC, srcMac: b.mac, src: b.ip, dst: '198.19.0.1', proto: 'icmp', icmpType: 3, id: 0, payload: cause.subarray(14, 14 + 28) }));
  }
  outside.push(...outside.slice(0, 3).map(tag8021q));
  const c6 = { dstMac: VIP6_MAC, srcMac: CLIENT_MAC, src: CLIENT6, dst: VIP6 };
  for (const flags of [0x02, 0x10, 0x18, 0x11, 0x04]) inside.push(frame6({ ...c6, nh: 6, sport: 40000, dport: 80, flags, payload: Buffer.alloc(flags & 8 ? 30 : 0) }));
  inside.push(frame6({ ...c6, nh: 17, sport: 5353, dport: 53, payload: Buffer.alloc(21) }));
  inside.push(frame6({ ...c6, nh: 58, type: 128, id: 9 }));
  // The local backend's replies to the VIP (hairpin), and a solicitation for the VIP.
  inside.push(frame6({ ...c6, nh: 6, sport: 80, dport: 40000, flags: 0x12 }));
  inside.push(frame6({ ...c6, nh: 58, type: 129, id: 9 }));
  inside.push(buildNeighborSolicitation({ srcMac: CLIENT_MAC, srcIp: CLIENT6, targetIp: VIP6 }));
  for (const b of BACKENDS6) {
    const r = { dstMac: CLIENT_MAC, srcMac: b.mac, src: b.ip, dst: CLIENT6 };
    for (const flags of [0x12, 0x10, 0x04]) outside.push(frame6({ ...r, nh: 6, sport: 80, dport: 40000, flags }));
    outside.push(frame6({ ...r, nh: 17, sport: 53, dport: 5353, payload: Buffer.alloc(9) }));
    outside.push(frame6({ ...r, nh: 58, type: 129, id: 9 }));
  }
  return { inside, outside };
}

/** A template with 1..4 bytes set at random (mostly in the headers), sometimes truncated or extended, sometimes a new flow (ports). */
function mutate(rnd: () => number, t: Buffer): Buffer {
  let f = Buffer.from(t);
  const r = rnd();
  if (r < 0.5) {
    // Vary the ports so flows are new, the table fills, and lookups miss and hit.
    f.writeUInt16BE(Math.floor(rnd() * 65536), Math.min(f.length - 2, 34));
  }
  if (r > 0.2) {
    const n = 1 + Math.floor(rnd() * 4);
    for (let i = 0; i < n; i++) f[Math.floor(rnd() * Math.min(f.length, rnd() < 0.8 ? 64 : f.length))] = Math.floor(rnd() * 256);
  }
  const s = rnd();
  if (s < 0.1) f = f.subarray(0, Math.floor(rnd() * f.length));
  else if (s < 0.15) f = Buffer.concat([f, Buffer.alloc(Math.floor(rnd() * 1600))]);
  return f;
}

describe('VIP translator on mutated input', () => {
  it('10^5 mutated frames each way (IPv4 and IPv6 VIPs, a hairpin backend): no throw, no stage_failed, no leaked slot, every packet accounted for', () => {
    const rnd = seededRandom(0x5eed);
    const pool = new BufferPool({ count: 256, frameCapacity: 4000 });
    const dev = new CountingDevice(1500);
    const tr = new CountingTransport();
    const dp = createDataplane({ transport: tr, pool, networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop', learning: false }] });
    for (const [k, b] of BACKENDS.entries()) dp.setFdb(VNI, b.mac, { address: `198.18.0.${k + 2}` });
    dp.setFdb(VNI, CLIENT_MAC, { address: '198.18.0.9' });
    dp.start();
    const clock = { now: 0 };
    const vips = new ServiceVips(dp, { capacity: 2048, clock: () => clock.now, timers: false, timeouts: { tcpEstablishedMs: 20_000, udpMs: 5_000 } });
    const spec = (states: VipBackend['state'][]) => ({ vip: VIP, ports: [80, 53], backends: BACKENDS.map((b, k) => ({ ...b, state: states[k] })) });
    const spec6 = (states: VipBackend['state'][]) => ({
      vip: VIP6, ports: [80, 53], backends: [...BACKENDS6.map((b, k) => ({ ...b, state: states[k] })), { id: 'me', ip: CLIENT6, mac: CLIENT_MAC, state: 'healthy' as const, local: true }],
    });
    vips.setVip(VNI, spec(['healthy', 'healthy', 'healthy']));
    vips.setVip(VNI, spec6(['healthy', 'healthy', 'healthy']));
    const t = vips.translator(VNI)!;
    const { inside, outside } = templates();
    const N = 100_000;
    const BATCH = 64;
    const stateCycle: VipBackend['state'][][] = [['healthy', 'healthy', 'healthy'], ['healthy', 'down', 'healthy'], ['draining', 'healthy', 'healthy'], ['down', 'down', 'down'], ['healthy', 'healthy', 'draining']];
    let nIn = 0;
    let nOut = 0;
    for (let i = 0; nIn < N; i++) {
      const ins = Array.from({ length: BATCH }, () => mutate(rnd, inside[Math.floor(rnd() * inside.length)]));
      const outs = Array.from({ length: BATCH }, () => mutate(rnd, outside[Math.floor(rnd() * outside.length)]));
      nIn += handBatch(pool, dev.sink, ins, false, VNI);
      nOut += handBatch(pool, tr.sink, outs, true, VNI);
      clock.now += 40;
      t.tick();
      if (i % 150 === 149) vips.setVip(VNI, spec(stateCycle[(i / 150 + 1) % stateCycle.length | 0]));
      if (i % 150 === 74) vips.setVip(VNI, spec6(stateCycle[(i / 150 + 2) % stateCycle.length | 0]));
      expect(pool.available).toBe(pool.count);
    }
    const s = dp.stats();
    const d = s.drops;
    const vip = s.stages.vip;
    const vipDrops = VIP_DROP_REASONS.reduce((a, r) => a + vip[r], 0);
    expect(d.stage_failed).toBe(0);
    expect(s.inside.frames).toBe(nIn);
    const unicast = s.inside.sent - s.inside.replicas;
    const ts = t.stats();
    expect(ts.drops).toEqual(vip);
    // The device's frames are counted once, in outside.delivered: decapsulated frames, ARP answers and RSTs.
    expect(dev.written).toBe(s.outside.delivered);
    const fromNetwork = s.outside.delivered - s.inside.stageReplies - ts.counters.rst_sent;
    expect(s.outside.datagrams).toBe(nOut);
    // Every frame in: answered (ARP), dropped by the translator under a reason, sent, or dropped by the pipeline;
    // every datagram in: delivered or dropped (the translator never drops outside). frame_malformed and
    // frame_too_big count both directions, so the sum is over both.
    expect(fromNetwork + s.inside.stageReplies + vipDrops + unicast + s.inside.flooded + d.no_fdb_entry + d.bum_dropped + d.no_flood_vtep + d.frame_too_big + d.frame_malformed + d.vxlan_too_short + d.vxlan_no_i_flag + d.unknown_vni).toBe(nIn + nOut);
    // Every path was taken.
    expect(ts.counters.translated_inside).toBeGreaterThan(1000);
    expect(ts.counters.translated_outside).toBeGreaterThan(100);
    expect(ts.counters.arp_answered).toBeGreaterThan(100);
    expect(ts.counters.nd_answered).toBeGreaterThan(100);
    expect(ts.counters.hairpinned).toBeGreaterThan(100);
    expect(ts.counters.hairpin_replies).toBeGreaterThan(10);
    expect(ts.counters.icmp_errors_translated).toBeGreaterThan(10);
    expect(ts.counters.rst_sent).toBeGreaterThan(0);
    for (const r of ['malformed', 'port_closed', 'unsupported_protocol', 'no_backend', 'table_full', 'fragment'] as const) expect(vip[r], r).toBeGreaterThan(0);
    expect(ts.flows).toBeLessThanOrEqual(2 * 2048);
  }, 240_000);
});
