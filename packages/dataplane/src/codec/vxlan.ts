import { Status, rangeOk } from './status.js';

/**
 * VXLAN header (RFC 7348 §5), 8 bytes in front of the inner Ethernet frame:
 *
 *     0                   1                   2                   3
 *     |R|R|R|R|I|R|R|R|            Reserved (24 bits)                 |
 *     |                VXLAN Network Identifier (VNI) |   Reserved    |
 *
 * The I flag (0x08) must be set for a valid VNI. Reserved bits are written as zero and
 * ignored on receive. Encode and decode work in place on a buffer and offset.
 */
export const VXLAN_HEADER_LENGTH = 8;
/** IANA-assigned UDP destination port for VXLAN. */
export const VXLAN_PORT = 4789;
export const VXLAN_FLAG_I = 0x08;
export const MAX_VNI = 0xff_ffff;

/** True when `vni` is an integer in 0..2^24-1. */
export function isValidVni(vni: number): boolean {
  return Number.isInteger(vni) && vni >= 0 && vni <= MAX_VNI;
}

/**
 * Write the 8-byte header for `vni` at buf[off]. The caller guarantees 8 writable bytes (the
 * pipeline writes into pool headroom); use `encodeVxlanChecked` when it cannot.
 */
export function encodeVxlan(buf: Uint8Array, off: number, vni: number): void {
  buf[off] = VXLAN_FLAG_I;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = vni >>> 16;
  buf[off + 5] = vni >>> 8;
  buf[off + 6] = vni;
  buf[off + 7] = 0;
}

/** Like `encodeVxlan` but checks room and VNI: returns 8, or `Status.bad_range`. */
export function encodeVxlanChecked(buf: Uint8Array, off: number, vni: number): number {
  if (!rangeOk(buf, off, VXLAN_HEADER_LENGTH) || !isValidVni(vni)) return Status.bad_range;
  encodeVxlan(buf, off, vni);
  return VXLAN_HEADER_LENGTH;
}

/**
 * Decode the header at buf[off] of a datagram of `len` bytes. Returns the VNI (≥ 0), or a
 * negative status: `vxlan_too_short`, `vxlan_no_i_flag`, `bad_range`. Never allocates.
 */
export function decodeVxlan(buf: Uint8Array, off: number, len: number): number {
  if (!rangeOk(buf, off, len)) return Status.bad_range;
  if (len < VXLAN_HEADER_LENGTH) return Status.vxlan_too_short;
  if ((buf[off] & VXLAN_FLAG_I) === 0) return Status.vxlan_no_i_flag;
  return (buf[off + 4] << 16) | (buf[off + 5] << 8) | buf[off + 6];
}
