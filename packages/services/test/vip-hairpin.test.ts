import { afterEach, describe, expect, it } from 'vitest';
import { createDataplane, type Dataplane } from '@overlay/dataplane';
import { createMemoryDevice, createTestnet } from '@overlay/dataplane/testing';
import { ServiceVips } from '../src/vip/index.js';
import { checksumProblems, ipv4Frame, parseIpv4Frame } from './vip-frames.js';

// Hairpin: the backend runs on the client's host. The translator rewrites the client's packet to
// the backend AND its source to the VIP and hands it back to the device; the backend's reply,
// addressed to the VIP, comes out of the device again and is translated back to the client.
const VNI = 42;
const VIP = '198.19.255.1';
const VIP_MAC = '0e:00:c6:13:ff:01';
const HOST = { ip: '198.19.0.1', mac: '02:00:00:00:00:01' };
const REMOTE = { ip: '198.19.0.2', mac: '02:00:00:00:00:02' };
const SYN = 0x02, ACK = 0x10, PSH = 0x08;
const u32 = (t: string) => t.split('.').reduce((a, b) => a * 256 + Number(b), 0) | 0;

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function bed(remote: boolean) {
  const net = createTestnet();
  const dev = createMemoryDevice({ name: 'h1' });
  const dp = createDataplane({ transport: net.transport('198.18.0.1'), networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop' }] });
  dp.start();
  open.push(dp);
  const rdev = createMemoryDevice({ name: 'h2' });
  const rdp = createDataplane({ transport: net.transport('198.18.0.2'), networks: [{ vni: VNI, device: rdev, unknownUnicast: 'drop' }] });
  rdp.start();
  open.push(rdp);
  dp.setFdb(VNI, REMOTE.mac, { address: '198.18.0.2' });
  const vips = new ServiceVips(dp, { timers: false });
  const backends = [{ id: 'web.0', ip: HOST.ip, mac: HOST.mac, state: 'healthy' as const, local: true }];
  if (remote) backends.push({ id: 'web.1', ip: REMOTE.ip, mac: REMOTE.mac, state: 'healthy' as const, local: false });
  vips.setVip(VNI, { vip: VIP, ports: [80], backends });
  return { net, dev, rdev, vips, t: vips.translator(VNI)! };
}

describe('VIP hairpin: a backend on the client\'s own host', () => {
  it('TCP: the SYN comes back to the device from the VIP to the local backend, the SYN-ACK to the VIP goes back to the client; checksums valid; nothing crosses the underlay', async () => {
    const b = bed(false);
    b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'tcp', sport: 40001, dport: 80, flags: SYN, seq: 100 }));
    await b.net.idle();
    const out = b.dev.received.splice(0);
    expect(out).toHaveLength(1);
    const s = parseIpv4Frame(out[0]);
    expect([s.src, s.srcMac, s.dst, s.dstMac, s.sport, s.dport, s.flags]).toEqual([VIP, VIP_MAC, HOST.ip, HOST.mac, 40001, 80, SYN]);
    expect(checksumProblems(out[0])).toEqual([]);
    // The backend (the same kernel) answers the VIP: out of the device, to the VIP's MAC.
    b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'tcp', sport: 80, dport: 40001, flags: SYN | ACK, seq: 7000, ack: 101 }));
    await b.net.idle();
    const back = b.dev.received.splice(0);
    expect(back).toHaveLength(1);
    const r = parseIpv4Frame(back[0]);
    expect([r.src, r.srcMac, r.dst, r.dstMac, r.sport, r.dport, r.flags]).toEqual([VIP, VIP_MAC, HOST.ip, HOST.mac, 80, 40001, SYN | ACK]);
    expect(checksumProblems(back[0])).toEqual([]);
    // Data both ways on the established flow.
    for (let i = 0; i < 5; i++) {
      b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'tcp', sport: 40001, dport: 80, flags: ACK | PSH, seq: 101 + i * 3, ack: 7001, payload: Buffer.from(`d${i}x`) }));
      b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'tcp', sport: 80, dport: 40001, flags: ACK | PSH, seq: 7001 + i * 5, ack: 104 + i * 3, payload: Buffer.from(`r${i}xyz`) }));
    }
    await b.net.idle();
    const data = b.dev.received.splice(0).map((f) => ({ f, p: parseIpv4Frame(f) }));
    expect(data).toHaveLength(10);
    for (const { f, p } of data) {
      expect(checksumProblems(f)).toEqual([]);
      expect(p.src).toBe(VIP);
      expect(p.dst).toBe(HOST.ip);
    }
    expect(data.filter((x) => x.p.dport === 80)).toHaveLength(5);
    expect(b.net.stats.sent).toBe(0);
    expect(b.t.stats().counters).toMatchObject({ hairpinned: 6, hairpin_replies: 6, translated_inside: 6 });
    const e = b.t.conntrack.find(6, u32(HOST.ip), u32(VIP), 40001, 80);
    expect(b.t.conntrack.peer[e]).toBe(u32(VIP));
    // The backend turned down: the client gets a RST from the VIP.
    b.vips.setVip(VNI, { vip: VIP, ports: [80], backends: [{ id: 'web.0', ip: HOST.ip, mac: HOST.mac, state: 'down', local: true }] });
    const rst = b.dev.received.splice(0).map(parseIpv4Frame);
    expect(rst.map((x) => [x.src, x.dst, x.sport, x.dport, x.flags & 0x04])).toEqual([[VIP, HOST.ip, 80, 40001, 0x04]]);
  });

  it('UDP and ICMP echo hairpin; a local backend\'s own traffic to the VIP that matches no hairpin flow is a new client flow', async () => {
    const b = bed(false);
    b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'udp', sport: 5353, dport: 80, payload: Buffer.from('q') }));
    b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'icmp', icmpType: 8, id: 77, payload: Buffer.from('ping') }));
    await b.net.idle();
    const fwd = b.dev.received.splice(0).map((f) => ({ f, p: parseIpv4Frame(f) }));
    expect(fwd.map((x) => [x.p.src, x.p.dst])).toEqual([[VIP, HOST.ip], [VIP, HOST.ip]]);
    for (const x of fwd) expect(checksumProblems(x.f)).toEqual([]);
    b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'udp', sport: 80, dport: 5353, payload: Buffer.from('answer') }));
    b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'icmp', icmpType: 0, id: 77, payload: Buffer.from('ping') }));
    await b.net.idle();
    const back = b.dev.received.splice(0).map((f) => ({ f, p: parseIpv4Frame(f) }));
    expect(back.map((x) => [x.p.src, x.p.dst, x.p.dstMac])).toEqual([[VIP, HOST.ip, HOST.mac], [VIP, HOST.ip, HOST.mac]]);
    for (const x of back) expect(checksumProblems(x.f)).toEqual([]);
    expect(b.t.stats().counters).toMatchObject({ hairpinned: 2, hairpin_replies: 2 });
    // A fresh connection from the backend's address to the VIP is its own flow (hairpinned again).
    b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'tcp', sport: 40500, dport: 80, flags: SYN }));
    await b.net.idle();
    expect(b.t.stats().counters.hairpinned).toBe(3);
    expect(b.dev.received.splice(0).map((f) => parseIpv4Frame(f).src)).toEqual([VIP]);
  });

  it('with a local and a remote backend, flows to the remote one are not source-rewritten and cross the underlay', async () => {
    const b = bed(true);
    for (let p = 0; p < 64; p++) b.dev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: HOST.mac, src: HOST.ip, dst: VIP, proto: 'tcp', sport: 30000 + p, dport: 80, flags: SYN }));
    await b.net.idle();
    const local = b.dev.received.splice(0).map(parseIpv4Frame);
    const remote = b.rdev.received.splice(0).map(parseIpv4Frame);
    expect(local.length + remote.length).toBe(64);
    expect(local.length).toBeGreaterThan(10);
    expect(remote.length).toBeGreaterThan(10);
    for (const p of local) expect([p.src, p.dst]).toEqual([VIP, HOST.ip]);
    for (const p of remote) expect([p.src, p.dst, p.dstMac]).toEqual([HOST.ip, REMOTE.ip, REMOTE.mac]);
  });
});
