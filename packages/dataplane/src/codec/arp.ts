import { readI32, readU32, writeU32 } from './bytes.js';
import { readMac, readMacHi, readMacLo, writeMac, writeMacParts } from './mac.js';
import { Status, rangeOk } from './status.js';

/** ARP (RFC 826) for Ethernet and IPv4: the only combination an Ethernet overlay needs. */
export const ARP_LENGTH = 28;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

/** A decoded ARP packet. Create once and reuse. MACs are 48-bit numbers, IPs uint32. */
export class ArpPacket {
  op = 0;
  /** Sender hardware (MAC) and protocol (IPv4) address. */
  sha = 0;
  spa = 0;
  /** Target hardware and protocol address. */
  tha = 0;
  tpa = 0;
}

/**
 * Decode the ARP packet at buf[off] (`len` bytes available, trailing padding allowed) into
 * `out`. Statuses: `arp_too_short`, `arp_unsupported` (not Ethernet/IPv4), `bad_range`.
 */
export function decodeArp(buf: Uint8Array, off: number, len: number, out: ArpPacket): number {
  if (!rangeOk(buf, off, len)) return Status.bad_range;
  if (len < ARP_LENGTH) return Status.arp_too_short;
  if (!isEthernetIpv4Arp(buf, off)) return Status.arp_unsupported;
  out.op = (buf[off + 6] << 8) | buf[off + 7];
  out.sha = readMac(buf, off + 8);
  out.spa = readU32(buf, off + 14);
  out.tha = readMac(buf, off + 18);
  out.tpa = readU32(buf, off + 24);
  return Status.OK;
}

/**
 * True when the ARP header at buf[off] is for Ethernet (htype 1, hlen 6) and IPv4 (ptype
 * 0x0800, plen 4). The caller guarantees 6 readable bytes. Never allocates.
 */
export function isEthernetIpv4Arp(buf: Uint8Array, off: number): boolean {
  return buf[off] === 0 && buf[off + 1] === 1 && buf[off + 2] === 0x08 && buf[off + 3] === 0 && buf[off + 4] === 6 && buf[off + 5] === 4;
}

/** Write `p` at buf[off]. Returns 28 or `Status.bad_range`. */
export function encodeArp(buf: Uint8Array, off: number, p: ArpPacket): number {
  if (!rangeOk(buf, off, ARP_LENGTH)) return Status.bad_range;
  buf[off] = 0;
  buf[off + 1] = 1;
  buf[off + 2] = 0x08;
  buf[off + 3] = 0x00;
  buf[off + 4] = 6;
  buf[off + 5] = 4;
  buf[off + 6] = p.op >>> 8;
  buf[off + 7] = p.op & 0xff;
  writeMac(buf, off + 8, p.sha);
  writeU32(buf, off + 14, p.spa);
  writeMac(buf, off + 18, p.tha);
  writeU32(buf, off + 24, p.tpa);
  return ARP_LENGTH;
}

/** Target protocol address of the (already validated) ARP packet at buf[arpOff], as int32. */
export function arpTargetIp(buf: Uint8Array, arpOff: number): number {
  return readI32(buf, arpOff + 24);
}

/**
 * Turn a validated ARP request frame into the reply in place: the answer for the target IP
 * is the MAC (`hi`, `lo` pair). Ethernet dst becomes the requester, src the answer; an
 * 802.1Q tag (arpOff - frameOff = 18) is kept. Returns the reply frame length (padding
 * trimmed; the device or kernel pads to the Ethernet minimum). Never allocates.
 */
export function rewriteArpRequestAsReply(buf: Uint8Array, frameOff: number, arpOff: number, hi: number, lo: number): number {
  const reqHi = readMacHi(buf, arpOff + 8);
  const reqLo = readMacLo(buf, arpOff + 8);
  const spa = readI32(buf, arpOff + 14);
  const tpa = readI32(buf, arpOff + 24);
  writeMacParts(buf, frameOff, reqHi, reqLo);
  writeMacParts(buf, frameOff + 6, hi, lo);
  buf[arpOff + 6] = 0;
  buf[arpOff + 7] = ARP_REPLY;
  writeMacParts(buf, arpOff + 8, hi, lo);
  writeU32(buf, arpOff + 14, tpa);
  writeMacParts(buf, arpOff + 18, reqHi, reqLo);
  writeU32(buf, arpOff + 24, spa);
  return arpOff - frameOff + ARP_LENGTH;
}
