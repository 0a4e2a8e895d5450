import {
  ND_ADVERTISEMENT_LENGTH, PASS, REPLY, internetChecksum, ipv6PseudoHeaderSum, neighborSolicitationTarget, rewriteSolicitationAsAdvertisement, writeMacParts,
  type CounterSet, type PairTable, type StageContext,
} from '@overlay/dataplane';
import { A_BE_HI, A_BE_LO, A_CLI_HI, A_CLI_LO, A_CLI_NXT, A_SRV_NXT, A_VIP_HI, A_VIP_LO, setFlowMacs, type VipCounter, type VipDropReason } from './shared.js';
import { Conntrack, OPEN_FULL, PROTO_TCP, PROTO_UDP, ST_TCP_CLOSING, ST_TCP_SYN, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type ConntrackTimeouts } from './conntrack.js';
import { MAGLEV_SIZE, flowHash } from './maglev.js';
import { addressKey6, equal16, tcpSeqEnd } from './packet.js';
import { checksumReplace128 } from './rewrite.js';
import type { VipService } from './service.js';
import { ECHO6_REPLY, ECHO6_REQUEST, PROTO_ICMPV6, isIcmp6Error, newQuoted6, quoted6, rewriteIcmp6Error } from './icmp6-error.js';

const FRAGMENT_HEADER = 44;
/** Byte offsets in `addr` per flow: client, VIP, backend (16 each). */
const AC = 0;
const AV = 16;
const AB = 32;
const AW = 48;

/** What the IPv6 path shares with the translator that owns it (same tables, counters, clock). */
export interface Vip6Host {
  readonly services: readonly (VipService | undefined)[];
  /** Keyed (6, addressKey6(vip)). */
  readonly vipIndex: PairTable;
  /** Keyed (6, addressKey6(backend)). */
  readonly backendIndex: PairTable;
  readonly localIndex: PairTable;
  readonly counters: CounterSet<VipCounter>;
  readonly now: number;
  /** Counts a drop reason and returns its verdict. */
  dropAs(reason: VipDropReason): number;
}

/**
 * The IPv6 half of the VIP translator: the same flow handling as IPv4 (Maglev pick, conntrack,
 * both directions, hairpin to a local backend, RST on a backend's loss) for TCP, UDP and ICMPv6
 * echo, and Neighbor Solicitations for a VIP answered with the VIP's MAC (ND, as ARP for IPv4).
 *
 * Addresses are 128 bits; the conntrack keys on 32-bit keys of them (`addressKey6`) and this
 * keeps each flow's three addresses (client, VIP, backend) beside it, compared byte for byte on
 * every match: two clients whose keys collide never share a flow — the second is refused as
 * `tuple_clash`. No IPv6 header checksum; the TCP, UDP and ICMPv6 checksums cover the addresses
 * through the pseudo-header and are updated incrementally. Extension headers are not parsed:
 * a fragment header is `fragment`, any other one `unsupported_protocol`. Allocation-free per packet.
 */
export class Vip6Path {
  readonly conntrack: Conntrack;
  /** Per flow: client, VIP, backend addresses. */
  private readonly addr: Uint8Array;
  private readonly quote = newQuoted6();

  constructor(private readonly host: Vip6Host, o: { capacity: number; timeouts?: Partial<ConntrackTimeouts>; tickMs: number; startMs: number }) {
    this.conntrack = new Conntrack(o);
    this.addr = new Uint8Array(o.capacity * AW);
  }

  /** ND for a VIP, else a packet to a VIP; PASS for anything not ours. */
  inside(ctx: StageContext, slot: number): number {
    const h = this.host;
    const pool = ctx.pool;
    const d = pool.data;
    const l3 = ctx.l3;
    const end = pool.off[slot] + pool.len[slot];
    if (l3 + 40 > end) return PASS;
    const nh = d[l3 + 6];
    if (nh === PROTO_ICMPV6 && l3 + 41 <= end && d[l3 + 40] === 135) return this.answerNd(ctx, slot, end);
    const dstKey = addressKey6(d, l3 + 24);
    const vi = h.vipIndex.find(6, dstKey);
    if (vi < 0) return PASS;
    const svc = h.services[h.vipIndex.va[vi]]!;
    if (!equal16(svc.vipBytes, 0, d, l3 + 24)) return PASS;
    // Ours from here on: every failure is a counted drop.
    const plen = (d[l3 + 4] << 8) | d[l3 + 5];
    if (d[l3] >>> 4 !== 6 || l3 + 40 + plen > end) return h.dropAs('malformed');
    if (nh === FRAGMENT_HEADER) return h.dropAs('fragment');
    const l4 = l3 + 40;
    let sport: number;
    let dport = 0;
    let flags = 0;
    if (nh === PROTO_TCP) {
      if (plen < 20) return h.dropAs('malformed');
      flags = d[l4 + 13];
    } else if (nh === PROTO_UDP || nh === PROTO_ICMPV6) {
      if (plen < 8) return h.dropAs('malformed');
    } else return h.dropAs('unsupported_protocol');
    if (nh === PROTO_ICMPV6) sport = (d[l4 + 4] << 8) | d[l4 + 5];
    else {
      sport = (d[l4] << 8) | d[l4 + 1];
      dport = (d[l4 + 2] << 8) | d[l4 + 3];
    }
    const srcKey = addressKey6(d, l3 + 8);
    const ct = this.conntrack;
    const A = this.addr;
    if (h.localIndex.size > 0 && h.localIndex.find(6, srcKey) >= 0) {
      const r = nh === PROTO_ICMPV6 ? (d[l4] === ECHO6_REPLY ? ct.findReply(nh, srcKey, dstKey, 0, sport) : -1) : ct.findReply(nh, srcKey, dstKey, sport, dport);
      if (r >= 0 && equal16(A, r * AW + AB, d, l3 + 8)) return this.hairpinReply(ctx, slot, r, nh, l3, l4, plen, flags);
    }
    if (nh === PROTO_ICMPV6) {
      if (d[l4] !== ECHO6_REQUEST) return h.dropAs('unsupported_protocol');
    } else if (!svc.portOpen(dport)) return h.dropAs('port_closed');
    const now = h.now;
    let e = ct.find(nh, srcKey, dstKey, sport, dport);
    if (e >= 0 && !equal16(A, e * AW + AC, d, l3 + 8)) return h.dropAs('tuple_clash');
    if (e >= 0 && nh === PROTO_TCP && ct.state[e] === ST_TCP_CLOSING && (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      ct.remove(e);
      e = -1;
    }
    const aux = ct.aux;
    const fresh = e < 0;
    if (fresh) {
      const b = svc.table[flowHash(nh, srcKey, sport, dport) % MAGLEV_SIZE];
      if (b < 0) return h.dropAs('no_backend');
      e = ct.open(nh, srcKey, dstKey, sport, dport, svc.healthyIp[b], flags, now, svc.healthyLocal[b] === 1 ? dstKey : srcKey);
      if (e < 0) return h.dropAs(e === OPEN_FULL ? 'table_full' : 'tuple_clash');
      const w = e * AW;
      A.set(d.subarray(l3 + 8, l3 + 24), w + AC);
      A.set(svc.vipBytes, w + AV);
      A.set(svc.healthyIp6.subarray(b * 16, b * 16 + 16), w + AB);
      setFlowMacs(aux, e * Conntrack.AUX, d, pool.off[slot] + 6, svc, b);
    } else ct.observe(e, false, flags, now);
    const a = e * Conntrack.AUX;
    if (nh === PROTO_TCP) {
      const seqEnd = tcpSeqEnd(d, l4, plen, flags);
      if (fresh || ((flags & TCP_RST) === 0 && ((seqEnd - aux[a + A_CLI_NXT]) | 0) > 0)) aux[a + A_CLI_NXT] = seqEnd;
    }
    const off = pool.off[slot];
    const w = e * AW;
    writeMacParts(d, off, aux[a + A_BE_HI], aux[a + A_BE_LO]);
    rewriteIpv6Address(d, l3 + 24, A, w + AB, nh, l4);
    h.counters.values[0]++; // translated_inside (an event counter: no channel)
    if (ct.peer[e] === srcKey) return PASS;
    writeMacParts(d, off + 6, aux[a + A_VIP_HI], aux[a + A_VIP_LO]);
    rewriteIpv6Address(d, l3 + 8, A, w + AV, nh, l4);
    h.counters.add(h.counters.at.hairpinned);
    return REPLY;
  }

  /** A packet from a backend on a tracked flow gets the VIP back as its source; anything else passes. */
  outside(ctx: StageContext, slot: number): number {
    const h = this.host;
    const pool = ctx.pool;
    const d = pool.data;
    const l3 = ctx.l3;
    const end = pool.off[slot] + pool.len[slot];
    if (l3 + 40 > end) return PASS;
    const srcKey = addressKey6(d, l3 + 8);
    if (h.backendIndex.find(6, srcKey) < 0) return PASS;
    const plen = (d[l3 + 4] << 8) | d[l3 + 5];
    if (d[l3] >>> 4 !== 6 || l3 + 40 + plen > end) return PASS;
    const nh = d[l3 + 6];
    const l4 = l3 + 40;
    let cport: number;
    let vport: number;
    let flags = 0;
    if (nh === PROTO_TCP && plen >= 20) {
      flags = d[l4 + 13];
      vport = (d[l4] << 8) | d[l4 + 1];
      cport = (d[l4 + 2] << 8) | d[l4 + 3];
    } else if (nh === PROTO_UDP && plen >= 8) {
      vport = (d[l4] << 8) | d[l4 + 1];
      cport = (d[l4 + 2] << 8) | d[l4 + 3];
    } else if (nh === PROTO_ICMPV6 && plen >= 8 && d[l4] === ECHO6_REPLY) {
      cport = (d[l4 + 4] << 8) | d[l4 + 5];
      vport = 0;
    } else if (nh === PROTO_ICMPV6 && plen >= 8 && isIcmp6Error(d[l4])) return this.icmpError(ctx, slot, l3, l4, l4 + plen, srcKey);
    else return PASS;
    const ct = this.conntrack;
    const e = ct.findReply(nh, srcKey, addressKey6(d, l3 + 24), vport, cport);
    const w = e * AW;
    if (e < 0 || !equal16(this.addr, w + AB, d, l3 + 8) || !equal16(this.addr, w + AC, d, l3 + 24)) return PASS;
    this.observeReply(e, nh, d, l4, plen, flags);
    const a = e * Conntrack.AUX;
    writeMacParts(d, pool.off[slot] + 6, ct.aux[a + A_VIP_HI], ct.aux[a + A_VIP_LO]);
    rewriteIpv6Address(d, l3 + 8, this.addr, w + AV, nh, l4);
    h.counters.values[1]++; // translated_outside
    return PASS;
  }

  /**
   * An ICMPv6 error from a backend (source key `srcKey`) about a packet of a tracked flow:
   * translated back to the VIP, quote and all (icmp6-error.ts). Errors about hairpin flows pass.
   */
  private icmpError(ctx: StageContext, slot: number, l3: number, l4: number, end: number, srcKey: number): number {
    const d = ctx.pool.data;
    const q = this.quote;
    if (!quoted6(d, l4, end, q) || !equal16(d, q.ip + 24, d, l3 + 8)) return PASS;
    const ct = this.conntrack;
    const e = ct.findReply(q.nh, srcKey, addressKey6(d, q.ip + 8), q.dport, q.sport);
    const w = e * AW;
    if (e < 0 || ct.peer[e] !== ct.client[e] || !equal16(this.addr, w + AB, d, l3 + 8) || !equal16(this.addr, w + AC, d, q.ip + 8)) return PASS;
    const a = e * Conntrack.AUX;
    writeMacParts(d, ctx.pool.off[slot] + 6, ct.aux[a + A_VIP_HI], ct.aux[a + A_VIP_LO]);
    rewriteIcmp6Error(d, l3, l4, end, q, this.addr, w + AV);
    this.host.counters.add(this.host.counters.at.icmp_errors_translated);
    return PASS;
  }

  private hairpinReply(ctx: StageContext, slot: number, e: number, nh: number, l3: number, l4: number, plen: number, flags: number): number {
    const ct = this.conntrack;
    const d = ctx.pool.data;
    const w = e * AW;
    if (!equal16(this.addr, w + AV, d, l3 + 24)) return PASS;
    this.observeReply(e, nh, d, l4, plen, flags);
    const a = e * Conntrack.AUX;
    const off = ctx.pool.off[slot];
    writeMacParts(d, off, ct.aux[a + A_CLI_HI], ct.aux[a + A_CLI_LO]);
    writeMacParts(d, off + 6, ct.aux[a + A_VIP_HI], ct.aux[a + A_VIP_LO]);
    rewriteIpv6Address(d, l3 + 8, this.addr, w + AV, nh, l4);
    rewriteIpv6Address(d, l3 + 24, this.addr, w + AC, nh, l4);
    this.host.counters.add(this.host.counters.at.hairpin_replies);
    return REPLY;
  }

  private observeReply(e: number, nh: number, d: Uint8Array, l4: number, plen: number, flags: number): void {
    const ct = this.conntrack;
    ct.observe(e, true, flags, this.host.now);
    if (nh !== PROTO_TCP) return;
    const n = e * Conntrack.AUX + A_SRV_NXT;
    const seqEnd = tcpSeqEnd(d, l4, plen, flags);
    if ((flags & TCP_RST) === 0 && (((seqEnd - ct.aux[n]) | 0) > 0 || (flags & TCP_SYN) !== 0)) ct.aux[n] = seqEnd;
  }

  /** A Neighbor Solicitation for a VIP, answered in place with the VIP's MAC. */
  private answerNd(ctx: StageContext, slot: number, end: number): number {
    const h = this.host;
    const pool = ctx.pool;
    const d = pool.data;
    const l3 = ctx.l3;
    const target = neighborSolicitationTarget(d, l3, end);
    if (target < 0) return PASS;
    const vi = h.vipIndex.find(6, addressKey6(d, target));
    if (vi < 0) return PASS;
    const svc = h.services[h.vipIndex.va[vi]]!;
    if (!equal16(svc.vipBytes, 0, d, target) || l3 + ND_ADVERTISEMENT_LENGTH > pool.limit(slot)) return PASS;
    pool.len[slot] = rewriteSolicitationAsAdvertisement(d, pool.off[slot], l3, svc.macHi, svc.macLo);
    h.counters.add(h.counters.at.nd_answered);
    return REPLY;
  }

  /** The VIP and backend addresses of flow `e` (control path). */
  vipOf(e: number): Uint8Array {
    return this.addr.subarray(e * AW + AV, e * AW + AV + 16);
  }

  /** Write the RST for flow `e` towards its client into `d[off..]` (74 bytes); returns the length. Control path. */
  writeRst(e: number, d: Uint8Array, off: number): number {
    const ct = this.conntrack;
    const a = e * Conntrack.AUX;
    const w = e * AW;
    writeMacParts(d, off, ct.aux[a + A_CLI_HI], ct.aux[a + A_CLI_LO]);
    writeMacParts(d, off + 6, ct.aux[a + A_VIP_HI], ct.aux[a + A_VIP_LO]);
    d[off + 12] = 0x86;
    d[off + 13] = 0xdd;
    const ip = off + 14;
    d.fill(0, ip, ip + 60);
    d[ip] = 0x60;
    d[ip + 5] = 20; // payload length
    d[ip + 6] = PROTO_TCP;
    d[ip + 7] = 64;
    d.set(this.addr.subarray(w + AV, w + AV + 16), ip + 8);
    d.set(this.addr.subarray(w + AC, w + AC + 16), ip + 24);
    const tcp = ip + 40;
    const sport = ct.vipPort[e];
    const dport = ct.clientPort[e];
    d[tcp] = sport >>> 8;
    d[tcp + 1] = sport & 0xff;
    d[tcp + 2] = dport >>> 8;
    d[tcp + 3] = dport & 0xff;
    // Before the backend answered, the client is in SYN-SENT and takes a RST whose ACK covers its SYN.
    writeU32(d, tcp + 4, ct.state[e] === ST_TCP_SYN ? 0 : ct.aux[a + A_SRV_NXT]);
    writeU32(d, tcp + 8, ct.aux[a + A_CLI_NXT]);
    d[tcp + 12] = 0x50;
    d[tcp + 13] = 0x14; // RST | ACK
    const sum = internetChecksum(d, tcp, 20, ipv6PseudoHeaderSum(d, ip + 8, ip + 24, PROTO_TCP, 20));
    d[tcp + 16] = sum >>> 8;
    d[tcp + 17] = sum & 0xff;
    return 74;
  }
}

function writeU32(d: Uint8Array, at: number, v: number): void {
  d[at] = v >>> 24;
  d[at + 1] = (v >>> 16) & 0xff;
  d[at + 2] = (v >>> 8) & 0xff;
  d[at + 3] = v & 0xff;
}

/**
 * Replace the IPv6 address at `d[at .. at + 16)` with `src[so .. so + 16)`, fixing the L4
 * checksum that covers it through the pseudo-header: TCP, UDP (0 = none stays 0; a computed 0
 * is sent as 0xffff), ICMPv6. `l4` is the absolute offset of the L4 header.
 */
export function rewriteIpv6Address(d: Uint8Array, at: number, src: Uint8Array, so: number, nh: number, l4: number): void {
  if (nh === PROTO_TCP) checksumReplace128(d, l4 + 16, d, at, src, so);
  else if (nh === PROTO_ICMPV6) checksumReplace128(d, l4 + 2, d, at, src, so);
  else if (nh === PROTO_UDP && (d[l4 + 6] | d[l4 + 7]) !== 0) {
    checksumReplace128(d, l4 + 6, d, at, src, so);
    if ((d[l4 + 6] | d[l4 + 7]) === 0) d[l4 + 6] = d[l4 + 7] = 0xff;
  }
  for (let i = 0; i < 16; i++) d[at + i] = src[so + i];
}
