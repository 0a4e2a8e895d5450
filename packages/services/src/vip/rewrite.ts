import { internetChecksum, ipv4PseudoHeaderSum, writeMacParts } from '@overlay/dataplane';

/**
 * In-place rewrites for the VIP translator: an IPv4 address and every checksum that covers it,
 * updated incrementally (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')), and the RST the translator
 * writes to a client whose backend went away.
 */

/** Adjust the 16-bit ones'-complement checksum at `at` for a 32-bit word changing `from` → `to`. */
export function checksumReplace32(d: Uint8Array, at: number, from: number, to: number): void {
  let s = ~((d[at] << 8) | d[at + 1]) & 0xffff;
  s += (~from >>> 16) & 0xffff;
  s += ~from & 0xffff;
  s += (to >>> 16) & 0xffff;
  s += to & 0xffff;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  s = ~s & 0xffff;
  d[at] = s >>> 8;
  d[at + 1] = s & 0xff;
}

function writeI32(d: Uint8Array, at: number, v: number): void {
  d[at] = v >>> 24;
  d[at + 1] = (v >>> 16) & 0xff;
  d[at + 2] = (v >>> 8) & 0xff;
  d[at + 3] = v & 0xff;
}

/**
 * Replace the IPv4 address at `l3 + addrAt` (12 source, 16 destination) with `to`, fixing the
 * header checksum and the TCP/UDP checksum (both cover the address through the pseudo-header;
 * a UDP checksum of 0 means none and stays 0, a computed 0 is sent as 0xffff). ICMP's checksum
 * does not cover the IP header: untouched. `l4` is the absolute offset of the L4 header. `v` views
 * the frame's bytes (the pool's DataView): each field is one bounds-checked access with a byte
 * swap, not two to four byte accesses shifted together.
 */
export function rewriteIpv4Address(v: DataView, l3: number, addrAt: number, from: number, to: number, proto: number, l4: number): void {
  v.setInt32(l3 + addrAt, to);
  // ~m + m' once, folded to 16 bits; added to each field that covers the address (RFC 1624 eqn. 3:
  // HC' = ~(~HC + delta)), written out twice rather than called: V8's inlining budget is spent by
  // then on the translator's hot path, and a call costs more than the arithmetic.
  let delta = ((~from >>> 16) & 0xffff) + (~from & 0xffff) + ((to >>> 16) & 0xffff) + (to & 0xffff);
  delta = (delta & 0xffff) + (delta >>> 16);
  let s = (~v.getUint16(l3 + 10) & 0xffff) + delta;
  s = (s & 0xffff) + (s >>> 16);
  v.setUint16(l3 + 10, ~((s & 0xffff) + (s >>> 16)));
  let at: number;
  if (proto === 6) at = l4 + 16;
  else if (proto === 17 && v.getUint16(l4 + 6) !== 0) at = l4 + 6;
  else return;
  s = (~v.getUint16(at) & 0xffff) + delta;
  s = (s & 0xffff) + (s >>> 16);
  s = ~((s & 0xffff) + (s >>> 16)) & 0xffff;
  // UDP: a computed 0 is sent as 0xffff (0 means no checksum).
  v.setUint16(at, s === 0 && proto === 17 ? 0xffff : s);
}

/** A MAC given as (hi16, lo32) at `off`: two stores. */
export function writeMacView(v: DataView, off: number, hi: number, lo: number): void {
  v.setUint16(off, hi);
  v.setInt32(off + 2, lo);
}

/** A DataView over all of `d`'s bytes (offsets in `d` are offsets in the view). */
export function viewOf(d: Uint8Array): DataView {
  return new DataView(d.buffer, d.byteOffset, d.byteLength);
}

export const RST_FRAME_LENGTH = 54;

/**
 * A TCP RST+ACK from `src:sport` to `dst:dport` as an untagged Ethernet frame of 54 bytes at
 * `d[off..]`, checksums complete. Control path (allocates nothing, but computes full sums).
 */
export function writeRst(
  d: Uint8Array, off: number,
  dstMacHi: number, dstMacLo: number, srcMacHi: number, srcMacLo: number,
  src: number, dst: number, sport: number, dport: number, seq: number, ack: number,
): number {
  writeMacParts(d, off, dstMacHi, dstMacLo);
  writeMacParts(d, off + 6, srcMacHi, srcMacLo);
  d[off + 12] = 0x08;
  d[off + 13] = 0x00;
  const ip = off + 14;
  d.fill(0, ip, ip + 40);
  d[ip] = 0x45;
  d[ip + 3] = 40; // total length
  d[ip + 6] = 0x40; // DF
  d[ip + 8] = 64; // TTL
  d[ip + 9] = 6;
  writeI32(d, ip + 12, src);
  writeI32(d, ip + 16, dst);
  const ipSum = internetChecksum(d, ip, 20);
  d[ip + 10] = ipSum >>> 8;
  d[ip + 11] = ipSum & 0xff;
  const tcp = ip + 20;
  d[tcp] = sport >>> 8;
  d[tcp + 1] = sport & 0xff;
  d[tcp + 2] = dport >>> 8;
  d[tcp + 3] = dport & 0xff;
  writeI32(d, tcp + 4, seq);
  writeI32(d, tcp + 8, ack);
  d[tcp + 12] = 0x50;
  d[tcp + 13] = 0x14; // RST | ACK
  const sum = internetChecksum(d, tcp, 20, ipv4PseudoHeaderSum(src >>> 0, dst >>> 0, 6, 20));
  d[tcp + 16] = sum >>> 8;
  d[tcp + 17] = sum & 0xff;
  return RST_FRAME_LENGTH;
}

/**
 * Adjust the 16-bit ones'-complement checksum at `at` for the 16 bytes at `old[oo..]` changing
 * to those at `to[no..]` (an IPv6 address in the pseudo-header). Call before overwriting.
 */
export function checksumReplace128(d: Uint8Array, at: number, old: Uint8Array, oo: number, to: Uint8Array, no: number): void {
  let s = ~((d[at] << 8) | d[at + 1]) & 0xffff;
  for (let i = 0; i < 16; i += 2) {
    s += ~((old[oo + i] << 8) | old[oo + i + 1]) & 0xffff;
    s += (to[no + i] << 8) | to[no + i + 1];
  }
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  s = ~s & 0xffff;
  d[at] = s >>> 8;
  d[at + 1] = s & 0xff;
}
