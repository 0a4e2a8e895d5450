/**
 * Internet checksum (RFC 1071) helpers: a 16-bit ones' complement sum over big-endian words.
 * Sums compose, so a pseudo-header sum can be passed as `initial` to the payload sum.
 */

/** Ones' complement sum (folded to 16 bits) of buf[off .. off+len), added to `initial`. */
export function onesComplementSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (len & 1) sum += buf[off + len - 1] << 8;
  // At most 2^31 bytes reach here in practice; fold until it fits in 16 bits.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return sum;
}

/** The checksum field value for buf[off .. off+len): ones' complement of the sum. */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~onesComplementSum(buf, off, len, initial) & 0xffff;
}

/** Sum of the IPv4 pseudo-header for UDP/TCP (src, dst as uint32). */
export function ipv4PseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  const s = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
  return (s & 0xffff) + (s >>> 16);
}

/** Sum of the IPv6 pseudo-header (RFC 8200 §8.1): 16-byte src and dst at the given offsets. */
export function ipv6PseudoHeaderSum(buf: Uint8Array, srcOff: number, dstOff: number, nextHeader: number, length: number): number {
  let s = onesComplementSum(buf, srcOff, 16, 0);
  s = onesComplementSum(buf, dstOff, 16, s);
  s += (length >>> 16) + (length & 0xffff) + nextHeader;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * UDP checksum over IPv4 for the UDP header + payload at buf[off .. off+len), whose checksum
 * field must be zero while computing. A result of 0 is sent as 0xffff (RFC 768).
 */
export function udpChecksumIpv4(buf: Uint8Array, off: number, len: number, src: number, dst: number): number {
  const c = internetChecksum(buf, off, len, ipv4PseudoHeaderSum(src, dst, 17, len));
  return c === 0 ? 0xffff : c;
}

/**
 * UDP checksum over IPv6 (RFC 8200 §8.1) for the UDP header + payload at buf[off .. off+len),
 * checksum field zero while computing; the 16-byte src and dst are at srcOff and dstOff.
 * A result of 0 is sent as 0xffff.
 */
export function udpChecksumIpv6(buf: Uint8Array, off: number, len: number, srcOff: number, dstOff: number): number {
  const c = internetChecksum(buf, off, len, ipv6PseudoHeaderSum(buf, srcOff, dstOff, 17, len));
  return c === 0 ? 0xffff : c;
}
