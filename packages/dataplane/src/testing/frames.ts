import { parseIpAddress, parseIpv4Address } from '../codec/address.js';
import { internetChecksum, ipv6PseudoHeaderSum } from '../codec/checksum.js';
import { IPPROTO_ICMPV6, ND_NEIGHBOR_SOLICITATION } from '../codec/nd.js';
import { ArpPacket, ARP_REQUEST, encodeArp } from '../codec/arp.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader, encodeEthernet } from '../codec/ethernet.js';
import { BROADCAST_MAC, parseMac, writeMac } from '../codec/mac.js';

export interface FrameOptions {
  dst: string;
  src: string;
  etherType?: number;
  /** 802.1Q VLAN id, if tagged. */
  vlan?: number;
  payload?: Uint8Array;
}

/** An Ethernet frame (test helper; allocates). */
export function buildFrame(o: FrameOptions): Buffer {
  const h = new EthernetHeader();
  h.dst = parseMac(o.dst);
  h.src = parseMac(o.src);
  h.vlan = o.vlan ?? -1;
  h.etherType = o.etherType ?? 0x88b5; // IEEE local experimental
  const payload = o.payload ?? new Uint8Array(46);
  const f = Buffer.alloc((h.vlan >= 0 ? 18 : 14) + payload.length);
  const n = encodeEthernet(f, 0, h);
  f.set(payload, n);
  return f;
}

/** A broadcast ARP request "who has `targetIp`? tell `srcIp`" from `srcMac`. */
export function buildArpRequest(o: { srcMac: string; srcIp: string; targetIp: string; vlan?: number }): Buffer {
  const p = new ArpPacket();
  p.op = ARP_REQUEST;
  p.sha = parseMac(o.srcMac);
  p.spa = parseIpv4Address(o.srcIp);
  p.tha = 0;
  p.tpa = parseIpv4Address(o.targetIp);
  const body = Buffer.alloc(28);
  encodeArp(body, 0, p);
  const h = new EthernetHeader();
  h.dst = BROADCAST_MAC;
  h.src = p.sha;
  h.vlan = o.vlan ?? -1;
  h.etherType = ETHERTYPE_ARP;
  const f = Buffer.alloc((h.vlan >= 0 ? 18 : 14) + 28);
  const n = encodeEthernet(f, 0, h);
  f.set(body, n);
  return f;
}

/**
 * An IPv6 Neighbor Solicitation from `srcMac`/`srcIp` (use '::' for duplicate address
 * detection) for `targetIp`, to the target's solicited-node multicast group, with a source
 * link-layer address option and a valid ICMPv6 checksum.
 */
export function buildNeighborSolicitation(o: { srcMac: string; srcIp: string; targetIp: string; vlan?: number }): Buffer {
  const src = parseIpAddress(o.srcIp).bytes;
  const target = parseIpAddress(o.targetIp).bytes;
  // Solicited-node multicast ff02::1:ffXX:XXXX and its MAC 33:33:ff:XX:XX:XX.
  const group = new Uint8Array(16);
  group.set([0xff, 0x02], 0);
  group.set([0x01, 0xff, target[13], target[14], target[15]], 11);
  const h = new EthernetHeader();
  h.dst = 0x3333ff000000 + target[13] * 65536 + target[14] * 256 + target[15];
  h.src = parseMac(o.srcMac);
  h.vlan = o.vlan ?? -1;
  h.etherType = ETHERTYPE_IPV6;
  const l2 = h.vlan >= 0 ? 18 : 14;
  const f = Buffer.alloc(l2 + 40 + 32);
  encodeEthernet(f, 0, h);
  const ip = l2;
  f[ip] = 0x60;
  f.writeUInt16BE(32, ip + 4);
  f[ip + 6] = IPPROTO_ICMPV6;
  f[ip + 7] = 255;
  f.set(src, ip + 8);
  f.set(group, ip + 24);
  const icmp = ip + 40;
  f[icmp] = ND_NEIGHBOR_SOLICITATION;
  f.set(target, icmp + 8);
  f[icmp + 24] = 1; // source link-layer address option
  f[icmp + 25] = 1;
  writeMac(f, icmp + 26, h.src);
  f.writeUInt16BE(internetChecksum(f, icmp, 32, ipv6PseudoHeaderSum(f, ip + 8, ip + 24, IPPROTO_ICMPV6, 32)), icmp + 2);
  return f;
}
