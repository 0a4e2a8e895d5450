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
 *
 * Group Policy extension (VXLAN-GBP, draft-smith-vxlan-group-policy; the Linux kernel's
 * `vxlan … gbp`): the G flag (0x80 in byte 0) says bytes 2–3 carry the sender's 16-bit Group
 * Policy ID; in byte 1, D (0x40) asks the receiver not to learn and A (0x08) says the policy was
 * already applied at the source.
 *
 *     |G|R|R|R|I|R|R|R|R|D|R|R|A|R|R|R|        Group Policy ID        |
 */
export const VXLAN_HEADER_LENGTH = 8;
/** IANA-assigned UDP destination port for VXLAN. */
export const VXLAN_PORT = 4789;
export const VXLAN_FLAG_I = 0x08;
/** GBP: the Group Policy ID field (bytes 2–3) is valid. */
export const VXLAN_FLAG_G = 0x80;
/** GBP, byte 1: don't learn the inner source. */
export const VXLAN_GBP_DONT_LEARN = 0x40;
/** GBP, byte 1: policy already applied at the source. */
export const VXLAN_GBP_APPLIED = 0x08;
/** Largest Group Policy ID (16 bits); the pipeline's "no group" is -1. */
export const MAX_GBP_ID = 0xffff;
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

/**
 * Write the 8-byte header with the GBP extension: I and G set, `group` (0..65535) in bytes 2–3,
 * `applied` sets the A bit. A negative `group` writes the plain header.
 */
export function encodeVxlanGbp(buf: Uint8Array, off: number, vni: number, group: number, applied: boolean): void {
  if (group < 0) {
    encodeVxlan(buf, off, vni);
    return;
  }
  buf[off] = VXLAN_FLAG_I | VXLAN_FLAG_G;
  buf[off + 1] = applied ? VXLAN_GBP_APPLIED : 0;
  buf[off + 2] = group >>> 8;
  buf[off + 3] = group;
  buf[off + 4] = vni >>> 16;
  buf[off + 5] = vni >>> 8;
  buf[off + 6] = vni;
  buf[off + 7] = 0;
}

/** The Group Policy ID of the header at buf[off] (0..65535), or -1 when the G flag is clear. */
export function decodeVxlanGroup(buf: Uint8Array, off: number): number {
  if ((buf[off] & VXLAN_FLAG_G) === 0) return -1;
  return (buf[off + 2] << 8) | buf[off + 3];
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
