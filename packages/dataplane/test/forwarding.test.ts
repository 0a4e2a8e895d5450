import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Ipv6Header, Status, decodeIpv6, formatIpAddress, formatMac, ipv6PseudoHeaderSum, onesComplementSum, readMac,
  BufferPool, ClosedError, dropChannel, type DropEvent, DuplicateNetworkError, InvalidAddressError, InvalidConfigError, UnknownNetworkError, createDataplane, encodeVxlan, type Dataplane,
} from '@overlay/dataplane';
import { buildArpRequest, buildFrame, buildNeighborSolicitation, createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';

const VNI = 7;
const M = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const U = (n: number) => `198.18.0.${n}`;

interface Node {
  dp: Dataplane;
  dev: MemoryDevice;
}

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

/** A dataplane on `net` at 198.18.0.n with one network (VNI 7). */
function node(net: Testnet, n: number, opts: { learning?: boolean; unknownUnicast?: 'flood' | 'drop'; arpSuppression?: boolean; ageingMs?: number; mtu?: number; now?: () => number; pool?: BufferPool } = {}): Node {
  const dev = createMemoryDevice({ name: `d${n}`, mtu: opts.mtu ?? 1450 });
  const dp = createDataplane({
    transport: net.transport(U(n)),
    now: opts.now,
    pool: opts.pool,
    networks: [{ vni: VNI, device: dev, learning: opts.learning, unknownUnicast: opts.unknownUnicast, arpSuppression: opts.arpSuppression, ageingMs: opts.ageingMs }],
  });
  dp.start();
  open.push(dp);
  return { dp, dev };
}

describe('FDB learning and ageing', () => {
  it('learns source MAC → VTEP, forwards to it, and forgets it after ageingMs (injected clock)', async () => {
    let now = 1_000_000;
    const net = createTestnet({ capture: true });
    const a = node(net, 1, { learning: true, unknownUnicast: 'drop', ageingMs: 60_000, now: () => now });
    const b = node(net, 2);
    b.dp.addFloodVtep(VNI, { address: U(1) });
    b.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0xb) }));
    await net.idle();
    expect(a.dev.received).toHaveLength(1);
    expect(a.dp.fdb(VNI)).toEqual([{ mac: M(0xb), vtep: { address: U(2), port: 4789 }, kind: 'learned' }]);
    expect(a.dp.stats().outside.learned).toBe(1);

    const toB = buildFrame({ dst: M(0xb), src: M(0xa) });
    a.dev.inject(toB);
    await net.idle();
    expect(b.dev.received).toEqual([toB]);

    // Traffic refreshes the entry: 40 s + 40 s apart is never 60 s idle.
    now += 40_000;
    b.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0xb) }));
    await net.idle();
    now += 40_000;
    expect(a.dp.fdb(VNI)).toHaveLength(1);

    now += 20_001;
    a.dev.inject(toB);
    await net.idle();
    expect(b.dev.received).toHaveLength(1);
    expect(a.dp.stats().drops.no_fdb_entry).toBe(1);
    expect(a.dp.fdb(VNI)).toEqual([]);
  });

  it('caps learned MACs per network: the rest are delivered but counted as learnRefused, never stored', async () => {
    const net = createTestnet();
    const a = node(net, 1, { learning: true, unknownUnicast: 'drop' });
    const b = node(net, 2);
    b.dp.addFloodVtep(VNI, { address: U(1) });
    const cap = 65_536;
    const total = cap + 5;
    const mac = (i: number) => `02:01:${((i >>> 24) & 0xff).toString(16).padStart(2, '0')}:${((i >>> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >>> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
    for (let i = 0; i < total; i += 64) {
      const batch = [];
      for (let j = i; j < Math.min(total, i + 64); j++) batch.push(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: mac(j) }));
      expect(b.dev.injectBatch(batch)).toBe(batch.length);
      await net.idle();
    }
    const s = a.dp.stats();
    expect(s.outside.delivered).toBe(total);
    expect(s.outside.learned).toBe(cap);
    expect(s.outside.learnRefused).toBe(total - cap);
    expect(a.dp.fdb(VNI)).toHaveLength(cap);
  }, 60_000);

  it('moves a learned MAC to its new VTEP, but never overrides a static entry', async () => {
    const net = createTestnet();
    const a = node(net, 1, { learning: true });
    const b = node(net, 2);
    const c = node(net, 3);
    for (const x of [b, c]) x.dp.addFloodVtep(VNI, { address: U(1) });
    b.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0x99) }));
    await net.idle();
    expect(a.dp.fdb(VNI)[0].vtep.address).toBe(U(2));
    c.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0x99) }));
    await net.idle();
    expect(a.dp.fdb(VNI)).toEqual([{ mac: M(0x99), vtep: { address: U(3), port: 4789 }, kind: 'learned' }]);
    expect(a.dp.stats().outside.learned).toBe(2);

    a.dp.setFdb(VNI, M(0x55), { address: U(3) });
    b.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0x55) }));
    await net.idle();
    expect(a.dp.fdb(VNI).find((e) => e.mac === M(0x55))).toEqual({ mac: M(0x55), vtep: { address: U(3), port: 4789 }, kind: 'static' });
    a.dp.deleteFdb(VNI, M(0x55));
    expect(a.dp.fdb(VNI).map((e) => e.mac)).toEqual([M(0x99)]);
  });

  it('ages out exactly the idle entries among hundreds (sweep with backward-shift deletion)', async () => {
    let now = 0;
    const net = createTestnet();
    const a = node(net, 1, { learning: true, ageingMs: 60_000, now: () => now });
    const b = node(net, 2);
    b.dp.addFloodVtep(VNI, { address: U(1) });
    const mac = (i: number) => `02:00:00:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const frames = (pick: (i: number) => boolean) => [...Array(600).keys()].filter(pick).map((i) => buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: mac(i) }));
    b.dev.injectBatch(frames(() => true));
    await net.idle();
    expect(a.dp.fdb(VNI)).toHaveLength(600);
    now = 40_000;
    b.dev.injectBatch(frames((i) => i % 3 === 0));
    await net.idle();
    now = 70_000;
    const left = a.dp.fdb(VNI).map((e) => e.mac).sort();
    expect(left).toEqual(frames((i) => i % 3 === 0).map((_, k) => mac(k * 3)).sort());
    now = 100_001;
    expect(a.dp.fdb(VNI)).toEqual([]);
  });

  it("learns the datagram's source port, or a fixed learnPort for peers with varying source ports", async () => {
    const net = createTestnet();
    const mk = (addr: string, port: number, learnPort?: 'source' | number) => {
      const dev = createMemoryDevice({ name: `lp${port}` });
      const dp = createDataplane({ transport: net.transport(addr, port), networks: [{ vni: VNI, device: dev, learning: true, learnPort }] });
      dp.start();
      open.push(dp);
      return { dp, dev };
    };
    const src = mk(U(2), 40_000);
    const bySource = mk(U(1), 4789);
    const fixed = mk(U(3), 4789, 4789);
    for (const dst of [U(1), U(3)]) src.dp.addFloodVtep(VNI, { address: dst });
    src.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0xb) }));
    await net.idle();
    expect(bySource.dp.fdb(VNI)).toEqual([{ mac: M(0xb), vtep: { address: U(2), port: 40_000 }, kind: 'learned' }]);
    expect(fixed.dp.fdb(VNI)).toEqual([{ mac: M(0xb), vtep: { address: U(2), port: 4789 }, kind: 'learned' }]);
    // The same MAC from another source port of the same host: the fixed-port entry is merely
    // refreshed, the source-port entry moves.
    const src2 = mk(U(2), 40_001);
    for (const dst of [U(1), U(3)]) src2.dp.addFloodVtep(VNI, { address: dst });
    src2.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0xb) }));
    await net.idle();
    expect(fixed.dp.stats().outside.learned).toBe(1);
    expect(bySource.dp.stats().outside.learned).toBe(2);
    expect(bySource.dp.fdb(VNI)[0].vtep.port).toBe(40_001);
    expect(() => createDataplane({ transport: net.transport(U(4)), networks: [{ vni: 1, device: createMemoryDevice({ name: 'x' }), learnPort: 0 }] })).toThrow(InvalidConfigError);
  });

  it('does not learn when learning is off', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const b = node(net, 2);
    b.dp.addFloodVtep(VNI, { address: U(1) });
    b.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(0xb) }));
    await net.idle();
    expect(a.dev.received).toHaveLength(1);
    expect(a.dp.fdb(VNI)).toEqual([]);
  });
});

describe('ARP suppression', () => {
  it('answers an 802.1Q-tagged request and keeps the tag', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    a.dp.setNeighbour(VNI, '198.19.0.9', M(9));
    a.dev.inject(buildArpRequest({ srcMac: M(1), srcIp: '198.19.0.1', targetIp: '198.19.0.9', vlan: 33 }));
    await net.idle();
    expect(a.dev.received).toHaveLength(1);
    const r = a.dev.received[0];
    expect(r.length).toBe(18 + 28);
    expect(r.readUInt16BE(12)).toBe(0x8100);
    expect(r.readUInt16BE(14) & 0xfff).toBe(33);
    expect(r.readUInt16BE(18 + 6)).toBe(2);
    expect(net.stats.sent).toBe(0);
  });

  it('answers many requests in a row without any state growing', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    a.dp.setNeighbour(VNI, '198.19.0.9', M(9));
    const req = buildArpRequest({ srcMac: M(1), srcIp: '198.19.0.1', targetIp: '198.19.0.9' });
    for (let i = 0; i < 200; i++) a.dev.inject(req);
    expect(a.dev.received).toHaveLength(200);
    expect(a.dp.stats().inside.arpSuppressed).toBe(200);
    // The list of networks with pending device writes is reset after every batch.
    expect((a.dp as unknown as { core: { dirty: unknown[] } }).core.dirty.length).toBeLessThanOrEqual(1);
    expect(a.dp.pool.available).toBe(a.dp.pool.count);
  });

  it('floods gratuitous ARP, replies, unknown targets, deleted neighbours and everything when off', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const b = node(net, 2);
    const off = node(net, 3, { arpSuppression: false });
    a.dp.addFloodVtep(VNI, { address: U(2) });
    off.dp.addFloodVtep(VNI, { address: U(2) });
    a.dp.setNeighbour(VNI, '198.19.0.9', M(9));
    off.dp.setNeighbour(VNI, '198.19.0.9', M(9));
    const gratuitous = buildArpRequest({ srcMac: M(9), srcIp: '198.19.0.9', targetIp: '198.19.0.9' });
    const reply = buildArpRequest({ srcMac: M(1), srcIp: '198.19.0.1', targetIp: '198.19.0.9' });
    reply[21] = 2; // op = reply
    a.dev.inject(gratuitous);
    a.dev.inject(reply);
    a.dev.inject(buildArpRequest({ srcMac: M(1), srcIp: '198.19.0.1', targetIp: '198.19.0.77' }));
    off.dev.inject(buildArpRequest({ srcMac: M(3), srcIp: '198.19.0.3', targetIp: '198.19.0.9' }));
    await net.idle();
    expect(b.dev.received).toHaveLength(4);
    expect(a.dev.received).toHaveLength(0);
    expect(off.dev.received).toHaveLength(0);
    a.dp.deleteNeighbour(VNI, '198.19.0.9');
    a.dev.inject(buildArpRequest({ srcMac: M(1), srcIp: '198.19.0.1', targetIp: '198.19.0.9' }));
    await net.idle();
    expect(b.dev.received).toHaveLength(5);
    expect(a.dp.stats().inside.arpSuppressed).toBe(0);
  });
});

describe('ND suppression (IPv6)', () => {
  it('answers a neighbour solicitation with a valid advertisement; nothing crosses the underlay', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    a.dp.setNeighbour(VNI, '2001:db8:1::9', M(9));
    a.dp.setNeighbour(VNI, 'fe80::9', M(0x19)); // same interface id, different prefix
    for (const vlan of [undefined, 12]) {
      a.dev.received.length = 0;
      a.dev.inject(buildNeighborSolicitation({ srcMac: M(1), srcIp: '2001:db8:1::1', targetIp: '2001:db8:1::9', vlan }));
      await net.idle();
      expect(a.dev.received).toHaveLength(1);
      const f = a.dev.received[0];
      const l2 = vlan === undefined ? 14 : 18;
      expect(f.length).toBe(l2 + 72);
      expect(formatMac(readMac(f, 0))).toBe(M(1));
      expect(formatMac(readMac(f, 6))).toBe(M(9));
      if (vlan !== undefined) expect(f.readUInt16BE(14) & 0xfff).toBe(vlan);
      const h = new Ipv6Header();
      expect(decodeIpv6(f, l2, f.length - l2, h)).toBe(Status.OK);
      expect([h.nextHeader, h.hopLimit, h.payloadLength]).toEqual([58, 255, 32]);
      expect(formatIpAddress(6, h.src)).toBe('2001:db8:1::9');
      expect(formatIpAddress(6, h.dst)).toBe('2001:db8:1::1');
      const icmp = l2 + 40;
      expect([f[icmp], f[icmp + 1], f[icmp + 4]]).toEqual([136, 0, 0x60]);
      expect(formatIpAddress(6, f, icmp + 8)).toBe('2001:db8:1::9');
      expect([f[icmp + 24], f[icmp + 25]]).toEqual([2, 1]);
      expect(formatMac(readMac(f, icmp + 26))).toBe(M(9));
      // A correct ICMPv6 checksum makes pseudo-header + message sum to 0xffff.
      expect(onesComplementSum(f, icmp, 32, ipv6PseudoHeaderSum(f, l2 + 8, l2 + 24, 58, 32))).toBe(0xffff);
    }
    a.dev.received.length = 0;
    a.dev.inject(buildNeighborSolicitation({ srcMac: M(1), srcIp: 'fe80::1', targetIp: 'fe80::9' }));
    await net.idle();
    expect(formatMac(readMac(a.dev.received[0], 6))).toBe(M(0x19));
    expect(net.stats.sent).toBe(0);
    expect(a.dp.stats().inside.arpSuppressed).toBe(3);
  });

  it('floods duplicate address detection, unknown targets and deleted neighbours', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const b = node(net, 2);
    a.dp.addFloodVtep(VNI, { address: U(2) });
    a.dp.setNeighbour(VNI, '2001:db8:1::9', M(9));
    a.dev.inject(buildNeighborSolicitation({ srcMac: M(1), srcIp: '::', targetIp: '2001:db8:1::9' }));
    a.dev.inject(buildNeighborSolicitation({ srcMac: M(1), srcIp: '2001:db8:1::1', targetIp: '2001:db8:1::77' }));
    a.dp.deleteNeighbour(VNI, '2001:db8:1::9');
    a.dev.inject(buildNeighborSolicitation({ srcMac: M(1), srcIp: '2001:db8:1::1', targetIp: '2001:db8:1::9' }));
    await net.idle();
    expect(b.dev.received).toHaveLength(3);
    expect(a.dev.received).toHaveLength(0);
    expect(a.dp.stats().inside.arpSuppressed).toBe(0);
  });
});

describe('head-end replication and BUM policy', () => {
  it('sends one identical datagram per flood VTEP and stops sending to a removed one', async () => {
    const net = createTestnet({ capture: true });
    const a = node(net, 1);
    const peers = [2, 3, 4].map((n) => node(net, n));
    for (const n of [2, 3, 4]) a.dp.addFloodVtep(VNI, { address: U(n) });
    a.dp.addFloodVtep(VNI, { address: U(2) }); // idempotent
    const f = buildFrame({ dst: '33:33:00:00:00:01', src: M(1) });
    a.dev.inject(f);
    await net.idle();
    expect(net.captured.map((d) => d.to.address).sort()).toEqual([U(2), U(3), U(4)]);
    expect(new Set(net.captured.map((d) => d.payload.toString('hex'))).size).toBe(1);
    for (const p of peers) expect(p.dev.received).toEqual([f]);
    a.dp.removeFloodVtep(VNI, { address: U(3) });
    a.dev.inject(f);
    await net.idle();
    expect(net.captured.slice(3).map((d) => d.to.address).sort()).toEqual([U(2), U(4)]);
  });

  it('counts replicas that found no free pool slot as pool_exhausted', async () => {
    const net = createTestnet({ capture: true });
    const a = node(net, 1, { pool: new BufferPool({ count: 2, frameCapacity: 1600 }) });
    for (const n of [2, 3, 4]) a.dp.addFloodVtep(VNI, { address: U(n) });
    a.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(1) }));
    await net.idle();
    expect(net.captured).toHaveLength(2);
    expect(a.dp.stats().drops.pool_exhausted).toBe(1);
    expect(a.dp.pool.available).toBe(2);
  });

  it('drops BUM and unknown unicast under the drop policy, and counts an empty flood list', async () => {
    const net = createTestnet();
    const d = node(net, 1, { unknownUnicast: 'drop' });
    d.dp.addFloodVtep(VNI, { address: U(2) });
    d.dev.inject(buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: M(1) }));
    d.dev.inject(buildFrame({ dst: M(0x42), src: M(1) }));
    const f = node(net, 3);
    f.dev.inject(buildFrame({ dst: M(0x42), src: M(3) }));
    await net.idle();
    expect(net.stats.sent).toBe(0);
    expect(d.dp.stats().drops).toMatchObject({ bum_dropped: 1, no_fdb_entry: 1 });
    expect(f.dp.stats().drops.no_flood_vtep).toBe(1);
  });
});

describe('drops are counted by reason', () => {
  it('applies the MTU rule: mtu + 18 passes, one byte more is frame_too_big (both directions)', async () => {
    const net = createTestnet();
    const a = node(net, 1, { mtu: 100 });
    const b = node(net, 2, { mtu: 1450 });
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    b.dp.setFdb(VNI, M(1), { address: U(1) });
    a.dev.inject(buildFrame({ dst: M(2), src: M(1), payload: new Uint8Array(100 + 18 - 14) }));
    a.dev.inject(buildFrame({ dst: M(2), src: M(1), payload: new Uint8Array(100 + 18 - 13) }));
    b.dev.inject(buildFrame({ dst: M(1), src: M(2), payload: new Uint8Array(200) }));
    await net.idle();
    expect(b.dev.received.map((f) => f.length)).toEqual([118]);
    expect(a.dp.stats().drops.frame_too_big).toBe(2);
    expect(a.dev.received).toHaveLength(0);
  });

  it('counts malformed VXLAN, unknown VNIs and runt frames from the underlay', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const t = net.transport(U(9));
    t.start(new BufferPool({ count: 4 }), () => {});
    const vx = (vni: number, inner: number) => {
      const b = Buffer.alloc(8 + inner);
      encodeVxlan(b, 0, vni);
      return b;
    };
    const noI = vx(VNI, 60);
    noI[0] = 0;
    for (const d of [Buffer.alloc(7, 8), noI, vx(VNI + 1, 60), vx(VNI, 13), vx(VNI, 14)]) t.sendRaw(d, { address: U(1), port: 4789 });
    await net.idle();
    const s = a.dp.stats();
    expect(s.drops).toMatchObject({ vxlan_too_short: 1, vxlan_no_i_flag: 1, unknown_vni: 1, frame_malformed: 1 });
    expect(s.outside).toMatchObject({ datagrams: 5, delivered: 1 });
    expect(a.dp.pool.available).toBe(a.dp.pool.count);
  });

  it('counts frames the device or the transport refused', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const b = node(net, 2);
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    b.dev.writeLimit = 0;
    a.dev.inject(buildFrame({ dst: M(2), src: M(1) }));
    await net.idle();
    expect(b.dp.stats().drops.device_write_failed).toBe(1);
    const t = (a.dp as unknown as { core: { transport: { sendLimit: number } } }).core.transport;
    t.sendLimit = 0;
    a.dev.inject(buildFrame({ dst: M(2), src: M(1) }));
    await net.idle();
    expect(a.dp.stats().drops.transport_send_failed).toBe(1);
    expect(a.dp.stats().inside.sent).toBe(1);
  });

  it('publishes drops on the diagnostics channel only while subscribed', async () => {
    const net = createTestnet();
    const a = node(net, 1, { mtu: 100 });
    const events: DropEvent[] = [];
    const listen = (m: unknown) => events.push(m as DropEvent);
    a.dev.inject(buildFrame({ dst: M(2), src: M(1), payload: new Uint8Array(200) }));
    subscribe('overlay.dataplane.drop', listen);
    try {
      expect(dropChannel.hasSubscribers).toBe(true);
      a.dev.inject(buildFrame({ dst: M(2), src: M(1), payload: new Uint8Array(200) }));
      a.dev.inject(buildFrame({ dst: M(2), src: M(1) }));
    } finally {
      unsubscribe('overlay.dataplane.drop', listen);
    }
    a.dev.inject(buildFrame({ dst: M(2), src: M(1) }));
    expect(events).toEqual([
      { reason: 'frame_too_big', scope: VNI, count: 1 },
      { reason: 'no_flood_vtep', scope: VNI, count: 1 },
    ]);
    expect(a.dp.stats().drops).toMatchObject({ frame_too_big: 2, no_flood_vtep: 2 });
  });

  it('drops frames without room for the VXLAN header as no_headroom', async () => {
    const net = createTestnet();
    const a = node(net, 1, { pool: new BufferPool({ count: 4, headroom: 4 }) });
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    a.dev.inject(buildFrame({ dst: M(2), src: M(1) }));
    await net.idle();
    expect(a.dp.stats().drops.no_headroom).toBe(1);
  });
});

describe('IPv6 underlay', () => {
  it('sends to and learns from IPv6 VTEPs', async () => {
    const net = createTestnet({ capture: true });
    const mk = (addr: string, n: number) => {
      const dev = createMemoryDevice({ name: `v6${n}` });
      const dp = createDataplane({ transport: net.transport(addr), networks: [{ vni: VNI, device: dev, learning: true }] });
      dp.start();
      open.push(dp);
      return { dp, dev };
    };
    const a = mk('2001:db8::1', 1);
    const b = mk('2001:db8::2', 2);
    a.dp.setFdb(VNI, M(2), { address: '2001:db8::2', port: 4789 });
    const f = buildFrame({ dst: M(2), src: M(1) });
    a.dev.inject(f);
    await net.idle();
    expect(b.dev.received).toEqual([f]);
    expect(net.captured[0].to).toEqual({ address: '2001:db8::2', port: 4789 });
    expect(b.dp.fdb(VNI)).toEqual([{ mac: M(1), vtep: { address: '2001:db8::1', port: 4789 }, kind: 'learned' }]);
  });
});

describe('control API', () => {
  it('validates input with typed errors', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    expect(() => a.dp.setFdb(VNI, 'nope', { address: U(2) })).toThrow(InvalidAddressError);
    expect(() => a.dp.setFdb(VNI, 'ff:ff:ff:ff:ff:ff', { address: U(2) })).toThrow(InvalidAddressError);
    expect(() => a.dp.setFdb(VNI, M(2), { address: 'example.com' })).toThrow(InvalidConfigError);
    expect(() => a.dp.setFdb(VNI, M(2), { address: U(2), port: 70000 })).toThrow(InvalidConfigError);
    expect(() => a.dp.setFdb(99, M(2), { address: U(2) })).toThrow(UnknownNetworkError);
    expect(() => a.dp.setNeighbour(VNI, '198.19.0.300', M(2))).toThrow(InvalidAddressError);
    expect(() => a.dp.setNeighbour(VNI, '198.19.0.3', 'zz')).toThrow(InvalidAddressError);
    expect(() => a.dp.addNetwork({ vni: VNI, device: createMemoryDevice({ name: 'x' }) })).toThrow(DuplicateNetworkError);
    expect(() => a.dp.addNetwork({ vni: 1 << 24, device: createMemoryDevice({ name: 'x' }) })).toThrow(InvalidConfigError);
    expect(() => a.dp.addNetwork({ vni: 1, device: createMemoryDevice({ name: 'x' }), unknownUnicast: 'maybe' as 'drop' })).toThrow(InvalidConfigError);
    expect(() => createDataplane({ transport: net.transport(U(5)), batchSize: 0 })).toThrow(InvalidConfigError);
    try {
      a.dp.setFdb(99, M(2), { address: U(2) });
    } catch (e) {
      expect((e as UnknownNetworkError).code).toBe('OVL_ERR_UNKNOWN_NETWORK');
    }
  });

  it('removes a network: its device is closed and its VNI becomes unknown', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const b = node(net, 2);
    b.dp.setFdb(VNI, M(1), { address: U(1) });
    a.dp.removeNetwork(VNI);
    expect(a.dev.isClosed).toBe(true);
    b.dev.inject(buildFrame({ dst: M(1), src: M(2) }));
    await net.idle();
    expect(a.dp.stats().drops.unknown_vni).toBe(1);
    const dev2 = createMemoryDevice({ name: 'again' });
    a.dp.addNetwork({ vni: VNI, device: dev2 });
    b.dev.inject(buildFrame({ dst: M(1), src: M(2) }));
    await net.idle();
    expect(dev2.received).toHaveLength(1);
  });

  it('throws ClosedError after close and closes devices and transport', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    await a.dp.close();
    expect(a.dev.isClosed).toBe(true);
    expect(() => a.dp.setFdb(VNI, M(2), { address: U(2) })).toThrow(ClosedError);
    expect(() => a.dp.start()).toThrow(ClosedError);
    // The address is free again: the transport was closed and unbound.
    expect(() => net.transport(U(1))).not.toThrow();
  });
});
