/**
 * The tail both DNS responders (UDP: responder.ts, TCP: responder-tcp.ts) share when they turn a
 * received frame into its reply in place: swap MACs, IP addresses and L4 ports, set the IP
 * lengths (IPv4: total length, DF, TTL 64, header checksum; IPv6: payload length, hop limit 64),
 * the UDP length, and the L4 checksum over the pseudo-header. The caller has written the L4
 * payload (and, for TCP, every header field but the ports and the checksum) before.
 */
import { internetChecksum, ipv4PseudoHeaderSum, ipv6PseudoHeaderSum } from '@overlay/dataplane';

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

/**
 * Frame at d[off ..), IP header at `ip`, L4 header at `l4` (ip + IHL, or ip + 40 for IPv6),
 * `l4Len` bytes of L4 header and payload. Returns the reply frame's length (for pool.len).
 */
export function finishReplyFrame(d: Uint8Array, off: number, ip: number, l4: number, l4Len: number, proto: typeof PROTO_TCP | typeof PROTO_UDP): number {
  for (let i = 0; i < 6; i++) {
    const t = d[off + i];
    d[off + i] = d[off + 6 + i];
    d[off + 6 + i] = t;
  }
  let t = d[l4];
  d[l4] = d[l4 + 2];
  d[l4 + 2] = t;
  t = d[l4 + 1];
  d[l4 + 1] = d[l4 + 3];
  d[l4 + 3] = t;
  const sumAt = proto === PROTO_UDP ? l4 + 6 : l4 + 16;
  if (proto === PROTO_UDP) {
    d[l4 + 4] = l4Len >> 8;
    d[l4 + 5] = l4Len & 255;
  }
  d[sumAt] = 0;
  d[sumAt + 1] = 0;
  let pseudo: number;
  if (d[ip] >> 4 === 4) {
    for (let i = 0; i < 4; i++) {
      const x = d[ip + 12 + i];
      d[ip + 12 + i] = d[ip + 16 + i];
      d[ip + 16 + i] = x;
    }
    const ihl = (d[ip] & 15) * 4;
    const total = ihl + l4Len;
    d[ip + 2] = total >> 8;
    d[ip + 3] = total & 255;
    d[ip + 6] = 0x40; // DF, no fragment offset
    d[ip + 7] = 0;
    d[ip + 8] = 64;
    d[ip + 10] = 0;
    d[ip + 11] = 0;
    const s = internetChecksum(d, ip, ihl);
    d[ip + 10] = s >> 8;
    d[ip + 11] = s & 255;
    pseudo = ipv4PseudoHeaderSum(rd32(d, ip + 12), rd32(d, ip + 16), proto, l4Len);
  } else {
    for (let i = 0; i < 16; i++) {
      const x = d[ip + 8 + i];
      d[ip + 8 + i] = d[ip + 24 + i];
      d[ip + 24 + i] = x;
    }
    d[ip + 4] = l4Len >> 8;
    d[ip + 5] = l4Len & 255;
    d[ip + 7] = 64;
    pseudo = ipv6PseudoHeaderSum(d, ip + 8, ip + 24, proto, l4Len);
  }
  let c = internetChecksum(d, l4, l4Len, pseudo);
  if (c === 0 && proto === PROTO_UDP) c = 0xffff; // RFC 768: 0 means "no checksum"
  d[sumAt] = c >> 8;
  d[sumAt + 1] = c & 255;
  return l4 + l4Len - off;
}

export function rd32(d: Uint8Array, p: number): number {
  return ((d[p] << 24) | (d[p + 1] << 16) | (d[p + 2] << 8) | d[p + 3]) >>> 0;
}

export function wr32(d: Uint8Array, p: number, v: number): void {
  d[p] = v >>> 24;
  d[p + 1] = (v >>> 16) & 255;
  d[p + 2] = (v >>> 8) & 255;
  d[p + 3] = v & 255;
}
