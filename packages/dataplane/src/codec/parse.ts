import type { DecodeError } from '../errors.js';
import { ArpPacket, decodeArp } from './arp.js';
import { EthernetHeader, decodeEthernet } from './ethernet.js';
import { Ipv4Header, Ipv6Header, decodeIpv4, decodeIpv6 } from './ip.js';
import { decodeError } from './status.js';
import { decodeVxlan } from './vxlan.js';

/**
 * Allocating convenience decoders for embedders, tools and tests: each returns a fresh value
 * or a typed `DecodeError` (returned, not thrown). The pipeline uses the `decode*` functions.
 */

export function parseVxlan(bytes: Uint8Array): { vni: number } | DecodeError {
  const r = decodeVxlan(bytes, 0, bytes.length);
  return r < 0 ? decodeError(r) : { vni: r };
}

export function parseEthernet(bytes: Uint8Array): EthernetHeader | DecodeError {
  const h = new EthernetHeader();
  const r = decodeEthernet(bytes, 0, bytes.length, h);
  return r < 0 ? decodeError(r) : h;
}

export function parseArp(bytes: Uint8Array): ArpPacket | DecodeError {
  const p = new ArpPacket();
  const r = decodeArp(bytes, 0, bytes.length, p);
  return r < 0 ? decodeError(r) : p;
}

export function parseIpv4(bytes: Uint8Array, verifyChecksum = false): Ipv4Header | DecodeError {
  const h = new Ipv4Header();
  const r = decodeIpv4(bytes, 0, bytes.length, h, verifyChecksum);
  return r < 0 ? decodeError(r) : h;
}

export function parseIpv6(bytes: Uint8Array): Ipv6Header | DecodeError {
  const h = new Ipv6Header();
  const r = decodeIpv6(bytes, 0, bytes.length, h);
  return r < 0 ? decodeError(r) : h;
}
