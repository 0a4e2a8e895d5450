import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tsharkFields } from './lib/capture.js';
import { addKernelVtep } from './lib/kernel-vtep.js';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { endpointMac, startVtep, type VtepProcess } from './lib/vtep.js';

// Interop: host 1 runs our userspace dataplane, host 2 the Linux kernel's vxlan device with
// static `bridge fdb` entries. Same VNI, standard port 4789.
describe('interop with the Linux kernel vxlan device', () => {
  let tb: Testbed;
  let vtep: VtepProcess | undefined;
  const ours = endpointMac(1, 0);
  const kernel = endpointMac(2, 0);
  const VNI = 4242;

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'kvx' });
    const [h1, h2] = tb.hosts;
    await addKernelVtep(h2, { vni: VNI, local: h2.underlay, mac: kernel, mtu: 1450, address: '198.19.0.2/24', peer: h1.underlay, macs: [ours] });
    vtep = await startVtep(h1, {
      address: h1.underlay,
      networks: [
        {
          vni: VNI, tap: 'vx0', mac: ours, addresses: ['198.19.0.1/24'],
          fdb: [{ mac: kernel, vtep: h2.underlay }], flood: [h2.underlay],
          // No neighbour entry: ARP goes over the wire so the kernel must answer it.
          arpSuppression: false,
        },
      ],
    });
  });
  afterAll(async () => {
    await vtep?.stop();
    await tb?.destroy();
  });

  it('pings both ways, and the underlay carries well-formed VXLAN both ways', async () => {
    const [h1, h2] = tb.hosts;
    const cap = await tsharkFields(h2, 'ul0', 'udp port 4789', ['ip.src', 'ip.dst', 'udp.dstport', 'vxlan.flags', 'vxlan.vni', 'eth.type', 'icmp.type', '_ws.malformed']);
    expect(await ping(h1, '198.19.0.2')).toBe(3);
    expect(await ping(h2, '198.19.0.1')).toBe(3);
    // Fields: outer,inner for ip.src/ip.dst/eth.type (tshark joins repeats with ',').
    const rows = (await cap.stop()).map((l) => {
      const [src, dst, port, flags, vni, etype, icmpType, malformed] = l.split('|');
      return { src: src.split(',')[0], dst: dst.split(',')[0], port, flags, vni, inner: etype.split(',').pop(), icmp: icmpType, malformed };
    });
    const echo = (src: string, dst: string) => rows.filter((r) => r.src === src && r.dst === dst && r.icmp !== '');
    // Requests one way and replies the other, for pings started from each side: 6 each way.
    expect(echo(h1.underlay, h2.underlay).length, JSON.stringify(rows)).toBeGreaterThanOrEqual(6);
    expect(echo(h2.underlay, h1.underlay).length, JSON.stringify(rows)).toBeGreaterThanOrEqual(6);
    for (const r of rows) {
      expect(r.port).toBe('4789');
      expect(Number(r.flags)).toBe(0x0800); // only the I flag (tshark shows the 16 flag bits)
      expect(Number(r.vni)).toBe(VNI);
      expect(r.malformed).toBe(''); // nothing tshark calls malformed
      expect(['0x0800', '0x0806', '0x86dd']).toContain(r.inner); // IPv4, ARP, IPv6 (link-local ND)
    }
    // ARP crossed in both directions: with suppression off, each side resolved the other over VXLAN.
    expect(rows.some((r) => r.inner === '0x0806' && r.src === h1.underlay)).toBe(true);
    expect(rows.some((r) => r.inner === '0x0806' && r.src === h2.underlay)).toBe(true);
  });

  it('carries TCP both ways with matching checksums', async () => {
    const [h1, h2] = tb.hosts;
    const there = await tcpTransfer(h1, h2, '198.19.0.2', 5003, 20 * 1024 * 1024);
    expect(there.received).toEqual(there.sent);
    expect(there.received.bytes).toBe(20 * 1024 * 1024);
    const back = await tcpTransfer(h2, h1, '198.19.0.1', 5004, 20 * 1024 * 1024);
    expect(back.received).toEqual(back.sent);
    const s = await vtep!.stats();
    expect(s.dataplane.drops.unknown_vni + s.dataplane.drops.vxlan_no_i_flag + s.dataplane.drops.frame_malformed).toBe(0);
  });
});
