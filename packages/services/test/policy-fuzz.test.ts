import { describe, expect, it } from 'vitest';
import { BufferPool, createDataplane } from '@overlay/dataplane';
import { CountingDevice, CountingTransport, buildArpRequest, seededRandom } from '@overlay/dataplane/testing';
import { PolicyFilter, POLICY_DROP_REASONS } from '../src/policy/filter.js';
import type { Policy } from '../src/policy/rules.js';
import { handBatch, tag8021q } from './fuzz-batch.js';
import { frame6, ipv4Frame } from './vip-frames.js';

const VNI = 42;
const LOCAL = { ip: '198.19.0.1', mac: '02:00:00:00:00:01' };
const PEERS = [2, 3, 4].map((n) => ({ ip: `198.19.0.${n}`, mac: `02:00:00:00:00:0${n}` }));

const POLICIES: Policy[] = [
  {
    defaultAction: 'deny',
    tiers: {
      admin: [{ id: 'no-4', action: 'deny', from: { cidrs: ['198.19.0.4/32'] } }],
      network: [
        { id: 'web-db', action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432', '8000-8080'] },
        { id: 'db-web', action: 'allow', from: { groups: ['db'] }, to: { groups: ['web'] }, proto: 'tcp', ports: ['40000-40100'] },
        { id: 'dns', action: 'allow', proto: 'udp', ports: ['53'] },
        { id: 'ping', action: 'allow', proto: 'icmp', icmpTypes: [8] },
      ],
    },
  },
  { defaultAction: 'allow', tiers: { service: [{ id: 'no-udp', action: 'deny', proto: 'udp' }] } },
  { defaultAction: 'deny', tiers: { network: [{ id: 'tcp-all', action: 'allow', from: { cidrs: ['198.19.0.0/16'] }, to: { cidrs: ['198.19.0.0/16'] }, proto: 'tcp' }] } },
];

function templates(): { inside: Buffer[]; outside: Buffer[] } {
  const inside: Buffer[] = [];
  const outside: Buffer[] = [];
  for (const p of PEERS) {
    for (const flags of [0x02, 0x10, 0x18, 0x11, 0x04, 0x12]) {
      inside.push(ipv4Frame({ dstMac: p.mac, srcMac: LOCAL.mac, src: LOCAL.ip, dst: p.ip, proto: 'tcp', sport: 40000, dport: 5432, flags }));
      outside.push(ipv4Frame({ dstMac: LOCAL.mac, srcMac: p.mac, src: p.ip, dst: LOCAL.ip, proto: 'tcp', sport: 5432, dport: 40000, flags }));
      outside.push(ipv4Frame({ dstMac: LOCAL.mac, srcMac: p.mac, src: p.ip, dst: LOCAL.ip, proto: 'tcp', sport: 40000, dport: 8080, flags }));
    }
    inside.push(ipv4Frame({ dstMac: p.mac, srcMac: LOCAL.mac, src: LOCAL.ip, dst: p.ip, proto: 'udp', sport: 5353, dport: 53, payload: Buffer.alloc(20) }));
    outside.push(ipv4Frame({ dstMac: LOCAL.mac, srcMac: p.mac, src: p.ip, dst: LOCAL.ip, proto: 'udp', sport: 53, dport: 5353, payload: Buffer.alloc(20) }));
    inside.push(ipv4Frame({ dstMac: p.mac, srcMac: LOCAL.mac, src: LOCAL.ip, dst: p.ip, proto: 'icmp', icmpType: 8, id: 5 }));
    outside.push(ipv4Frame({ dstMac: LOCAL.mac, srcMac: p.mac, src: p.ip, dst: LOCAL.ip, proto: 'icmp', icmpType: 0, id: 5 }));
    outside.push(ipv4Frame({ dstMac: LOCAL.mac, srcMac: p.mac, src: p.ip, dst: LOCAL.ip, proto: 'icmp', icmpType: 3, id: 5 }));
  }
  // IPv6 between 2001:db8::1 and the peers' 2001:db8::<n>: TCP, UDP, ICMPv6 echo, other ICMPv6, ND.
  PEERS.forEach((p, i) => {
    const ip6 = `2001:db8::${i + 2}`;
    for (const flags of [0x02, 0x10, 0x12, 0x04]) {
      inside.push(frame6({ dstMac: p.mac, srcMac: LOCAL.mac, src: '2001:db8::1', dst: ip6, nh: 6, sport: 40000, dport: 5432, flags }));
      outside.push(frame6({ dstMac: LOCAL.mac, srcMac: p.mac, src: ip6, dst: '2001:db8::1', nh: 6, sport: 5432, dport: 40000, flags }));
    }
    inside.push(frame6({ dstMac: p.mac, srcMac: LOCAL.mac, src: '2001:db8::1', dst: ip6, nh: 17, sport: 5353, dport: 53 }));
    outside.push(frame6({ dstMac: LOCAL.mac, srcMac: p.mac, src: ip6, dst: '2001:db8::1', nh: 17, sport: 53, dport: 5353 }));
    inside.push(frame6({ dstMac: p.mac, srcMac: LOCAL.mac, src: '2001:db8::1', dst: ip6, nh: 58, type: 128, id: 5 }));
    for (const type of [129, 1, 135]) outside.push(frame6({ dstMac: LOCAL.mac, srcMac: p.mac, src: ip6, dst: '2001:db8::1', nh: 58, type, id: 5 }));
  });
  inside.push(buildArpRequest({ srcMac: LOCAL.mac, srcIp: LOCAL.ip, targetIp: '198.19.0.9' }));
  const v6 = Buffer.alloc(14 + 48);
  inside[0].copy(v6, 0, 0, 12);
  v6.writeUInt16BE(0x86dd, 12);
  v6[14] = 0x60;
  v6.writeUInt16BE(8, 18);
  v6[20] = 17;
  v6[21] = 64;
  inside.push(v6);
  inside.push(...inside.slice(0, 4).map(tag8021q));
  outside.push(...outside.slice(0, 4).map(tag8021q));
  return { inside, outside };
}

/** Ports varied (new flows), 1..4 header bytes set at random, sometimes truncated or extended. */
function mutate(rnd: () => number, t: Buffer): Buffer {
  let f = Buffer.from(t);
  const r = rnd();
  if (r < 0.5) f.writeUInt16BE(Math.floor(rnd() * 65536), Math.min(f.length - 2, 34 + (rnd() < 0.5 ? 0 : 2)));
  if (r > 0.3) {
    const n = 1 + Math.floor(rnd() * 4);
    for (let i = 0; i < n; i++) f[Math.floor(rnd() * Math.min(f.length, rnd() < 0.8 ? 60 : f.length))] = Math.floor(rnd() * 256);
  }
  const s = rnd();
  if (s < 0.1) f = f.subarray(0, Math.floor(rnd() * f.length));
  else if (s < 0.15) f = Buffer.concat([f, Buffer.alloc(Math.floor(rnd() * 1400))]);
  return f;
}

describe('policy filter on mutated input', () => {
  it('10^5 mutated frames each way with reloads and identity changes: no stage_failed, no leaked slot, every packet accounted for, every drop reason reached', () => {
    const rnd = seededRandom(0x90110c);
    const pool = new BufferPool({ count: 256, frameCapacity: 4000 });
    const dev = new CountingDevice(1500);
    const tr = new CountingTransport();
    const dp = createDataplane({ transport: tr, pool, networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop', learning: false }] });
    for (const [k, p] of PEERS.entries()) dp.setFdb(VNI, p.mac, { address: `198.18.0.${k + 2}` });
    dp.start();
    const clock = { now: 0 };
    const f = new PolicyFilter({ policy: POLICIES[0], capacity: 512, clock: () => clock.now, timers: false, tickMs: 100, timeouts: { tcpSynMs: 2_000, udpMs: 1_000, tcpEstablishedMs: 5_000 }, log: () => {} });
    f.identity.set(LOCAL.ip, ['web']);
    f.identity.set(PEERS[0].ip, ['db']);
    dp.addStage(VNI, f);
    const { inside, outside } = templates();
    const N = 100_000;
    const BATCH = 64;
    let nIn = 0;
    let nOut = 0;
    for (let i = 0; nIn < N; i++) {
      nIn += handBatch(pool, dev.sink, Array.from({ length: BATCH }, () => mutate(rnd, inside[Math.floor(rnd() * inside.length)])), false, VNI);
      nOut += handBatch(pool, tr.sink, Array.from({ length: BATCH }, () => mutate(rnd, outside[Math.floor(rnd() * outside.length)])), true, VNI);
      clock.now += 25;
      f.tick();
      if (i % 200 === 199) f.setPolicy(POLICIES[((i / 200) | 0) % POLICIES.length]);
      if (i % 300 === 299) f.identity.set(PEERS[1].ip, i % 600 === 299 ? ['db'] : []);
      expect(pool.available).toBe(pool.count);
    }
    const s = dp.stats();
    const d = s.drops;
    const st = s.stages.policy;
    const c = f.stats().counters;
    expect(d.stage_failed).toBe(0);
    for (const r of POLICY_DROP_REASONS) expect(st[r]).toBe(c[`inside_${r}`] + c[`outside_${r}`]);
    const policyIn = POLICY_DROP_REASONS.reduce((a, r) => a + c[`inside_${r}`], 0);
    const policyOut = POLICY_DROP_REASONS.reduce((a, r) => a + c[`outside_${r}`], 0);
    expect(s.inside.frames).toBe(nIn);
    expect(s.outside.datagrams).toBe(nOut);
    expect(dev.written).toBe(s.outside.delivered);
    const unicast = s.inside.sent - s.inside.replicas;
    // Every frame in: answered (ARP), dropped by the policy under a reason, sent, or dropped by the pipeline;
    // every datagram in: delivered, dropped by the policy, or dropped by the pipeline. ARP answers are
    // written to the device, so outside.delivered counts them too.
    expect(s.outside.delivered + policyIn + policyOut + unicast + s.inside.flooded + d.no_fdb_entry + d.bum_dropped + d.no_flood_vtep + d.frame_too_big + d.frame_malformed + d.vxlan_too_short + d.vxlan_no_i_flag + d.unknown_vni).toBe(nIn + nOut);
    // Every path was taken (tuple_clash needs two IPv6 addresses with one 32-bit key: policy-filter6.test.ts).
    for (const r of ['denied', 'no_flow', 'malformed', 'fragment', 'flow_table_full'] as const) expect(st[r], r).toBeGreaterThan(0);
    expect(f.conntrack6.counters.snapshot().opened, "IPv6 flows opened").toBeGreaterThan(10);
    expect(c.flows_opened).toBeGreaterThan(1000);
    expect(c.flows_revoked).toBeGreaterThan(0);
    expect(s.outside.delivered).toBeGreaterThan(10_000);
    expect(unicast).toBeGreaterThan(10_000);
  }, 120_000);
});
