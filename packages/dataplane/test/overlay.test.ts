import { afterEach, describe, expect, it } from 'vitest';
import { createDataplane, parseArp, parseEthernet, ARP_REPLY, formatMac, formatIpv4Address, type Dataplane } from '@overlay/dataplane';
import { buildArpRequest, buildFrame, createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';

/**
 * Three hosts on one in-memory underlay. VNI 100 spans A, B, C; VNI 200 spans A and B only.
 * Host h (1..3) in VNI v has MAC 02:00:00:00:<v>:0h and IP 198.19.<v mod 256>.h.
 */
const VNIS = [100, 200] as const;
const mac = (vni: number, h: number) => `02:00:00:00:${(vni & 0xff).toString(16).padStart(2, '0')}:0${h}`;
const ip = (vni: number, h: number) => `198.19.${vni & 0xff}.${h}`;
const under = (h: number) => `198.18.0.${h}`;

interface Host {
  dp: Dataplane;
  dev: Record<number, MemoryDevice>;
}

function build(net: Testnet): Host[] {
  const members: Record<number, number[]> = { 100: [1, 2, 3], 200: [1, 2] };
  const hosts: Host[] = [];
  for (const h of [1, 2, 3]) {
    const dev: Record<number, MemoryDevice> = {};
    const dp = createDataplane({ transport: net.transport(under(h)) });
    for (const vni of VNIS) {
      if (!members[vni].includes(h)) continue;
      dev[vni] = createMemoryDevice({ name: `h${h}v${vni}`, mtu: 1450 });
      dp.addNetwork({ vni, device: dev[vni] });
      for (const o of members[vni]) {
        if (o === h) continue;
        dp.setFdb(vni, mac(vni, o), { address: under(o) });
        dp.setNeighbour(vni, ip(vni, o), mac(vni, o));
        dp.addFloodVtep(vni, { address: under(o) });
      }
    }
    dp.start();
    hosts.push({ dp, dev });
  }
  return hosts;
}

describe('in-memory 3-host overlay', () => {
  let hosts: Host[] = [];
  afterEach(async () => {
    await Promise.all(hosts.map((h) => h.dp.close()));
    hosts = [];
  });

  it('answers ARP locally for known neighbours: nothing crosses the underlay', async () => {
    const net = createTestnet();
    hosts = build(net);
    const [a] = hosts;
    expect(a.dev[100].inject(buildArpRequest({ srcMac: mac(100, 1), srcIp: ip(100, 1), targetIp: ip(100, 3) }))).toBe(true);
    await net.idle();
    expect(net.stats.sent).toBe(0);
    expect(a.dev[100].received).toHaveLength(1);
    const reply = a.dev[100].received[0];
    const eth = parseEthernet(reply);
    if (eth instanceof Error) throw eth;
    expect(formatMac(eth.dst)).toBe(mac(100, 1));
    expect(formatMac(eth.src)).toBe(mac(100, 3));
    expect(eth.etherType).toBe(0x0806);
    const arp = parseArp(reply.subarray(14));
    if (arp instanceof Error) throw arp;
    expect(arp.op).toBe(ARP_REPLY);
    expect(formatMac(arp.sha)).toBe(mac(100, 3));
    expect(formatIpv4Address(arp.spa)).toBe(ip(100, 3));
    expect(formatMac(arp.tha)).toBe(mac(100, 1));
    expect(formatIpv4Address(arp.tpa)).toBe(ip(100, 1));
    expect(a.dp.stats().inside.arpSuppressed).toBe(1);
    for (const h of hosts.slice(1)) for (const d of Object.values(h.dev)) expect(d.received).toHaveLength(0);
  });

  it('floods ARP for an unknown address to every VTEP of the VNI', async () => {
    const net = createTestnet();
    hosts = build(net);
    const [a, b, c] = hosts;
    a.dev[100].inject(buildArpRequest({ srcMac: mac(100, 1), srcIp: ip(100, 1), targetIp: '198.19.100.99' }));
    await net.idle();
    expect(net.stats.sent).toBe(2);
    expect(b.dev[100].received).toHaveLength(1);
    expect(c.dev[100].received).toHaveLength(1);
    expect(a.dev[100].received).toHaveLength(0);
  });

  it('delivers unicast only to the host owning the destination MAC', async () => {
    const net = createTestnet();
    hosts = build(net);
    const [a, b, c] = hosts;
    const frame = buildFrame({ dst: mac(100, 3), src: mac(100, 1), payload: Buffer.from('x'.repeat(100)) });
    a.dev[100].inject(frame);
    await net.idle();
    expect(c.dev[100].received).toEqual([frame]);
    expect(b.dev[100].received).toHaveLength(0);
    expect(b.dev[200].received).toHaveLength(0);
    expect(net.stats.sent).toBe(1);
    expect(c.dp.stats().outside.delivered).toBe(1);
  });

  it('replicates broadcast to every other host of the VNI, once each', async () => {
    const net = createTestnet();
    hosts = build(net);
    const [a, b, c] = hosts;
    const frame = buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: mac(100, 1) });
    a.dev[100].inject(frame);
    await net.idle();
    expect(b.dev[100].received).toEqual([frame]);
    expect(c.dev[100].received).toEqual([frame]);
    expect(a.dev[100].received).toHaveLength(0);
    const s = a.dp.stats();
    expect(s.inside.flooded).toBe(1);
    expect(s.inside.replicas).toBe(2);
  });

  it('keeps VNIs isolated: a frame for VNI 200 never reaches a VNI 100 device', async () => {
    const net = createTestnet({ capture: true });
    hosts = build(net);
    const [a, b, c] = hosts;
    // Broadcast in 200 reaches B's 200 device only; C is not a member.
    const bcast = buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: mac(200, 1) });
    a.dev[200].inject(bcast);
    // Unicast in 200 to a MAC that exists only in VNI 100's FDB is unknown in 200: flooded
    // within 200, never sent to C.
    const cross = buildFrame({ dst: mac(100, 3), src: mac(200, 1) });
    a.dev[200].inject(cross);
    await net.idle();
    expect(b.dev[200].received).toEqual([bcast, cross]);
    expect(b.dev[100].received).toHaveLength(0);
    expect(c.dev[100].received).toHaveLength(0);
    expect(net.captured.length).toBeGreaterThan(0);
    expect(net.captured.filter((d) => d.to.address === under(3))).toHaveLength(0);
    // A datagram for VNI 200 that does reach C (which has no VNI 200) is counted and dropped.
    b.dp.setFdb(200, mac(200, 3), { address: under(3) });
    b.dev[200].inject(buildFrame({ dst: mac(200, 3), src: mac(200, 2) }));
    await net.idle();
    expect(c.dev[100].received).toHaveLength(0);
    expect(c.dp.stats().drops.unknown_vni).toBe(1);
  });
});

describe('overlay over an impaired underlay', () => {
  it('delivers what the wire delivers, duplicates included, and returns every slot', async () => {
    const net = createTestnet({ loss: 0.2, duplicate: 0.1, reorder: 0.3, delayMs: 1, seed: 99 });
    const hosts = build(net);
    try {
      const [a, b, c] = hosts;
      const N = 300;
      const frames = [...Array(N).keys()].map((i) => buildFrame({ dst: mac(100, 3), src: mac(100, 1), payload: Buffer.from(`frame ${i}`.padEnd(46, '.')) }));
      a.dev[100].injectBatch(frames);
      await net.idle();
      const got = c.dev[100].received;
      expect(got.length).toBe(net.stats.delivered);
      expect(net.stats.delivered).toBe(N - net.stats.lost + net.stats.duplicated);
      expect(net.stats.lost).toBeGreaterThan(0);
      expect(net.stats.duplicated).toBeGreaterThan(0);
      // Every received frame is one that was sent, intact.
      const sent = new Set(frames.map((f) => f.toString('hex')));
      for (const f of got) expect(sent.has(f.toString('hex'))).toBe(true);
      expect(b.dev[100].received).toHaveLength(0);
      for (const h of hosts) expect(h.dp.pool.available).toBe(h.dp.pool.count);
      expect(c.dp.stats().outside.delivered).toBe(got.length);
    } finally {
      await Promise.all(hosts.map((h) => h.dp.close()));
    }
  });
});

describe('the embedding example of docs/ARCHITECTURE.md (Data plane)', () => {
  it('works as written, with a second host to receive', async () => {
    const net = createTestnet();
    const dev = createMemoryDevice({ name: 'vx0', mtu: 1450 });
    const dp = createDataplane({ transport: net.transport('198.18.0.1'), networks: [{ vni: 42, device: dev }] });
    dp.setFdb(42, '02:00:00:00:00:02', { address: '198.18.0.2' });
    dp.setNeighbour(42, '198.19.0.2', '02:00:00:00:00:02');
    dp.addFloodVtep(42, { address: '198.18.0.2' });
    dp.start();

    const dev2 = createMemoryDevice({ name: 'vx0b' });
    const dp2 = createDataplane({ transport: net.transport('198.18.0.2'), networks: [{ vni: 42, device: dev2 }] });
    dp2.start();
    const frame = buildFrame({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01' });
    dev.inject(frame);
    await expect(dev2.waitFor(1, 2000)).resolves.toEqual([frame]);
    await Promise.all([dp.close(), dp2.close()]);
  });
});
