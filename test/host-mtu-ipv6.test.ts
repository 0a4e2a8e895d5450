import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addKernelVtep } from './lib/kernel-vtep.js';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { ping } from './lib/transfer.js';
import { endpointMac, startVtep, type VtepProcess } from './lib/vtep.js';

// The overlay MTU over an IPv6 underlay, at the byte: host 1 runs our host (openHost through the
// runner) bound to the dual-stack wildcard '::', host 2 a Linux kernel VXLAN device over IPv6.
// Outer IPv6 costs 70 bytes, so the overlay MTU is 1430 and the largest DF ping payload 1402
// (1430 − 20 IPv4 − 8 ICMP). One byte more must fail locally (EMSGSIZE at the TAP), not vanish
// on the underlay.
describe('overlay MTU over an IPv6 underlay, against a kernel VTEP', () => {
  let tb: Testbed;
  let vtep: VtepProcess | undefined;
  const VNI = 4343;
  const ours = endpointMac(1, 0);
  const kernel = endpointMac(2, 0);

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, ipv6: true, prefix: 'mtu6' });
    const [h1, h2] = tb.hosts;
    await addKernelVtep(h2, { vni: VNI, local: h2.underlay6!, mac: kernel, mtu: 1430, address: '198.19.0.2/24', peer: h1.underlay6!, macs: [ours] });
    vtep = await startVtep(h1, {
      address: '::',
      underlayDevice: 'ul0',
      networks: [
        {
          vni: VNI, tap: 'vx0', mac: ours, addresses: ['198.19.0.1/24'],
          fdb: [{ mac: kernel, vtep: h2.underlay6! }], flood: [h2.underlay6!],
          neighbours: [{ ip: '198.19.0.2', mac: kernel }],
        },
      ],
    });
  });
  afterAll(async () => {
    await vtep?.stop();
    await tb?.destroy();
  });

  it('gives the TAP the underlay MTU less 70', () => {
    expect(vtep!.networks[0].mtu).toBe(1430);
  });

  it('carries a DF ping of exactly the largest payload both ways; one byte more fails locally', async () => {
    const [h1, h2] = tb.hosts;
    expect(await ping(h1, '198.19.0.2', 2, ['-M', 'do', '-s', '1402'])).toBe(2);
    expect(await ping(h2, '198.19.0.1', 2, ['-M', 'do', '-s', '1402'])).toBe(2);
    const before = await vtep!.stats();
    const over = await h1.run('ping', ['-n', '-c', '2', '-i', '0.2', '-W', '1', '-M', 'do', '-s', '1403', '198.19.0.2'], { timeoutMs: 10_000 });
    expect(over.code).not.toBe(0);
    // The local stack refuses it against the TAP's MTU before anything is sent.
    expect(over.stdout + over.stderr).toMatch(/message too long/i);
    const after = await vtep!.stats();
    // Nothing reached the underlay socket too big for it (EMSGSIZE there would be a silent loss).
    expect(after.transport.txErrorsTooBig - before.transport.txErrorsTooBig).toBe(0);
    expect(after.dataplane.drops.frame_too_big - before.dataplane.drops.frame_too_big).toBe(0);
  });
});
