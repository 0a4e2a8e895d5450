import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { exec, createTestbed, waitForLine, type Testbed } from './lib/testbed.js';
import { tcpdump } from './lib/capture.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { endpointMac, repoRoot, startVtep, type HostConfig, type VtepProcess } from './lib/vtep.js';

const injector = fileURLToPath(new URL('./lib/inject-vxlan.ts', import.meta.url));

// Host 1 attaches its TAP to a Linux bridge with two endpoint namespaces behind it (as Docker's
// overlay attaches containers); host 2 has an endpoint on its TAP. Also: MTU enforcement and
// malformed VXLAN crafted with a raw socket.
describe('bridged endpoints, MTU and malformed input', () => {
  let tb: Testbed;
  let vteps: VtepProcess[] = [];
  const ep = ['198.19.0.11', '198.19.0.12'];
  const epMac = [endpointMac(1, 0x11), endpointMac(1, 0x12)];
  let epNs: string[] = [];

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'dpe' });
    const [h1, h2] = tb.hosts;
    // Host 1: a persistent TAP enslaved to br0, and two endpoints on veths into br0.
    const batch = ['tuntap add dev vx0 mode tap', 'link add br0 type bridge', 'link set vx0 master br0', 'link set br0 up'];
    epNs = [];
    for (let i = 0; i < 2; i++) {
      const ns = await tb.addNamespace(`ep${i}`);
      epNs.push(ns);
      batch.push(`link add e${i} mtu 1450 type veth peer name eth0 mtu 1450 netns ${ns}`, `link set e${i} master br0 up`);
    }
    await exec('ip', ['-n', h1.name, '-batch', '-'], { input: batch.join('\n') + '\n' });
    for (let i = 0; i < 2; i++) {
      await exec('ip', ['-n', epNs[i], '-batch', '-'], {
        input: [`link set eth0 address ${epMac[i]}`, `addr add ${ep[i]}/24 dev eth0`, 'link set eth0 up'].join('\n') + '\n',
      });
    }
    const cfg: HostConfig[] = [
      {
        address: h1.underlay,
        networks: [
          {
            vni: 42, tap: 'vx0',
            fdb: [{ mac: endpointMac(2, 0), vtep: h2.underlay }],
            neighbours: [{ ip: '198.19.0.2', mac: endpointMac(2, 0) }],
            flood: [h2.underlay],
          },
        ],
      },
      {
        address: h2.underlay,
        networks: [
          {
            vni: 42, tap: 'vx0', mac: endpointMac(2, 0), addresses: ['198.19.0.2/24'],
            fdb: epMac.map((mac) => ({ mac, vtep: h1.underlay })),
            neighbours: ep.map((ip, i) => ({ ip, mac: epMac[i] })),
            flood: [h1.underlay],
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

  const inNs = (ns: string) => ({
    name: ns,
    index: 0,
    underlay: '',
    underlayDevice: '',
    exec: (cmd: string, args: string[] = []) => exec('ip', ['netns', 'exec', ns, cmd, ...args]),
    run: (cmd: string, args: string[] = [], o?: { timeoutMs?: number }) => tb.hosts[0].run('ip', ['netns', 'exec', ns, cmd, ...args], o),
    spawn: (cmd: string, args: string[] = [], o = {}) => tb.hosts[0].spawn('ip', ['netns', 'exec', ns, cmd, ...args], o),
  });

  it('lets two endpoints behind one host reach an endpoint on another host, both ways', async () => {
    const [, h2] = tb.hosts;
    for (let i = 0; i < 2; i++) {
      expect(await ping(inNs(epNs[i]), '198.19.0.2')).toBe(3);
      expect(await ping(h2, ep[i])).toBe(3);
    }
    const r = await tcpTransfer(inNs(epNs[1]), h2, '198.19.0.2', 5002, 5 * 1024 * 1024);
    expect(r.received).toEqual(r.sent);
    // The endpoints also reach each other through the bridge, without the overlay.
    expect(await ping(inNs(epNs[0]), ep[1])).toBe(3);
  });

  it('drops (and counts) frames longer than the overlay MTU instead of fragmenting', async () => {
    const [, h2] = tb.hosts;
    expect(vteps[1].networks[0].mtu).toBe(1450);
    // A full-MTU packet with DF crosses: 1450 + 50 fills the 1500-byte underlay exactly.
    expect(await ping(h2, ep[0], 2, ['-M', 'do', '-s', '1422'])).toBe(2);
    // Raise the TAP's MTU behind the dataplane's back: the kernel now hands it 1600-byte packets.
    await h2.exec('ip', ['link', 'set', 'dev', 'vx0', 'mtu', '2000']);
    try {
      const before = await vteps[1].stats();
      // Any IPv4 fragment on the underlay would show here.
      const frags = await tcpdump(h2, 'ul0', 'ip[6:2] & 0x3fff != 0');
      expect(await ping(h2, ep[0], 2, ['-M', 'do', '-s', '1572'])).toBe(0);
      const after = await vteps[1].stats();
      expect(after.dataplane.drops.frame_too_big - before.dataplane.drops.frame_too_big).toBe(2);
      expect(await frags.stop()).toEqual([]);
    } finally {
      await h2.exec('ip', ['link', 'set', 'dev', 'vx0', 'mtu', '1450']);
    }
  });

  it('counts malformed VXLAN datagrams from a raw socket as drops by reason', async () => {
    const [h1, h2] = tb.hosts;
    const frame = '02000000000102000000000208004500001c0000000040010000c6130002c6130001';
    const noIFlag = `00000000${'00002a00'}${frame}`; // flags 0: I bit clear
    const unknownVni = `08000000${'00077700'}${frame}`; // VNI 0x777
    const tooShort = '0800';
    const before = await vteps[1].stats();
    const child = h1.spawn(process.execPath, ['--conditions=source', '--import', 'tsx', injector, h2.underlay, '4789', noIFlag, unknownVni, tooShort], { cwd: repoRoot });
    await waitForLine(child, /^SENT 3/);
    const deadline = Date.now() + 5000;
    let after = await vteps[1].stats();
    while (after.dataplane.outside.datagrams - before.dataplane.outside.datagrams < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      after = await vteps[1].stats();
    }
    const d = (k: keyof typeof after.dataplane.drops) => after.dataplane.drops[k] - before.dataplane.drops[k];
    expect(d('vxlan_no_i_flag')).toBe(1);
    expect(d('unknown_vni')).toBe(1);
    expect(d('vxlan_too_short')).toBe(1);
    // Still healthy afterwards.
    expect(await ping(h2, ep[0], 1)).toBe(1);
  });
});
