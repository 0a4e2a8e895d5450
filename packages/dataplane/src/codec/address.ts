import { isIPv4, isIPv6 } from 'node:net';
import { InvalidAddressError } from '../errors.js';
import { describeBytes } from './mac.js';

/** An IP address in binary: 4 or 16 bytes. Control-plane type; the hot path uses pool.addr. */
export interface IpBytes {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** Parse a dotted-quad IPv4 address into an unsigned 32-bit number. Throws InvalidAddressError. */
export function parseIpv4Address(text: string): number {
  if (typeof text !== 'string' || !isIPv4(text)) throw new InvalidAddressError('IPv4 address', String(text));
  const p = text.split('.');
  return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0;
}

/** Format an unsigned 32-bit number as dotted quad. */
export function formatIpv4Address(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Parse an IPv4 or IPv6 textual address. Throws InvalidAddressError. */
export function parseIpAddress(text: string): IpBytes {
  if (typeof text === 'string' && isIPv4(text)) {
    const n = parseIpv4Address(text);
    return { family: 4, bytes: Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255) };
  }
  // Zone ids (fe80::1%eth0) name a local interface and make no sense as a VTEP address.
  if (typeof text !== 'string' || !isIPv6(text) || text.includes('%')) throw new InvalidAddressError('IP address', String(text));
  let head = text;
  let tail = '';
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const groups = (s: string): number[] => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (g.includes('.')) {
        const n = parseIpv4Address(g);
        out.push(n >>> 16, n & 0xffff);
      } else out.push(parseInt(g, 16));
    }
    return out;
  };
  const h = groups(head);
  const t = groups(tail);
  const all = dbl >= 0 ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = all[i] >>> 8;
    bytes[2 * i + 1] = all[i] & 255;
  }
  return { family: 6, bytes };
}

/** An IP address as the control API takes it: text, or 4 (IPv4) or 16 (IPv6) bytes in network order. */
export type IpInput = string | Uint8Array;

/**
 * An IP address in any control-API form as IpBytes. Bytes are copied (the caller may reuse its
 * buffer); any length other than 4 or 16 throws InvalidAddressError, as does malformed text.
 */
export function toIpBytes(ip: IpInput): IpBytes {
  if (ip instanceof Uint8Array) {
    if (ip.length === 4) return { family: 4, bytes: Uint8Array.from(ip) };
    if (ip.length === 16) return { family: 6, bytes: Uint8Array.from(ip) };
    throw new InvalidAddressError('IP address (4 or 16 bytes)', describeBytes(ip));
  }
  return parseIpAddress(ip);
}

/** Format 4 or 16 bytes at buf[off] as an address (IPv6 compressed per RFC 5952). */
export function formatIpAddress(family: 4 | 6, buf: Uint8Array, off = 0): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]);
  // Longest run of two or more zero groups becomes '::' (first one on ties).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
