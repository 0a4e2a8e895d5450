import { internetChecksum, ipv6PseudoHeaderSum } from './checksum.js';
import { writeMacParts } from './mac.js';

/**
 * IPv6 Neighbor Discovery (RFC 4861) pieces for ND suppression: recognise a Neighbor
 * Solicitation and turn it into the Neighbor Advertisement in place, like ARP for IPv4.
 */
export const IPPROTO_ICMPV6 = 58;
export const ND_NEIGHBOR_SOLICITATION = 135;
export const ND_NEIGHBOR_ADVERTISEMENT = 136;
/** IPv6 header + NA (4 + 4 + 16) + target link-layer address option (8). */
export const ND_ADVERTISEMENT_LENGTH = 40 + 32;

/**
 * If the IPv6 packet at buf[ipOff .. end) is a valid Neighbor Solicitation (ICMPv6 type 135,
 * code 0, hop limit 255, no extension headers, not from the unspecified address — duplicate
 * address detection is left alone), return the offset of its 16-byte target address; else -1.
 * Never reads outside [ipOff, end).
 */
export function neighborSolicitationTarget(buf: Uint8Array, ipOff: number, end: number): number {
  if (ipOff < 0 || end > buf.length || end - ipOff < 40 + 24) return -1;
  if (buf[ipOff] >>> 4 !== 6 || buf[ipOff + 6] !== IPPROTO_ICMPV6 || buf[ipOff + 7] !== 255) return -1;
  const payload = (buf[ipOff + 4] << 8) | buf[ipOff + 5];
  if (payload < 24 || ipOff + 40 + payload > end) return -1;
  const icmp = ipOff + 40;
  if (buf[icmp] !== ND_NEIGHBOR_SOLICITATION || buf[icmp + 1] !== 0) return -1;
  let unspecified = true;
  for (let i = 0; i < 16; i++) if (buf[ipOff + 8 + i] !== 0) unspecified = false;
  if (unspecified) return -1;
  // Multicast targets are invalid in a solicitation (RFC 4861 §7.1.1).
  if (buf[icmp + 8] === 0xff) return -1;
  return icmp + 8;
}

/**
 * Rewrite a validated solicitation frame (Ethernet header at frameOff, IPv6 at ipOff) into the
 * advertisement that the owner of the target, MAC (hi, lo), would send: Ethernet to the
 * soliciting MAC; IPv6 from the target to the solicitor, hop limit 255; NA with the Solicited
 * and Override flags and a target link-layer address option; ICMPv6 checksum computed. The
 * caller guarantees ipOff + 72 bytes of room. Returns the frame length. Never allocates.
 */
export function rewriteSolicitationAsAdvertisement(buf: Uint8Array, frameOff: number, ipOff: number, hi: number, lo: number): number {
  // Ethernet: destination = the solicitor (old source), source = the answer.
  for (let i = 0; i < 6; i++) buf[frameOff + i] = buf[frameOff + 6 + i];
  writeMacParts(buf, frameOff + 6, hi, lo);
  const icmp = ipOff + 40;
  // IPv6: dst = old src, src = target.
  for (let i = 0; i < 16; i++) buf[ipOff + 24 + i] = buf[ipOff + 8 + i];
  for (let i = 0; i < 16; i++) buf[ipOff + 8 + i] = buf[icmp + 8 + i];
  buf[ipOff] = 0x60;
  buf[ipOff + 1] = 0;
  buf[ipOff + 2] = 0;
  buf[ipOff + 3] = 0;
  buf[ipOff + 4] = 0;
  buf[ipOff + 5] = 32;
  buf[ipOff + 6] = IPPROTO_ICMPV6;
  buf[ipOff + 7] = 255;
  // NA: type, code, checksum, flags S|O, reserved, target (kept), option 2 (target LL address).
  buf[icmp] = ND_NEIGHBOR_ADVERTISEMENT;
  buf[icmp + 1] = 0;
  buf[icmp + 2] = 0;
  buf[icmp + 3] = 0;
  buf[icmp + 4] = 0x60;
  buf[icmp + 5] = 0;
  buf[icmp + 6] = 0;
  buf[icmp + 7] = 0;
  buf[icmp + 24] = 2;
  buf[icmp + 25] = 1;
  writeMacParts(buf, icmp + 26, hi, lo);
  const c = internetChecksum(buf, icmp, 32, ipv6PseudoHeaderSum(buf, ipOff + 8, ipOff + 24, IPPROTO_ICMPV6, 32));
  buf[icmp + 2] = c >>> 8;
  buf[icmp + 3] = c;
  return ipOff - frameOff + ND_ADVERTISEMENT_LENGTH;
}
