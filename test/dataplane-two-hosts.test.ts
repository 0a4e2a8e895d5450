import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { meshConfig, startVtep, type VtepProcess } from './lib/vtep.js';

// Two namespace hosts, each running our dataplane over a real TAP and a recvmmsg/sendmmsg
// UDP socket, with static FDB and neighbour entries.
describe('two hosts over our VXLAN dataplane', () => {
  let tb: Testbed;
  let vteps: VtepProcess[] = [];
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'dp2' });
    const cfg = meshConfig(tb.hosts);
    vteps = await Promise.all(tb.hosts.map((h, i) => startVtep(h, cfg[i])));
  });
  afterAll(async () => {
    await Promise.all(vteps.map((v) => v.stop()));
    await tb?.destroy();
  });

  it('gives the overlay device the underlay MTU minus 50', () => {
    expect(vteps.map((v) => v.networks[0].mtu)).toEqual([1450, 1450]);
  });

  it('pings both ways', async () => {
    const [a, b] = tb.hosts;
    expect(await ping(a, '198.19.0.2')).toBe(3);
    expect(await ping(b, '198.19.0.1')).toBe(3);
    // The neighbour entry was answered locally (ARP suppression), not flooded.
    const s = await vteps[0].stats();
    expect(s.dataplane.inside.arpSuppressed).toBeGreaterThanOrEqual(1);
    expect(s.dataplane.outside.delivered).toBeGreaterThanOrEqual(3);
  });

  it('carries 100 MB of TCP with a matching checksum at the far end', async () => {
    const [a, b] = tb.hosts;
    const before = await vteps[1].stats();
    const r = await tcpTransfer(a, b, '198.19.0.2', 5001, 100 * 1024 * 1024, 120_000);
    expect(r.received.bytes).toBe(100 * 1024 * 1024);
    expect(r.received.sha256).toBe(r.sent.sha256);
    const after = await vteps[1].stats();
    // At least 100 MB / 1398 bytes of TCP payload per full-size frame went through the pipeline.
    expect(after.dataplane.outside.delivered - before.dataplane.outside.delivered).toBeGreaterThan(75_000);
    // And it arrived in batches: fewer recvmmsg calls than datagrams ...
    expect(after.transport.rxSyscalls - before.transport.rxSyscalls).toBeLessThan(after.transport.rxPackets - before.transport.rxPackets);
    // ... and went into the TAP coalesced: several TCP segments per write, none with a bad checksum.
    const tap = (s: typeof after) => s.devices.vx0;
    expect(tap(after).txSyscalls - tap(before).txSyscalls).toBeLessThan((tap(after).txPackets - tap(before).txPackets) / 2);
    expect(after.gro.vx0.badChecksum).toBe(0);
    // The sender read 64 KiB segments from its TAP and cut them itself (TSO).
    const sent = await vteps[0].stats();
    expect(sent.tso.vx0.segments).toBeGreaterThan(sent.tso.vx0.superFrames * 4);
    expect(sent.tso.vx0.malformed + sent.tso.vx0.poolDrops).toBe(0);
  }, 150_000);

  it('keeps TCP intact over a lossy underlay (2 % random loss each way)', async () => {
    const [a, b] = tb.hosts;
    await tb.netem(a, 'loss 2%');
    await tb.netem(b, 'loss 2%');
    try {
      const r = await tcpTransfer(b, a, '198.19.0.1', 5005, 5 * 1024 * 1024, 60_000);
      expect(r.received).toEqual(r.sent);
    } finally {
      await tb.clearNetem(a);
      await tb.clearNetem(b);
    }
  }, 90_000);

  it('stops cleanly on SIGTERM', async () => {
    const codes = await Promise.all(vteps.map((v) => v.stop()));
    expect(codes).toEqual([0, 0]);
    vteps = [];
  });
});
