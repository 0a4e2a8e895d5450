import { InvalidAddressError } from '../errors.js';

/**
 * MAC addresses as numbers. A MAC is 48 bits: as one JS number (exact below 2^53) for the
 * control API and decoded headers, and as a (hi16, lo32) pair of small integers on the hot
 * path, where `lo` is the low 32 bits as a *signed* int32 so V8 keeps it unboxed and a
 * lookup never allocates a heap number.
 */
export const BROADCAST_MAC = 0xffff_ffff_ffff;

const MAC_RE = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i;

/** Parse 'aa:bb:cc:dd:ee:ff' (or with '-') into a 48-bit number. Throws InvalidAddressError. */
export function parseMac(text: string): number {
  const m = typeof text === 'string' ? MAC_RE.exec(text) : null;
  if (!m) throw new InvalidAddressError('MAC address', String(text));
  let n = 0;
  for (let i = 1; i <= 6; i++) n = n * 256 + parseInt(m[i], 16);
  return n;
}

/** A MAC as the control API takes it: text, a 48-bit number (as `parseMac` returns), or 6 bytes. */
export type MacInput = string | number | Uint8Array;

/**
 * A MAC in any control-API form as a 48-bit number. A number must be an integer in 0..2^48-1, a
 * byte array exactly 6 bytes long (read, not kept). Throws InvalidAddressError.
 */
export function toMac(mac: MacInput): number {
  if (typeof mac === 'number') {
    if (Number.isInteger(mac) && mac >= 0 && mac <= BROADCAST_MAC) return mac;
    throw new InvalidAddressError('MAC address (48-bit number)', String(mac));
  }
  if (mac instanceof Uint8Array) {
    if (mac.length === 6) return readMac(mac, 0);
    throw new InvalidAddressError('MAC address (6 bytes)', describeBytes(mac));
  }
  return parseMac(mac);
}

/** Bytes for an error message: length and hex, e.g. 'Uint8Array(5) 0a0b0c0d0e'. */
export function describeBytes(b: Uint8Array): string {
  let hex = '';
  for (let i = 0; i < b.length && i < 24; i++) hex += b[i].toString(16).padStart(2, '0');
  return `Uint8Array(${b.length}) ${hex}`;
}

/** Format a 48-bit number as lowercase 'aa:bb:cc:dd:ee:ff'. */
export function formatMac(mac: number): string {
  const parts: string[] = [];
  for (let i = 5; i >= 0; i--) parts.push((Math.floor(mac / 2 ** (8 * i)) & 0xff).toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** High 16 bits of a 48-bit MAC number. */
export function macHi(mac: number): number {
  return Math.floor(mac / 4294967296) & 0xffff;
}

/** Low 32 bits of a 48-bit MAC number, as a signed int32. */
export function macLo(mac: number): number {
  return mac | 0;
}

/** Join a (hi16, lo32) pair back into a 48-bit number. */
export function macJoin(hi: number, lo: number): number {
  return hi * 4294967296 + (lo >>> 0);
}

/** High 16 bits of the MAC at buf[off]. Caller guarantees 6 readable bytes. */
export function readMacHi(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}

/** Low 32 bits (signed int32) of the MAC at buf[off]. Caller guarantees 6 readable bytes. */
export function readMacLo(buf: Uint8Array, off: number): number {
  return (buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5];
}

/** The MAC at buf[off] as a 48-bit number. */
export function readMac(buf: Uint8Array, off: number): number {
  return macJoin(readMacHi(buf, off), readMacLo(buf, off));
}

/** Write a MAC given as a (hi16, lo32) pair at buf[off]. */
export function writeMacParts(buf: Uint8Array, off: number, hi: number, lo: number): void {
  buf[off] = hi >>> 8;
  buf[off + 1] = hi;
  buf[off + 2] = lo >>> 24;
  buf[off + 3] = lo >>> 16;
  buf[off + 4] = lo >>> 8;
  buf[off + 5] = lo;
}

/** Write a 48-bit MAC number at buf[off]. */
export function writeMac(buf: Uint8Array, off: number, mac: number): void {
  writeMacParts(buf, off, macHi(mac), macLo(mac));
}

/** True for group (multicast/broadcast) addresses: the I/G bit of the first octet. */
export function isGroupMac(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 1) === 1;
}
