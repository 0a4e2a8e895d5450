import { readMac, writeMac } from './mac.js';
import { Status, rangeOk } from './status.js';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;
/** Ethernet II header without and with one 802.1Q tag. */
export const ETHERNET_HEADER_LENGTH = 14;
export const ETHERNET_VLAN_HEADER_LENGTH = 18;

/**
 * A decoded Ethernet II header, optionally 802.1Q-tagged. Create once and reuse: decoders
 * overwrite every field. MACs are 48-bit numbers (see codec/mac.ts). Only one tag is parsed;
 * a stacked (QinQ) frame reports the inner TPID as its etherType. A value below 0x0600 is an
 * IEEE 802.3 length field, reported as-is (the dataplane forwards such frames unchanged).
 */
export class EthernetHeader {
  dst = 0;
  src = 0;
  /** VLAN id 0..4095, or -1 when untagged. */
  vlan = -1;
  /** 802.1Q priority code point (0 when untagged). */
  pcp = 0;
  /** 802.1Q drop eligible indicator, 0 or 1. */
  dei = 0;
  etherType = 0;
  /** Bytes of header: 14, or 18 with a tag; the payload starts there. */
  headerLength = ETHERNET_HEADER_LENGTH;
}

/** Decode the frame header at buf[off] (frame of `len` bytes) into `out`. Returns a status. */
export function decodeEthernet(buf: Uint8Array, off: number, len: number, out: EthernetHeader): number {
  if (!rangeOk(buf, off, len)) return Status.bad_range;
  if (len < ETHERNET_HEADER_LENGTH) return Status.ethernet_too_short;
  let type = (buf[off + 12] << 8) | buf[off + 13];
  if (type === ETHERTYPE_VLAN) {
    if (len < ETHERNET_VLAN_HEADER_LENGTH) return Status.ethernet_too_short;
    const tci = (buf[off + 14] << 8) | buf[off + 15];
    out.pcp = tci >>> 13;
    out.dei = (tci >>> 12) & 1;
    out.vlan = tci & 0xfff;
    type = (buf[off + 16] << 8) | buf[off + 17];
    out.headerLength = ETHERNET_VLAN_HEADER_LENGTH;
  } else {
    out.pcp = 0;
    out.dei = 0;
    out.vlan = -1;
    out.headerLength = ETHERNET_HEADER_LENGTH;
  }
  out.dst = readMac(buf, off);
  out.src = readMac(buf, off + 6);
  out.etherType = type;
  return Status.OK;
}

/** Write `h` at buf[off]. Returns the header length (14 or 18) or `Status.bad_range`. */
export function encodeEthernet(buf: Uint8Array, off: number, h: EthernetHeader): number {
  const n = h.vlan >= 0 ? ETHERNET_VLAN_HEADER_LENGTH : ETHERNET_HEADER_LENGTH;
  if (!rangeOk(buf, off, n)) return Status.bad_range;
  writeMac(buf, off, h.dst);
  writeMac(buf, off + 6, h.src);
  let p = off + 12;
  if (h.vlan >= 0) {
    const tci = ((h.pcp & 7) << 13) | ((h.dei & 1) << 12) | (h.vlan & 0xfff);
    buf[p++] = ETHERTYPE_VLAN >>> 8;
    buf[p++] = ETHERTYPE_VLAN & 0xff;
    buf[p++] = tci >>> 8;
    buf[p++] = tci & 0xff;
  }
  buf[p++] = h.etherType >>> 8;
  buf[p] = h.etherType & 0xff;
  return n;
}

/**
 * Offset of the payload and its etherType without a result object, for the hot path: returns
 * the header length (14/18) and leaves the type readable with `etherTypeAt`, or a status < 0.
 */
export function ethernetHeaderLength(buf: Uint8Array, off: number, len: number): number {
  if (!rangeOk(buf, off, len) || len < ETHERNET_HEADER_LENGTH) return Status.ethernet_too_short;
  if (((buf[off + 12] << 8) | buf[off + 13]) !== ETHERTYPE_VLAN) return ETHERNET_HEADER_LENGTH;
  return len < ETHERNET_VLAN_HEADER_LENGTH ? Status.ethernet_too_short : ETHERNET_VLAN_HEADER_LENGTH;
}

/** The etherType of a frame whose header is `headerLength` bytes (from ethernetHeaderLength). */
export function etherTypeAt(buf: Uint8Array, off: number, headerLength: number): number {
  return (buf[off + headerLength - 2] << 8) | buf[off + headerLength - 1];
}
