import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { tcpdump } from './lib/capture.js';
import { ping } from './lib/transfer.js';
import { endpointMac, startVtep, type HostConfig, type VtepProcess } from './lib/vtep.js';

// Three hosts, two VNIs. Host 1 is on both (vx0: VNI 100, 198.19.0.1; vx1: VNI 200, 198.19.1.1),
// host 2 only on VNI 100 (198.19.0.2), host 3 only on VNI 200 (198.19.1.3).
// Host 2 is also misconfigured on purpose: it has 198.19.1.2/24 on its VNI 100 device and
// static entries that point host 3's VNI 200 MAC at host 3's VTEP. Only the VNI stands between
// them, so this shows the VNI isolates, not the addressing.
describe('three hosts, two VNIs', () => {
  let tb: Testbed;
  let vteps: VtepProcess[] = [];
  const mac = endpointMac;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 3, prefix: 'dpv' });
    const [h1, h2, h3] = tb.hosts;
    const cfg: HostConfig[] = [
      {
        address: h1.underlay,
        networks: [
          {
            vni: 100, tap: 'vx0', mac: mac(1, 0), addresses: ['198.19.0.1/24'],
            fdb: [{ mac: mac(2, 0), vtep: h2.underlay }], neighbours: [{ ip: '198.19.0.2', mac: mac(2, 0) }], flood: [h2.underlay],
          },
          {
            vni: 200, tap: 'vx1', mac: mac(1, 1), addresses: ['198.19.1.1/24'],
            fdb: [{ mac: mac(3, 1), vtep: h3.underlay }], neighbours: [{ ip: '198.19.1.3', mac: mac(3, 1) }], flood: [h3.underlay],
          },
        ],
      },
      {
        address: h2.underlay,
        networks: [
          {
            vni: 100, tap: 'vx0', mac: mac(2, 0), addresses: ['198.19.0.2/24', '198.19.1.2/24'],
            fdb: [{ mac: mac(1, 0), vtep: h1.underlay }, { mac: mac(3, 1), vtep: h3.underlay }],
            neighbours: [{ ip: '198.19.0.1', mac: mac(1, 0) }, { ip: '198.19.1.3', mac: mac(3, 1) }],
            flood: [h1.underlay, h3.underlay],
          },
        ],
      },
      {
        address: h3.underlay,
        networks: [
          {
            vni: 200, tap: 'vx1', mac: mac(3, 1), addresses: ['198.19.1.3/24'],
            fdb: [{ mac: mac(1, 1), vtep: h1.underlay }], neighbours: [{ ip: '198.19.1.1', mac: mac(1, 1) }], flood: [h1.underlay],
          },
        ],
      },
    ];
    vteps = await Promise.all(tb.hosts.map((h, i) => startVtep(h, cfg[i])));
  });
  afterAll(async () => {
    await Promise.all(vteps.map((v) => v.stop()));
    await tb?.destroy();
  });

  it('connects endpoints on the same VNI', async () => {
    const [h1, h2, h3] = tb.hosts;
    expect(await ping(h1, '198.19.0.2')).toBe(3);
    expect(await ping(h2, '198.19.0.1')).toBe(3);
    expect(await ping(h1, '198.19.1.3')).toBe(3);
    expect(await ping(h3, '198.19.1.1')).toBe(3);
  });

  it('passes nothing across VNIs, even with forwarding entries that point there', async () => {
    const [, h2, h3] = tb.hosts;
    const before = await vteps[2].stats();
    const cap = await tcpdump(h3, 'vx1', `ether src ${mac(2, 0)}`);
    expect(await ping(h2, '198.19.1.3', 3, ['-I', '198.19.1.2'])).toBe(0);
    const after = await vteps[2].stats();
    // Host 3 received host 2's VNI 100 datagrams and dropped every one as an unknown VNI ...
    expect(after.dataplane.drops.unknown_vni - before.dataplane.drops.unknown_vni).toBeGreaterThanOrEqual(3);
    // ... so no frame of host 2 reached host 3's VNI 200 device.
    expect(await ping(h3, '198.19.1.2')).toBe(0);
    expect(await cap.stop()).toEqual([]);
  });
});
