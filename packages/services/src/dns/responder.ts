/**
 * The network's resolver inside the dataplane: a responder stage ('dns') that answers UDP DNS
 * queries from local endpoints to the resolver address (IPv4 and/or IPv6, port 53) in place,
 * in the slot that brought them: the DNS message is answered over itself (DnsAnswerer writes the
 * response where the query was), then MACs, addresses and ports are swapped, lengths and
 * checksums set, and the frame goes back to the device (REPLY). No kernel socket, no DNAT rule
 * in the endpoint's namespace, nothing on the underlay.
 *
 * The endpoint reaches the resolver's MAC through ARP/ND suppression: give the dataplane a
 * neighbour entry for the resolver address (`setNeighbour(vni, resolver, mac)`), any MAC not
 * used by an endpoint. The reply comes from the MAC the query was sent to.
 *
 * Names that are not ours: the stage takes the slot (TAKEN), the Forwarder asks upstream from
 * the host's namespace, and the reply is written into the slot and handed to the device
 * (`ctx.toDevice`) when it comes back; SERVFAIL/REFUSED the same way when it does not. At most
 * `maxHeld` slots are held (default 64: the pool is shared with the data path); a query over
 * that is answered SERVFAIL at once (`responder_held`). On detach every held slot is released.
 * A client's retry of a query still held takes its place upstream; the earlier frame is dropped as
 * 'superseded' (one answer per query, forward.ts).
 *
 * TCP to the resolver's port 53 is answered without a TCP stack too (responder-tcp.ts: SYN-ACK,
 * the whole answer in MSS-sized segments with FIN, ACK of the client's FIN; a query split over
 * segments is put together in a small bounded table), for answers over the UDP size.
 * Other traffic (to other addresses or ports, IPv6 with extension headers) PASSes.
 * Frames to the resolver's port 53 that are not readable UDP (bad lengths, fragments) are dropped
 * as 'malformed'; DNS messages the answerer drops (shorter than a header, responses) as
 * 'not_a_query'. Allocation-free for our names; the forwarding path allocates (a copy of the query).
 */
import {
  parseIpAddress,
  PASS,
  REPLY,
  TAKEN,
  dropVerdict,
  formatIpAddress,
  type CounterSet,
  type Stage,
  type StageContext,
} from '@overlay/dataplane';
import type { ServiceDirectory } from '../directory.js';
import { DnsAnswerer, FORWARD } from './answer.js';
import { createDnsCounters, type DnsCounter } from './counters.js';
import { FORWARD_SUPERSEDED, type Forwarder } from './forward.js';
import { PROTO_UDP, finishReplyFrame } from './reply-frame.js';
import { TCP_REPLY, TcpDnsResponder } from './responder-tcp.js';
import type { TcpReassemblyOptions } from './tcp-reassembly.js';
import { HEADER_LENGTH, MAX_UDP_SIZE, RCODE_SERVFAIL } from './wire.js';

export interface DnsResponderOptions {
  directory: ServiceDirectory;
  /** The network(s) this VNI's endpoints belong to: only their services are answered. */
  networks: readonly string[];
  /** The resolver address(es) of the network: one IPv4 and/or one IPv6. */
  address4?: string;
  address6?: string;
  /** Forwards names that are not ours; absent: they are NXDOMAIN. */
  forwarder?: Forwarder;
  counters?: CounterSet<DnsCounter>;
  maxHeld?: number;
  /** The device MTU (default 1450): answers never exceed it. */
  mtu?: number;
  /** Bounds of the TCP reassembly of queries split over segments (tcp-reassembly.ts). */
  tcpReassembly?: TcpReassemblyOptions;
}

export const RESPONDER_REASONS = ['malformed', 'not_a_query', 'tcp_absorbed', 'superseded'] as const;
const R_MALFORMED = 0;
const R_NOT_QUERY = 1;
const R_TCP_ABSORBED = 2;
/** A forwarded query whose client retried: the retry's frame carries the answer (forward.ts). */
const R_SUPERSEDED = 3;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;

export class DnsResponder implements Stage {
  readonly name = 'dns';
  readonly kind = 'responder';
  readonly reasons = RESPONDER_REASONS;
  readonly counters: CounterSet<DnsCounter>;
  readonly answerer: DnsAnswerer;
  private readonly v4: number;
  private readonly v6: Uint8Array | undefined;
  private readonly forwarder: Forwarder | undefined;
  private readonly maxHeld: number;
  private readonly mtu: number;
  private ctx: StageContext | undefined;
  private readonly held = new Set<number>();
  private readonly tcp: TcpDnsResponder;

  constructor(o: DnsResponderOptions) {
    this.counters = o.counters ?? createDnsCounters();
    this.forwarder = o.forwarder;
    this.answerer = new DnsAnswerer({ directory: o.directory, networks: o.networks, counters: this.counters, forwarding: o.forwarder !== undefined });
    const a4 = o.address4 === undefined ? undefined : parseIpAddress(o.address4);
    const a6 = o.address6 === undefined ? undefined : parseIpAddress(o.address6);
    if (a4 !== undefined && a4.family !== 4) throw new TypeError('address4 must be an IPv4 address');
    if (a6 !== undefined && a6.family !== 6) throw new TypeError('address6 must be an IPv6 address');
    this.v4 = a4 === undefined ? -1 : ((a4.bytes[0] << 24) | (a4.bytes[1] << 16) | (a4.bytes[2] << 8) | a4.bytes[3]) >>> 0;
    this.v6 = a6?.bytes;
    this.maxHeld = o.maxHeld ?? 64;
    this.mtu = o.mtu ?? 1450;
    this.tcp = new TcpDnsResponder(this.answerer, this.mtu, o.tcpReassembly);
  }

  /** Slots held for upstream replies. */
  get heldCount(): number {
    return this.held.size;
  }

  /** TCP queries being put together from segments (at most tcpReassembly.maxFlows). */
  get tcpFlowCount(): number {
    return this.tcp.flows.size;
  }

  attach(ctx: StageContext): void {
    this.ctx = ctx;
  }

  detach(): void {
    const ctx = this.ctx;
    this.ctx = undefined;
    if (ctx) for (const s of this.held) ctx.pool.release(s);
    this.held.clear();
  }

  inside(ctx: StageContext, slot: number): number {
    const pool = ctx.pool;
    const d = pool.data;
    const end = pool.off[slot] + pool.len[slot];
    const ip = ctx.l3;
    let udp: number;
    let udpLen: number;
    if (ctx.etherType === ETHERTYPE_IPV4) {
      if (this.v4 < 0 || ip + 20 > end) return PASS;
      if (((d[ip + 16] << 24) | (d[ip + 17] << 16) | (d[ip + 18] << 8) | d[ip + 19]) >>> 0 !== this.v4) return PASS;
      const ihl = (d[ip] & 15) * 4;
      if (d[ip + 9] === 6) {
        if (ihl < 20 || ((d[ip + 6] & 0x3f) | d[ip + 7]) !== 0) return PASS;
        return this.tcpSegment(ctx, slot, ip, ip + ihl, end);
      }
      if (d[ip + 9] !== 17) return PASS;
      udp = ip + ihl;
      if (udp + 8 > end || d[udp + 2] !== 0 || d[udp + 3] !== 53) return PASS;
      const total = (d[ip + 2] << 8) | d[ip + 3];
      udpLen = (d[udp + 4] << 8) | d[udp + 5];
      // Not IPv4, short header, fragments, lengths beyond the frame or disagreeing.
      if (d[ip] >> 4 !== 4 || ihl < 20 || ((d[ip + 6] & 0x3f) | d[ip + 7]) !== 0 || ip + total > end || udpLen < 8 || udp + udpLen > ip + total) {
        return dropVerdict(R_MALFORMED);
      }
    } else if (ctx.etherType === ETHERTYPE_IPV6) {
      const v6 = this.v6;
      if (v6 === undefined || ip + 48 > end || (d[ip + 6] !== 17 && d[ip + 6] !== 6)) return PASS;
      for (let i = 0; i < 16; i++) if (d[ip + 24 + i] !== v6[i]) return PASS;
      if (d[ip + 6] === 6) return this.tcpSegment(ctx, slot, ip, ip + 40, end);
      udp = ip + 40;
      if (d[udp + 2] !== 0 || d[udp + 3] !== 53) return PASS;
      const payload = (d[ip + 4] << 8) | d[ip + 5];
      udpLen = (d[udp + 4] << 8) | d[udp + 5];
      if (d[ip] >> 4 !== 6 || udp + payload > end || udpLen < 8 || udpLen > payload) return dropVerdict(R_MALFORMED);
    } else return PASS;
    const dns = udp + 8;
    const cap = this.capacity(pool.limit(slot), ip, dns);
    const n = this.answerer.answer(d, dns, udpLen - 8, d, dns, cap, false);
    if (n > 0) {
      this.finish(ctx, slot, ip, udp, n);
      return REPLY;
    }
    if (n < 0) return dropVerdict(R_NOT_QUERY);
    // Not ours: ask upstream, unless we already hold as many slots as we may.
    const c = this.counters;
    if (this.held.size >= this.maxHeld || this.forwarder === undefined) {
      c.add(c.at.responder_held);
      const m = this.answerer.respond(d, dns, udpLen - 8, d, dns, cap, RCODE_SERVFAIL);
      if (m <= 0) return dropVerdict(R_NOT_QUERY);
      this.finish(ctx, slot, ip, udp, m);
      return REPLY;
    }
    const v4 = ctx.etherType === ETHERTYPE_IPV4;
    const client = v4 ? formatIpAddress(4, d, ip + 12) : formatIpAddress(6, d, ip + 8);
    const query = d.subarray(dns, dns + udpLen - 8);
    this.held.add(slot);
    this.forwarder.forward(query, client, false, (reply, rcode) => this.onReply(ctx, slot, reply, rcode), (d[udp] << 8) | d[udp + 1]);
    return TAKEN;
  }

  /** TCP to the resolver: port 53 answered statelessly (responder-tcp.ts), other ports PASS. */
  private tcpSegment(ctx: StageContext, slot: number, ip: number, tcp: number, end: number): number {
    const d = ctx.pool.data;
    if (tcp + 20 > end || d[tcp + 2] !== 0 || d[tcp + 3] !== 53) return PASS;
    return this.tcp.segment(ctx, slot, ip, tcp, end) === TCP_REPLY ? REPLY : dropVerdict(R_TCP_ABSORBED);
  }

  private onReply(ctx: StageContext, slot: number, reply: Uint8Array | null, rcode: number): void {
    if (this.ctx !== ctx || !this.held.delete(slot)) return; // detached meanwhile: the slot was released
    if (reply === null && rcode === FORWARD_SUPERSEDED) return ctx.drop(this, R_SUPERSEDED, slot);
    const pool = ctx.pool;
    const d = pool.data;
    // The frame is as it came in: find its headers again.
    const off = pool.off[slot];
    const tagged = ((d[off + 12] << 8) | d[off + 13]) === 0x8100;
    const ip = off + (tagged ? 18 : 14);
    const v4 = d[ip] >> 4 === 4;
    const udp = v4 ? ip + (d[ip] & 15) * 4 : ip + 40;
    const dns = udp + 8;
    const queryLen = ((d[udp + 4] << 8) | d[udp + 5]) - 8;
    const cap = this.capacity(pool.limit(slot), ip, dns);
    let n: number;
    if (reply !== null && reply.length <= cap && reply.length >= HEADER_LENGTH) {
      d.set(reply, dns);
      n = reply.length;
    } else {
      if (reply !== null) this.counters.add(this.counters.at.drop_no_room);
      n = this.answerer.respond(d, dns, queryLen, d, dns, cap, rcode < 0 ? RCODE_SERVFAIL : rcode);
    }
    if (n <= 0) {
      ctx.drop(this, R_NOT_QUERY, slot);
      return;
    }
    this.finish(ctx, slot, ip, udp, n);
    ctx.toDevice(slot);
  }

  /** Bytes available for the DNS answer: the slot's room and the device MTU, at most 1232 + headroom for TCP-less clients. */
  private capacity(limit: number, ip: number, dns: number): number {
    const byMtu = this.mtu - (dns - ip);
    const bySlot = limit - dns;
    const cap = byMtu < bySlot ? byMtu : bySlot;
    return cap < MAX_UDP_SIZE ? cap : MAX_UDP_SIZE;
  }

  /** Turn the query frame into the reply of `n` DNS bytes (reply-frame.ts: swaps, lengths, checksums). */
  private finish(ctx: StageContext, slot: number, ip: number, udp: number, n: number): void {
    const pool = ctx.pool;
    pool.len[slot] = finishReplyFrame(pool.data, pool.off[slot], ip, udp, 8 + n, PROTO_UDP);
  }
}
