import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, exec, type Testbed } from './lib/testbed.js';
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
    await exec('ip', ['-n', h2.name, '-batch', '-'], {
      input:
        [
          `link add vxk type vxlan id ${VNI} dstport 4789 local ${h2.underlay6} dev ul0 nolearning`,
          `link set vxk address ${kernel} mtu 1430`,
          'addr add 198.19.0.2/24 dev vxk',
          'link set vxk up',
        ].join('\n') + '\n',
    });
    // veth passes checksum-offloaded packets on unfinished; our socket reads raw bytes.
    await h2.exec('ethtool', ['-K', 'ul0', 'tx', 'off']);
    await h2.exec('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', 'vxk', 'dst', h1.underlay6!]);
    await h2.exec('bridge', ['fdb', 'add', ours, 'dev', 'vxk', 'dst', h1.underlay6!]);
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
