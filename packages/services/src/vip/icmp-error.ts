import { internetChecksum } from '@overlay/dataplane';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from './conntrack.js';
import { read32 } from './packet.js';
import { rewriteIpv4Address } from './rewrite.js';

/** ICMP error types whose body quotes the packet that caused them: unreachable (incl. frag-needed), time exceeded, parameter problem. */
export function isIcmpError(type: number): boolean {
  return type === 3 || type === 11 || type === 12;
}

/**
 * The packet quoted by an ICMP error at `l4` (message end `end`): IPv4 header + at least 8 bytes
 * of its L4 header. Fills `q` and returns true when it parses; reads nothing past `end`.
 */
export function quoted(d: Uint8Array, l4: number, end: number, q: Quoted): boolean {
  const inner = l4 + 8;
  if (inner + 20 > end || d[inner] >>> 4 !== 4) return false;
  const ihl = (d[inner] & 0x0f) << 2;
  if (ihl < 20 || inner + ihl + 8 > end) return false;
  const p = d[inner + 9];
  const il4 = inner + ihl;
  q.ip = inner;
  q.l4 = il4;
  q.proto = p;
  q.src = read32(d, inner + 12);
  q.dst = read32(d, inner + 16);
  if (p === PROTO_TCP || p === PROTO_UDP) {
    q.sport = (d[il4] << 8) | d[il4 + 1];
    q.dport = (d[il4 + 2] << 8) | d[il4 + 3];
  } else if (p === PROTO_ICMP && d[il4] === 8) {
    q.sport = (d[il4 + 4] << 8) | d[il4 + 5];
    q.dport = 0;
  } else return false;
  return true;
}

/** Scratch for `quoted` (one per translator: nothing allocated per packet). */
export interface Quoted {
  ip: number;
  l4: number;
  proto: number;
  src: number;
  dst: number;
  sport: number;
  dport: number;
}

export function newQuoted(): Quoted {
  return { ip: 0, l4: 0, proto: 0, src: 0, dst: 0, sport: 0, dport: 0 };
}

/**
 * Translate an ICMP error from a backend back to the VIP: the quoted packet's destination (the
 * backend, as the client's packet reached it) becomes the VIP with its header checksum and,
 * when quoted in full, its L4 checksum updated; the outer source becomes the VIP; the ICMP
 * checksum, which covers the quote, is computed again (errors are rare: no incremental path).
 * `v` views the same bytes as `d`.
 */
export function rewriteIcmpError(d: Uint8Array, v: DataView, l3: number, l4: number, end: number, q: Quoted, backend: number, vip: number): void {
  // A quote cut before the L4 checksum leaves it (nobody can verify it either).
  const full = q.proto === PROTO_TCP ? q.l4 + 18 <= end : q.proto === PROTO_UDP;
  rewriteIpv4Address(v, q.ip, 16, q.dst, vip, full ? q.proto : PROTO_ICMP, q.l4);
  rewriteIpv4Address(v, l3, 12, backend, vip, PROTO_ICMP, l4);
  d[l4 + 2] = 0;
  d[l4 + 3] = 0;
  const c = internetChecksum(d, l4, end - l4);
  d[l4 + 2] = c >>> 8;
  d[l4 + 3] = c & 0xff;
}
