import { readU32, writeU32 } from './bytes.js';
import { internetChecksum } from './checksum.js';
import { Status, rangeOk } from './status.js';

export const IPV4_HEADER_LENGTH = 20;
export const IPV6_HEADER_LENGTH = 40;
export const IPPROTO_UDP = 17;

/**
 * A decoded IPv4 header (RFC 791). Create once and reuse. Addresses are uint32. Options, if
 * any, stay in the buffer: `headerLength` says where the payload begins.
 */
export class Ipv4Header {
  /** Header length in 32-bit words (5..15). */
  ihl = 5;
  dscp = 0;
  ecn = 0;
  totalLength = 0;
  identification = 0;
  /** The 3 flag bits (bit 1 = DF, bit 0 = MF). */
  flags = 0;
  fragmentOffset = 0;
  ttl = 64;
  protocol = 0;
  checksum = 0;
  src = 0;
  dst = 0;
  headerLength = IPV4_HEADER_LENGTH;
}

/** A decoded IPv6 fixed header (RFC 8200). Create once and reuse; the address arrays are reused. */
export class Ipv6Header {
  trafficClass = 0;
  flowLabel = 0;
  payloadLength = 0;
  nextHeader = 0;
  hopLimit = 64;
  readonly src = new Uint8Array(16);
  readonly dst = new Uint8Array(16);
}

/**
 * Decode the IPv4 header at buf[off] (`len` bytes of packet available). Statuses:
 * `ipv4_too_short`, `ipv4_bad_version`, `ipv4_bad_ihl`, `ipv4_bad_total_length` (shorter than
 * the header), `ipv4_truncated` (longer than the bytes available), `ipv4_bad_checksum` (only
 * when `verifyChecksum`), `bad_range`.
 */
export function decodeIpv4(buf: Uint8Array, off: number, len: number, out: Ipv4Header, verifyChecksum = false): number {
  if (!rangeOk(buf, off, len)) return Status.bad_range;
  if (len < IPV4_HEADER_LENGTH) return Status.ipv4_too_short;
  const vihl = buf[off];
  if (vihl >>> 4 !== 4) return Status.ipv4_bad_version;
  const ihl = vihl & 15;
  if (ihl < 5) return Status.ipv4_bad_ihl;
  const hlen = ihl * 4;
  const total = (buf[off + 2] << 8) | buf[off + 3];
  if (total < hlen) return Status.ipv4_bad_total_length;
  if (total > len) return Status.ipv4_truncated;
  if (verifyChecksum && internetChecksum(buf, off, hlen) !== 0) return Status.ipv4_bad_checksum;
  out.ihl = ihl;
  out.headerLength = hlen;
  out.dscp = buf[off + 1] >>> 2;
  out.ecn = buf[off + 1] & 3;
  out.totalLength = total;
  out.identification = (buf[off + 4] << 8) | buf[off + 5];
  const ff = (buf[off + 6] << 8) | buf[off + 7];
  out.flags = ff >>> 13;
  out.fragmentOffset = ff & 0x1fff;
  out.ttl = buf[off + 8];
  out.protocol = buf[off + 9];
  out.checksum = (buf[off + 10] << 8) | buf[off + 11];
  out.src = readU32(buf, off + 12);
  out.dst = readU32(buf, off + 16);
  return Status.OK;
}

/**
 * Write a 20-byte header (no options; `ihl`, `headerLength` and `checksum` of `h` are
 * ignored) with a correct checksum. Returns 20 or `Status.bad_range`.
 */
export function encodeIpv4(buf: Uint8Array, off: number, h: Ipv4Header): number {
  if (!rangeOk(buf, off, IPV4_HEADER_LENGTH)) return Status.bad_range;
  buf[off] = 0x45;
  buf[off + 1] = ((h.dscp & 63) << 2) | (h.ecn & 3);
  buf[off + 2] = h.totalLength >>> 8;
  buf[off + 3] = h.totalLength;
  buf[off + 4] = h.identification >>> 8;
  buf[off + 5] = h.identification;
  const ff = ((h.flags & 7) << 13) | (h.fragmentOffset & 0x1fff);
  buf[off + 6] = ff >>> 8;
  buf[off + 7] = ff;
  buf[off + 8] = h.ttl;
  buf[off + 9] = h.protocol;
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  writeU32(buf, off + 12, h.src);
  writeU32(buf, off + 16, h.dst);
  const c = internetChecksum(buf, off, IPV4_HEADER_LENGTH);
  buf[off + 10] = c >>> 8;
  buf[off + 11] = c;
  return IPV4_HEADER_LENGTH;
}

/**
 * Decode the IPv6 fixed header at buf[off]. Statuses: `ipv6_too_short`, `ipv6_bad_version`,
 * `ipv6_truncated` (payload length beyond the bytes available), `bad_range`. A payload length
 * of 0 (jumbogram) is accepted.
 */
export function decodeIpv6(buf: Uint8Array, off: number, len: number, out: Ipv6Header): number {
  if (!rangeOk(buf, off, len)) return Status.bad_range;
  if (len < IPV6_HEADER_LENGTH) return Status.ipv6_too_short;
  if (buf[off] >>> 4 !== 6) return Status.ipv6_bad_version;
  const payload = (buf[off + 4] << 8) | buf[off + 5];
  if (IPV6_HEADER_LENGTH + payload > len) return Status.ipv6_truncated;
  out.trafficClass = ((buf[off] & 15) << 4) | (buf[off + 1] >>> 4);
  out.flowLabel = ((buf[off + 1] & 15) << 16) | (buf[off + 2] << 8) | buf[off + 3];
  out.payloadLength = payload;
  out.nextHeader = buf[off + 6];
  out.hopLimit = buf[off + 7];
  for (let i = 0; i < 16; i++) {
    out.src[i] = buf[off + 8 + i];
    out.dst[i] = buf[off + 24 + i];
  }
  return Status.OK;
}

/** Write the 40-byte fixed header. Returns 40 or `Status.bad_range`. */
export function encodeIpv6(buf: Uint8Array, off: number, h: Ipv6Header): number {
  if (!rangeOk(buf, off, IPV6_HEADER_LENGTH)) return Status.bad_range;
  const tc = h.trafficClass & 0xff;
  const fl = h.flowLabel & 0xfffff;
  buf[off] = 0x60 | (tc >>> 4);
  buf[off + 1] = ((tc & 15) << 4) | (fl >>> 16);
  buf[off + 2] = fl >>> 8;
  buf[off + 3] = fl;
  buf[off + 4] = h.payloadLength >>> 8;
  buf[off + 5] = h.payloadLength;
  buf[off + 6] = h.nextHeader;
  buf[off + 7] = h.hopLimit;
  for (let i = 0; i < 16; i++) {
    buf[off + 8 + i] = h.src[i];
    buf[off + 24 + i] = h.dst[i];
  }
  return IPV6_HEADER_LENGTH;
}
