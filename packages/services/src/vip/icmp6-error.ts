import { internetChecksum, ipv6PseudoHeaderSum } from '@overlay/dataplane';
import { PROTO_TCP, PROTO_UDP } from './conntrack.js';
import { checksumReplace128 } from './rewrite.js';

/**
 * ICMPv6 errors from a backend about a packet of an IPv6 VIP flow (the IPv6 twin of
 * icmp-error.ts): destination unreachable (1), packet too big (2, path MTU discovery), time
 * exceeded (3), parameter problem (4). RFC 4443 §2.4: their body quotes as much of the invoking
 * packet as fits in 1280 bytes, starting with its IPv6 header.
 */
export const PROTO_ICMPV6 = 58;
export const ECHO6_REQUEST = 128;
export const ECHO6_REPLY = 129;

export function isIcmp6Error(type: number): boolean {
  return type >= 1 && type <= 4;
}

/** Scratch for `quoted6` (one per translator: nothing allocated per packet). */
export interface Quoted6 {
  /** Offset of the quoted IPv6 header; its source is at ip + 8, its destination at ip + 24. */
  ip: number;
  l4: number;
  nh: number;
  sport: number;
  dport: number;
}

export function newQuoted6(): Quoted6 {
  return { ip: 0, l4: 0, nh: 0, sport: 0, dport: 0 };
}

/**
 * The packet quoted by the ICMPv6 error at `l4` (message end `end`): an IPv6 header directly
 * followed by at least 8 bytes of TCP, UDP or an echo request (no extension headers, as the
 * translator's own packets have none). Fills `q` and returns true when it parses; reads nothing
 * past `end`.
 */
export function quoted6(d: Uint8Array, l4: number, end: number, q: Quoted6): boolean {
  const ip = l4 + 8;
  if (ip + 48 > end || d[ip] >>> 4 !== 6) return false;
  const nh = d[ip + 6];
  const il4 = ip + 40;
  q.ip = ip;
  q.l4 = il4;
  q.nh = nh;
  if (nh === PROTO_TCP || nh === PROTO_UDP) {
    q.sport = (d[il4] << 8) | d[il4 + 1];
    q.dport = (d[il4 + 2] << 8) | d[il4 + 3];
  } else if (nh === PROTO_ICMPV6 && d[il4] === ECHO6_REQUEST) {
    q.sport = (d[il4 + 4] << 8) | d[il4 + 5];
    q.dport = 0;
  } else return false;
  return true;
}

/**
 * Translate an ICMPv6 error from a backend back to the VIP: the quoted packet's destination (the
 * backend, as the client's packet reached it) becomes `vip[vo .. vo + 16)` with its L4 checksum
 * updated when the quote holds it (TCP, UDP and echo checksums all cover the pseudo-header); the
 * outer source becomes the VIP; the ICMPv6 checksum, which covers the outer pseudo-header and the
 * quote, is computed again (errors are rare: no incremental path).
 */
export function rewriteIcmp6Error(d: Uint8Array, l3: number, l4: number, end: number, q: Quoted6, vip: Uint8Array, vo: number): void {
  const at = q.nh === PROTO_TCP ? q.l4 + 16 : q.nh === PROTO_UDP ? q.l4 + 6 : q.l4 + 2;
  const dst = q.ip + 24;
  // A quote cut before the L4 checksum leaves it (nobody can verify it either); UDP's 0 means none.
  if (at + 2 <= end && !(q.nh === PROTO_UDP && (d[at] | d[at + 1]) === 0)) {
    checksumReplace128(d, at, d, dst, vip, vo);
    if (q.nh === PROTO_UDP && (d[at] | d[at + 1]) === 0) d[at] = d[at + 1] = 0xff;
  }
  for (let i = 0; i < 16; i++) {
    d[dst + i] = vip[vo + i];
    d[l3 + 8 + i] = vip[vo + i];
  }
  const len = end - l4;
  d[l4 + 2] = 0;
  d[l4 + 3] = 0;
  const c = internetChecksum(d, l4, len, ipv6PseudoHeaderSum(d, l3 + 8, l3 + 24, PROTO_ICMPV6, len));
  d[l4 + 2] = c >>> 8;
  d[l4 + 3] = c & 0xff;
}
