import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tsharkFields } from './lib/capture.js';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { meshConfig, startVtep, type VtepProcess } from './lib/vtep.js';

// The same overlay over an IPv6 underlay (2001:db8::/64): VXLAN in UDP over IPv6.
describe('two hosts over an IPv6 underlay', () => {
  let tb: Testbed;
  let vteps: VtepProcess[] = [];
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, ipv6: true, prefix: 'dp6' });
    // TAP and UDP offloads off: this file also covers the plain one-packet-per-unit path end to end.
    const cfg = meshConfig(tb.hosts, [100], undefined, { ipv6: true }).map((c) => ({ ...c, gso: false, gro: false, tso: false }));
    vteps = await Promise.all(tb.hosts.map((h, i) => startVtep(h, cfg[i])));
  });
  afterAll(async () => {
    await Promise.all(vteps.map((v) => v.stop()));
    await tb?.destroy();
  });

  it('gives the overlay device the underlay MTU minus 70 (outer IPv6)', () => {
    expect(vteps.map((v) => v.networks[0].mtu)).toEqual([1430, 1430]);
  });

  it('pings both ways with VXLAN carried in IPv6, and moves TCP intact', async () => {
    const [a, b] = tb.hosts;
    const cap = await tsharkFields(b, 'ul0', 'udp port 4789', ['ipv6.src', 'ipv6.dst', 'vxlan.vni']);
    expect(await ping(a, '198.19.0.2')).toBe(3);
    expect(await ping(b, '198.19.0.1')).toBe(3);
    const rows = (await cap.stop()).map((l) => l.split('|'));
    expect(rows.some((r) => r[0] === a.underlay6 && r[1] === b.underlay6 && r[2] === '100')).toBe(true);
    expect(rows.some((r) => r[0] === b.underlay6 && r[1] === a.underlay6 && r[2] === '100')).toBe(true);
    // Full-size frames fit: 1430 + 70 = 1500.
    expect(await ping(a, '198.19.0.2', 2, ['-M', 'do', '-s', '1402'])).toBe(2);
    const r = await tcpTransfer(a, b, '198.19.0.2', 5006, 10 * 1024 * 1024);
    expect(r.received).toEqual(r.sent);
    expect(r.received.bytes).toBe(10 * 1024 * 1024);
  });
});
