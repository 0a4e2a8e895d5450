/**
 * DNS over TCP to the resolver address, answered by the responder stage without a TCP stack and
 * without state: every answer is a function of the segment that asks for it.
 *
 * - SYN → SYN-ACK, our initial sequence number a keyed hash of (client address, port, ISN), MSS
 *   option = device MTU − IP − 20. No window scaling, no SACK: the client's window is in bytes.
 * - A segment carrying a whole length-prefixed query (RFC 7766; dig and the stub resolvers send
 *   length and message in one segment) → the whole answer, cut into MSS-sized segments (the first
 *   in the query's slot, the rest in fresh slots to `ctx.toDevice`), ACKing the query, FIN on the
 *   last. seq = the client's ACK (our ISN + 1). A retransmitted query gets the same answer again,
 *   so a lost answer is repaired by the client's own retransmission. An answer bigger than the
 *   client's window is replaced by a header-only TC answer.
 * - FIN (the client closing after our FIN) → ACK. Anything else (bare ACKs, RST, a query split
 *   over segments) is absorbed, counted as 'tcp_absorbed'.
 */
import { internetChecksum, ipv4PseudoHeaderSum, ipv6PseudoHeaderSum, type StageContext } from '@overlay/dataplane';
import type { DnsAnswerer } from './answer.js';
import { HEADER_LENGTH, MAX_UDP_SIZE } from './wire.js';

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;

/** Verdicts of answerTcp: the slot was rewritten (REPLY), or is to be dropped as absorbed. */
export const TCP_REPLY = 1;
export const TCP_ABSORB = 0;

export class TcpDnsResponder {
  private readonly out = new Uint8Array(65535 + 2);
  private readonly secret = (Math.random() * 0x7fffffff) | 0;

  constructor(
    private readonly answerer: DnsAnswerer,
    private readonly mtu: number,
  ) {}

  /** The segment at `tcp` (an IPv4 or IPv6 packet at `ip`, frame ending at `end`). */
  segment(ctx: StageContext, slot: number, ip: number, tcp: number, end: number): number {
    const d = ctx.pool.data;
    const v4 = d[ip] >> 4 === 4;
    const ipEnd = v4 ? ip + ((d[ip + 2] << 8) | d[ip + 3]) : ip + 40 + ((d[ip + 4] << 8) | d[ip + 5]);
    if (ipEnd > end || tcp + 20 > ipEnd) return TCP_ABSORB;
    const doff = (d[tcp + 12] >> 4) * 4;
    if (doff < 20 || tcp + doff > ipEnd) return TCP_ABSORB;
    const flags = d[tcp + 13];
    const seq = rd32(d, tcp + 4);
    const ack = rd32(d, tcp + 8);
    const window = (d[tcp + 14] << 8) | d[tcp + 15];
    const payload = tcp + doff;
    const plen = ipEnd - payload;
    if (flags & RST) return TCP_ABSORB;
    const mss = this.mtu - (tcp - ip) - 20;
    if (flags & SYN) {
      if (flags & ACK) return TCP_ABSORB;
      const isn = this.isn(d, ip, v4, tcp, seq);
      this.write(ctx, slot, ip, tcp, isn, (seq + 1) >>> 0, SYN | ACK, 0, mss);
      return TCP_REPLY;
    }
    if (!(flags & ACK)) return TCP_ABSORB;
    if (plen === 0) {
      if (!(flags & FIN)) return TCP_ABSORB;
      this.write(ctx, slot, ip, tcp, ack, (seq + 1) >>> 0, ACK, 0, 0);
      return TCP_REPLY;
    }
    // One whole length-prefixed query in this segment.
    if (plen < 2 + HEADER_LENGTH) return TCP_ABSORB;
    const qlen = (d[payload] << 8) | d[payload + 1];
    if (qlen !== plen - 2) return TCP_ABSORB;
    const out = this.out;
    let n = this.answerer.answer(d, payload + 2, qlen, out, 2, out.length - 2, true);
    if (n <= 0) return TCP_ABSORB; // forwarding over TCP from the stage: not done; the query is absorbed
    if (n + 2 > window) {
      // Too big for the client's window: a header-and-question answer with TC.
      n = this.answerer.answer(d, payload + 2, qlen, out, 2, Math.min(MAX_UDP_SIZE, window - 2), false);
      if (n <= 0) return TCP_ABSORB;
    }
    out[0] = n >> 8;
    out[1] = n & 255;
    const total = n + 2;
    const rack = (seq + plen + (flags & FIN ? 1 : 0)) >>> 0;
    // Further segments first (fresh slots with the same headers), then this slot holds the first.
    const pool = ctx.pool;
    const off = pool.off[slot];
    const headerLen = payload - off; // Ethernet + IP + TCP as received; rewritten per segment below
    for (let at = mss; at < total; at += mss) {
      const s = pool.acquire();
      if (s < 0) return TCP_ABSORB; // pool exhausted: the client retransmits
      const o = pool.off[s];
      if (o + headerLen + mss > pool.limit(s)) {
        pool.release(s);
        return TCP_ABSORB;
      }
      pool.data.copy(pool.data, o, off, payload);
      const len = Math.min(mss, total - at);
      for (let i = 0; i < len; i++) d[o + headerLen + i] = out[at + i];
      pool.len[s] = headerLen + len;
      this.write(ctx, s, o + (ip - off), o + (tcp - off), (ack + at) >>> 0, rack, ACK | PSH | (at + len >= total ? FIN : 0), len, 0, doff);
      ctx.toDevice(s);
    }
    const first = Math.min(mss, total);
    for (let i = 0; i < first; i++) d[payload + i] = out[i];
    this.write(ctx, slot, ip, tcp, ack, rack, ACK | PSH | (first >= total ? FIN : 0), first, 0, doff);
    return TCP_REPLY;
  }

  /** Our ISN for a connection: a keyed hash of the client's address, port and ISN. */
  private isn(d: Uint8Array, ip: number, v4: boolean, tcp: number, seq: number): number {
    let h = 0x811c9dc5 ^ this.secret;
    const a = v4 ? ip + 12 : ip + 8;
    const n = v4 ? 4 : 16;
    for (let i = 0; i < n; i++) h = Math.imul(h ^ d[a + i], 0x01000193);
    h = Math.imul(h ^ d[tcp], 0x01000193);
    h = Math.imul(h ^ d[tcp + 1], 0x01000193);
    h = Math.imul(h ^ seq, 0x01000193);
    return h >>> 0;
  }

  /**
   * Turn the segment at `tcp` into our answer: swap MACs, addresses and ports, set seq/ack/flags,
   * a 20-byte header (plus the MSS option on a SYN-ACK) followed by `dataLen` bytes already at
   * the header's end... the data was written at the received header's end (`doff`); when our
   * header is shorter the data moves up.
   */
  private write(ctx: StageContext, slot: number, ip: number, tcp: number, seq: number, ack: number, flags: number, dataLen: number, mss: number, doff = 20): void {
    const pool = ctx.pool;
    const d = pool.data;
    const off = pool.off[slot];
    for (let i = 0; i < 6; i++) {
      const t = d[off + i];
      d[off + i] = d[off + 6 + i];
      d[off + 6 + i] = t;
    }
    const v4 = d[ip] >> 4 === 4;
    let t = d[tcp];
    d[tcp] = d[tcp + 2];
    d[tcp + 2] = t;
    t = d[tcp + 1];
    d[tcp + 1] = d[tcp + 3];
    d[tcp + 3] = t;
    const hlen = mss > 0 ? 24 : 20;
    if (dataLen > 0 && doff !== hlen) d.copyWithin(tcp + hlen, tcp + doff, tcp + doff + dataLen);
    wr32(d, tcp + 4, seq);
    wr32(d, tcp + 8, ack);
    d[tcp + 12] = (hlen / 4) << 4;
    d[tcp + 13] = flags;
    d[tcp + 14] = 0xff;
    d[tcp + 15] = 0xff;
    d[tcp + 16] = 0;
    d[tcp + 17] = 0;
    d[tcp + 18] = 0;
    d[tcp + 19] = 0;
    if (mss > 0) {
      d[tcp + 20] = 2;
      d[tcp + 21] = 4;
      d[tcp + 22] = mss >> 8;
      d[tcp + 23] = mss & 255;
    }
    const segLen = hlen + dataLen;
    if (v4) {
      for (let i = 0; i < 4; i++) {
        const x = d[ip + 12 + i];
        d[ip + 12 + i] = d[ip + 16 + i];
        d[ip + 16 + i] = x;
      }
      const ihl = (d[ip] & 15) * 4;
      const total = ihl + segLen;
      d[ip + 2] = total >> 8;
      d[ip + 3] = total & 255;
      d[ip + 6] = 0x40;
      d[ip + 7] = 0;
      d[ip + 8] = 64;
      d[ip + 10] = 0;
      d[ip + 11] = 0;
      const s = internetChecksum(d, ip, ihl);
      d[ip + 10] = s >> 8;
      d[ip + 11] = s & 255;
      const c = internetChecksum(d, tcp, segLen, ipv4PseudoHeaderSum(rd32(d, ip + 12), rd32(d, ip + 16), 6, segLen));
      d[tcp + 16] = c >> 8;
      d[tcp + 17] = c & 255;
      pool.len[slot] = tcp + segLen - off;
    } else {
      for (let i = 0; i < 16; i++) {
        const x = d[ip + 8 + i];
        d[ip + 8 + i] = d[ip + 24 + i];
        d[ip + 24 + i] = x;
      }
      d[ip + 4] = segLen >> 8;
      d[ip + 5] = segLen & 255;
      d[ip + 7] = 64;
      const c = internetChecksum(d, tcp, segLen, ipv6PseudoHeaderSum(d, ip + 8, ip + 24, 6, segLen));
      d[tcp + 16] = c >> 8;
      d[tcp + 17] = c & 255;
      pool.len[slot] = tcp + segLen - off;
    }
  }
}

function rd32(d: Uint8Array, p: number): number {
  return ((d[p] << 24) | (d[p + 1] << 16) | (d[p + 2] << 8) | d[p + 3]) >>> 0;
}

function wr32(d: Uint8Array, p: number, v: number): void {
  d[p] = v >>> 24;
  d[p + 1] = (v >>> 16) & 255;
  d[p + 2] = (v >>> 8) & 255;
  d[p + 3] = v & 255;
}
