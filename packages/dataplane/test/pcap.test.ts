import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDataplane, type Dataplane } from '@overlay/dataplane';
import { buildArpRequest, buildNeighborSolicitation, buildUdpFrame, createMemoryDevice, createTestnet, encodePcap, pcapFromWire, type WireDatagram } from '@overlay/dataplane/testing';

/**
 * Packets the dataplane produced, wrapped in the outer Ethernet/IP/UDP headers the kernel
 * would add, written as a pcap and dissected by tshark (installed by scripts/setup.sh).
 */
const dir = mkdtempSync(join(tmpdir(), 'dataplane-pcap-'));
const open: Dataplane[] = [];
afterAll(async () => {
  await Promise.all(open.map((d) => d.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function capture(addrA: string, addrB: string, vni: number, send: (inject: (f: Uint8Array) => void) => void): Promise<WireDatagram[]> {
  const net = createTestnet({ capture: true });
  const devA = createMemoryDevice({ name: 'pa' });
  const devB = createMemoryDevice({ name: 'pb' });
  const a = createDataplane({ transport: net.transport(addrA), networks: [{ vni, device: devA }] });
  const b = createDataplane({ transport: net.transport(addrB), networks: [{ vni, device: devB }] });
  open.push(a, b);
  a.setFdb(vni, '02:00:00:00:00:02', { address: addrB });
  a.addFloodVtep(vni, { address: addrB });
  a.start();
  b.start();
  send((f) => devA.inject(f));
  await net.idle();
  expect(devB.received.length).toBe(net.captured.length);
  return net.captured;
}

function tshark(file: string, fields: string[], filter?: string): string[][] {
  // Validate IP and UDP checksums so a wrong one shows up as an expert warning.
  const args = ['-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-r', file, '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  if (filter) args.push('-Y', filter);
  for (const f of fields) args.push('-e', f);
  const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  return out.trim().split('\n').filter(Boolean).map((l) => l.split('|'));
}

describe('pcap of dataplane output, dissected by tshark', () => {
  it('shows VXLAN with the right VNI and the inner MAC and IP addresses', async () => {
    const inner = buildUdpFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', src: '198.19.0.1', dst: '198.19.0.2', srcPort: 40000, dstPort: 7, payload: Buffer.from('hello overlay') });
    const v4 = await capture('198.18.0.1', '198.18.0.2', 0x123456, (inject) => {
      inject(inner);
      inject(buildArpRequest({ srcMac: '02:00:00:00:00:01', srcIp: '198.19.0.1', targetIp: '198.19.0.77' }));
    });
    const v6 = await capture('2001:db8::1', '2001:db8::2', 4242, (inject) => inject(inner));
    expect(v4).toHaveLength(2);
    const file = join(dir, 'dataplane.pcap');
    writeFileSync(file, pcapFromWire([...v4, ...v6]));

    const rows = tshark(file, ['frame.protocols', 'vxlan.vni', 'vxlan.flags', 'udp.dstport', 'eth.src', 'eth.dst', 'ip.src', 'ip.dst', 'ipv6.dst', 'arp.dst.proto_ipv4']);
    expect(rows).toHaveLength(3);
    const [uni, arp, six] = rows;
    // Unicast IPv4-in-VXLAN over IPv4: outer then inner Ethernet/IP.
    expect(uni[0]).toBe('eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:udp:echo');
    expect(uni[1]).toBe(String(0x123456));
    expect(Number(uni[2])).toBe(0x0800); // flags: only I set
    expect(uni[3]).toBe('4789,7');
    expect(uni[4].split(',')[1]).toBe('02:00:00:00:00:01');
    expect(uni[5].split(',')[1]).toBe('02:00:00:00:00:02');
    expect(uni[6]).toBe('198.18.0.1,198.19.0.1');
    expect(uni[7]).toBe('198.18.0.2,198.19.0.2');
    // Flooded ARP request: broadcast inner destination, same VNI.
    expect(arp[0]).toContain('vxlan:eth:ethertype:arp');
    expect(arp[1]).toBe(String(0x123456));
    expect(arp[5].split(',')[1]).toBe('ff:ff:ff:ff:ff:ff');
    expect(arp[9]).toBe('198.19.0.77');
    // Over an IPv6 underlay.
    expect(six[0]).toBe('eth:ethertype:ipv6:udp:vxlan:eth:ethertype:ip:udp:echo');
    expect(six[1]).toBe('4242');
    expect(six[8]).toBe('2001:db8::2');
    expect(six[6]).toBe('198.19.0.1');

    // No checksum or length problems anywhere (tshark's expert info would flag them).
    expect(tshark(file, ['frame.number'], '_ws.malformed || _ws.expert.severity >= warning')).toEqual([]);
  });

  it('produces ARP replies and neighbour advertisements that tshark accepts, checksums included', async () => {
    const net = createTestnet();
    const dev = createMemoryDevice({ name: 'nd' });
    const dp = createDataplane({ transport: net.transport('198.18.0.1'), networks: [{ vni: 1, device: dev }] });
    open.push(dp);
    dp.setNeighbour(1, '198.19.0.9', '02:00:00:00:00:09');
    dp.setNeighbour(1, '2001:db8:1::9', '02:00:00:00:00:09');
    dp.start();
    dev.inject(buildArpRequest({ srcMac: '02:00:00:00:00:01', srcIp: '198.19.0.1', targetIp: '198.19.0.9' }));
    dev.inject(buildNeighborSolicitation({ srcMac: '02:00:00:00:00:01', srcIp: '2001:db8:1::1', targetIp: '2001:db8:1::9' }));
    expect(dev.received).toHaveLength(2);
    const file = join(dir, 'suppression.pcap');
    writeFileSync(file, encodePcap(dev.received.map((data) => ({ data }))));
    const rows = tshark(file, ['frame.protocols', 'eth.dst', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'icmpv6.type', 'icmpv6.nd.na.target_address', 'icmpv6.opt.linkaddr', 'icmpv6.checksum.status', 'ipv6.dst']);
    expect(rows).toHaveLength(2);
    const [arp, na] = rows;
    expect(arp.slice(0, 5)).toEqual(['eth:ethertype:arp', '02:00:00:00:00:01', '2', '02:00:00:00:00:09', '198.19.0.9']);
    expect(na[0]).toBe('eth:ethertype:ipv6:icmpv6');
    expect(na[5]).toBe('136');
    expect(na[6]).toBe('2001:db8:1::9');
    expect(na[7]).toBe('02:00:00:00:00:09');
    expect(na[8]).toBe('1'); // checksum status: good
    expect(na[9]).toBe('2001:db8:1::1');
    expect(tshark(file, ['frame.number'], '_ws.malformed || _ws.expert.severity >= warning')).toEqual([]);
  });
});
