import { parseIpv4Address } from '../codec/address.js';
import { ArpPacket, ARP_REQUEST, encodeArp } from '../codec/arp.js';
import { ETHERTYPE_ARP, EthernetHeader, encodeEthernet } from '../codec/ethernet.js';
import { BROADCAST_MAC, parseMac } from '../codec/mac.js';

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
