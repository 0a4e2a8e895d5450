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
 * - A query split over segments (the length apart from the message, or the message cut): the
 *   only state, a bounded reassembly table (tcp-reassembly.ts). A first part is taken only when it
 *   starts the stream (the client's ACK is our ISN + 1 for ISN = its sequence number − 1: checked
 *   like a SYN cookie), held and ACKed; parts in order are appended and ACKed; the last one gets
 *   the answer. Counted: `tcp_reassembled` (answered), `tcp_reassembly_full` (every flow busy),
 *   `tcp_reassembly_oversize` (over the byte bound or more than one query),
 *   `tcp_reassembly_expired` (timed out), `tcp_reassembly_out_of_order` (a gap: a duplicate
 *   ACK asks for the missing part; or a middle part with no flow: absorbed).
 * - FIN (the client closing after our FIN) → ACK, and its flow, if any, is freed. Anything else
 *   (bare ACKs, RST) is absorbed, counted as 'tcp_absorbed'.
 */
import type { StageContext } from '@overlay/dataplane';
import type { DnsAnswerer } from './answer.js';
import { PROTO_TCP, finishReplyFrame, rd32, wr32 } from './reply-frame.js';
import { TcpReassembly, type TcpReassemblyOptions } from './tcp-reassembly.js';
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
  readonly flows: TcpReassembly;

  constructor(
    private readonly answerer: DnsAnswerer,
    private readonly mtu: number,
    reassembly?: TcpReassemblyOptions,
  ) {
    this.flows = new TcpReassembly(reassembly);
  }

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
    const a = v4 ? ip + 12 : ip + 8;
    const sport = (d[tcp] << 8) | d[tcp + 1];
    if (flags & RST) {
      this.forget(d, a, v4, sport);
      return TCP_ABSORB;
    }
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
      this.forget(d, a, v4, sport);
      this.write(ctx, slot, ip, tcp, ack, (seq + 1) >>> 0, ACK, 0, 0);
      return TCP_REPLY;
    }
    const fin = flags & FIN ? 1 : 0;
    const flows = this.flows;
    let f = flows.find(d, a, v4, sport);
    if (f === -2) this.count(this.answerer.counters.at.tcp_reassembly_expired);
    if (f >= 0 && flows.key[f] !== ack) {
      flows.free(f); // left by an earlier connection from the same port
      f = -1;
    }
    if (f < 0) {
      // The usual case: one whole length-prefixed query in this segment.
      if (plen >= 2 + HEADER_LENGTH && ((d[payload] << 8) | d[payload + 1]) === plen - 2) {
        return this.answer(ctx, slot, ip, tcp, doff, d, payload + 2, plen - 2, ack, (seq + plen + fin) >>> 0, window, mss);
      }
      // The first part of a split query: only if it starts the stream (see the file's comment).
      if (this.isn(d, ip, v4, tcp, (seq - 1) >>> 0) !== ((ack - 1) >>> 0)) {
        this.count(this.answerer.counters.at.tcp_reassembly_out_of_order);
        return TCP_ABSORB;
      }
      if (plen > flows.maxBytes || (plen >= 2 && 2 + ((d[payload] << 8) | d[payload + 1]) < plen)) {
        this.count(this.answerer.counters.at.tcp_reassembly_oversize);
        return TCP_ABSORB;
      }
      flows.expired = 0;
      f = flows.open(d, a, v4, sport, ack, seq);
      if (flows.expired > 0) this.count(this.answerer.counters.at.tcp_reassembly_expired, flows.expired);
      if (f < 0) {
        this.count(this.answerer.counters.at.tcp_reassembly_full);
        return TCP_ABSORB;
      }
    }
    const rel = (seq - flows.next[f]) | 0;
    if (rel > 0) {
      // A gap: ask again for what is missing.
      this.count(this.answerer.counters.at.tcp_reassembly_out_of_order);
      this.write(ctx, slot, ip, tcp, ack, flows.next[f], ACK, 0, 0);
      return TCP_REPLY;
    }
    const base = f * flows.maxBytes;
    const fb = flows.bytes;
    if (flows.done[f]) {
      // Answered already; a retransmission of the end (our answer was lost) gets it again.
      if (rel + plen < 0) return TCP_ABSORB;
      return this.answer(ctx, slot, ip, tcp, doff, fb, base + 2, flows.have[f] - 2, ack, (flows.next[f] + fin) >>> 0, window, mss);
    }
    const skip = -rel;
    if (skip >= plen) {
      this.write(ctx, slot, ip, tcp, ack, flows.next[f], ACK, 0, 0); // a duplicate: ACK again
      return TCP_REPLY;
    }
    let have = flows.have[f];
    const add = plen - skip;
    if (have + add > flows.maxBytes) {
      flows.free(f);
      this.count(this.answerer.counters.at.tcp_reassembly_oversize);
      return TCP_ABSORB;
    }
    for (let i = 0; i < add; i++) fb[base + have + i] = d[payload + skip + i];
    have += add;
    // The whole query's length once the 2-byte prefix is in: one query, within the bound.
    const want = have >= 2 ? 2 + ((fb[base] << 8) | fb[base + 1]) : 0;
    if (want > 0 && (have > want || want > flows.maxBytes || want < 2 + HEADER_LENGTH)) {
      flows.free(f);
      this.count(this.answerer.counters.at.tcp_reassembly_oversize);
      return TCP_ABSORB;
    }
    flows.have[f] = have;
    flows.next[f] = (flows.next[f] + add) >>> 0;
    if (want === 0 || have < want) {
      this.write(ctx, slot, ip, tcp, ack, flows.next[f], ACK, 0, 0);
      return TCP_REPLY;
    }
    flows.done[f] = 1;
    this.count(this.answerer.counters.at.tcp_reassembled);
    return this.answer(ctx, slot, ip, tcp, doff, fb, base + 2, have - 2, ack, (flows.next[f] + fin) >>> 0, window, mss);
  }

  /**
   * The answer to the query at q[qOff .. qOff+qLen), ACKing up to `rack`, our data from `seq`:
   * cut into MSS-sized segments, the first in this slot, the rest in fresh ones.
   */
  private answer(ctx: StageContext, slot: number, ip: number, tcp: number, doff: number, q: Uint8Array, qOff: number, qLen: number, seq: number, rack: number, window: number, mss: number): number {
    const out = this.out;
    let n = this.answerer.answer(q, qOff, qLen, out, 2, out.length - 2, true);
    if (n <= 0) return TCP_ABSORB; // forwarding over TCP from the stage: not done; the query is absorbed
    if (n + 2 > window) {
      // Too big for the client's window: a header-and-question answer with TC.
      n = this.answerer.answer(q, qOff, qLen, out, 2, Math.min(MAX_UDP_SIZE, window - 2), false);
      if (n <= 0) return TCP_ABSORB;
    }
    out[0] = n >> 8;
    out[1] = n & 255;
    const total = n + 2;
    // Further segments first (fresh slots with the same headers), then this slot holds the first.
    const pool = ctx.pool;
    const d = pool.data;
    const off = pool.off[slot];
    const payload = tcp + doff;
    const headerLen = payload - off; // Ethernet + IP + TCP as received; rewritten per segment below
    for (let at = mss; at < total; at += mss) {
      const s = pool.acquire();
      if (s < 0) return TCP_ABSORB; // pool exhausted: the client retransmits
      const o = pool.off[s];
      if (o + headerLen + mss > pool.limit(s)) {
        pool.release(s);
        return TCP_ABSORB;
      }
      d.copy(d, o, off, payload);
      const len = Math.min(mss, total - at);
      for (let i = 0; i < len; i++) d[o + headerLen + i] = out[at + i];
      pool.len[s] = headerLen + len;
      this.write(ctx, s, o + (ip - off), o + (tcp - off), (seq + at) >>> 0, rack, ACK | PSH | (at + len >= total ? FIN : 0), len, 0, doff);
      ctx.toDevice(s);
    }
    const first = Math.min(mss, total);
    for (let i = 0; i < first; i++) d[payload + i] = out[i];
    this.write(ctx, slot, ip, tcp, seq, rack, ACK | PSH | (first >= total ? FIN : 0), first, 0, doff);
    return TCP_REPLY;
  }

  private forget(d: Uint8Array, a: number, v4: boolean, port: number): void {
    const f = this.flows.find(d, a, v4, port);
    if (f >= 0) this.flows.free(f);
  }

  private count(i: number, n = 1): void {
    this.answerer.counters.add(i, n);
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
   * Turn the segment at `tcp` into ours: seq/ack/flags, a 20-byte header (24 with the MSS option
   * of a SYN-ACK), then `dataLen` bytes the caller wrote at the received header's end (`doff`),
   * moved up when our header is shorter; swaps, lengths and checksums by reply-frame.ts.
   */
  private write(ctx: StageContext, slot: number, ip: number, tcp: number, seq: number, ack: number, flags: number, dataLen: number, mss: number, doff = 20): void {
    const pool = ctx.pool;
    const d = pool.data;
    const hlen = mss > 0 ? 24 : 20;
    if (dataLen > 0 && doff !== hlen) d.copyWithin(tcp + hlen, tcp + doff, tcp + doff + dataLen);
    wr32(d, tcp + 4, seq);
    wr32(d, tcp + 8, ack);
    d[tcp + 12] = (hlen / 4) << 4;
    d[tcp + 13] = flags;
    d[tcp + 14] = 0xff;
    d[tcp + 15] = 0xff;
    d[tcp + 18] = 0;
    d[tcp + 19] = 0;
    if (mss > 0) {
      d[tcp + 20] = 2;
      d[tcp + 21] = 4;
      d[tcp + 22] = mss >> 8;
      d[tcp + 23] = mss & 255;
    }
    pool.len[slot] = finishReplyFrame(d, pool.off[slot], ip, tcp, hlen + dataLen, PROTO_TCP);
  }
}
