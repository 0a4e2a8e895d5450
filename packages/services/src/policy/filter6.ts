import { PASS, type CounterSet, type StageContext } from '@overlay/dataplane';
import { Conntrack, OPEN_FULL, PROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN, type ConntrackTimeouts } from '../vip/conntrack.js';
import { addressKey6, equal16 } from '../vip/packet.js';
import { ACTION_ALLOW, type CompiledPolicy } from './compile.js';
import type { PolicyCounter } from './filter.js';
import type { IdentityTable } from './identity.js';
import type { FragmentTable } from '../fragments.js';
import {
  AUX_DIR, AUX_GEN, AUX_IDENTITY, AUX_KEY, D_CLASH, D_DENIED, D_FRAGMENT, D_FULL, D_MALFORMED, D_NO_FLOW, INSIDE, L4_DPORT, L4_FLAGS, L4_KEY, L4_OK, L4_SPORT, L4_TRACKED, OUTSIDE,
  logged, readL4, recordFlow, revokeFlow, tally,
} from './filter-shared.js';

/**
 * The IPv6 half of the policy filter (filter.ts): the same stateful judgement as IPv4 — new
 * flows judged by the compiled rules (`evaluate6`: IPv6 CIDRs, groups of IPv6 addresses, the
 * Group Policy ID), allowed ones tracked, later packets and replies passed without the rules,
 * a TCP flow opened only by a SYN, re-judged on a new ruleset or identity generation.
 *
 * The conntrack keys on 32-bit keys of the addresses (`addressKey6`) and this keeps each flow's
 * two addresses (initiator, responder) beside it, compared byte for byte on every match: a
 * packet whose keys collide with another flow's is `tuple_clash`, never that flow's.
 * Extension headers: hop-by-hop, routing and destination options are skipped (at most 8); a
 * first fragment is judged by its ports and, when it passes, the rest of its datagram follow it
 * (fragments.ts); a later fragment of no passed first fragment is `fragment`.
 * ICMPv6: echo requests (128) open a flow keyed by their identifier, echo replies (129) are its
 * replies; Neighbor Discovery (router/neighbor solicitation and advertisement, redirect: types
 * 133–137) passes unjudged, as ARP does for IPv4 — without it no IPv6 address is reachable;
 * every other type is judged per packet with its type as the key and opens nothing.
 */
export const PROTO_ICMPV6 = 58;
const ECHO6_REQUEST = 128;
const ECHO6_REPLY = 129;
const AW = 32;

/** What the IPv6 path uses of the filter that owns it. */
export interface Policy6Host {
  readonly compiled: CompiledPolicy;
  readonly identity: IdentityTable;
  readonly counters: CounterSet<PolicyCounter>;
  readonly gbp: boolean;
  /** Datagrams whose first fragment passed. */
  readonly fragments: FragmentTable;
  /** The clock as of the last tick. */
  readonly nowMs: number;
  dropAs(dir: number, reason: number): number;
  log6(dir: number, allow: number, proto: number, buf: Uint8Array, srcAt: number, dstAt: number, sport: number, dport: number, rule: number): void;
}

export class Policy6Path {
  readonly conntrack: Conntrack;
  /** Per flow: initiator, responder (16 bytes each). */
  private readonly addr: Uint8Array;
  /** The L4 fields of the packet being judged (readL4). */
  private readonly l4 = new Int32Array(5);

  constructor(
    private readonly host: Policy6Host,
    o: { capacity: number; timeouts?: Partial<ConntrackTimeouts>; tickMs: number; startMs: number },
  ) {
    this.conntrack = new Conntrack(o);
    this.addr = new Uint8Array(o.capacity * AW);
  }

  /** judgeFirstFragment is having judge() decide a first fragment as its datagram. */
  private firstFragment = false;

  judge(ctx: StageContext, slot: number, dir: number): number {
    const h = this.host;
    const pool = ctx.pool;
    const d = pool.data;
    const l3 = ctx.l3;
    const end = pool.off[slot] + pool.len[slot];
    if (l3 + 40 > end || d[l3] >>> 4 !== 6) return h.dropAs(dir, D_MALFORMED);
    const l4end = l3 + 40 + ((d[l3 + 4] << 8) | d[l3 + 5]);
    if (l4end > end) return h.dropAs(dir, D_MALFORMED);
    let nh = d[l3 + 6];
    let l4 = l3 + 40;
    for (let i = 0; i < 8 && (nh === 0 || nh === 43 || nh === 60 || nh === 44); i++) {
      if (l4 + 8 > l4end) return h.dropAs(dir, D_MALFORMED);
      if (nh === 44) {
        const ident = (d[l4 + 4] << 24) | (d[l4 + 5] << 16) | (d[l4 + 6] << 8) | d[l4 + 7];
        if ((((d[l4 + 2] << 8) | d[l4 + 3]) & 0xfff8) !== 0) {
          // A later fragment: it passes only after its datagram's first fragment did (fragments.ts).
          if (!h.fragments.passes(addressKey6(d, l3 + 8), addressKey6(d, l3 + 24), ident, d[l4], dir, 1, h.nowMs)) return h.dropAs(dir, D_FRAGMENT);
          if (h.gbp && dir === INSIDE) pool.group[slot] = h.identity.groupPolicyOf6(d, l3 + 8);
          h.counters.add(h.counters.at.fragments_passed);
          return PASS;
        }
        if ((d[l4 + 3] & 1) !== 0 && !this.firstFragment) return this.judgeFirstFragment(ctx, slot, dir, ident, d[l4]);
        nh = d[l4];
        l4 += 8;
      } else {
        nh = d[l4];
        l4 += (d[l4 + 1] + 1) << 3;
      }
    }
    if (nh === 0 || nh === 43 || nh === 60 || nh === 44 || l4 > l4end) return h.dropAs(dir, D_MALFORMED);
    const id = h.identity;
    if (h.gbp && dir === INSIDE) pool.group[slot] = id.groupPolicyOf6(d, l3 + 8);
    if (nh === PROTO_ICMPV6 && l4 + 8 <= l4end && d[l4] >= 133 && d[l4] <= 137) return PASS; // Neighbor Discovery, as ARP
    const l4f = this.l4;
    if (readL4(d, l4, l4end, nh, PROTO_ICMPV6, ECHO6_REQUEST, ECHO6_REPLY, l4f) !== L4_OK) return h.dropAs(dir, D_MALFORMED);
    const sport = l4f[L4_SPORT];
    const dport = l4f[L4_DPORT];
    const key = l4f[L4_KEY];
    const flags = l4f[L4_FLAGS];
    let tracked = l4f[L4_TRACKED] === 1;

    const ct = this.conntrack;
    const aux = ct.aux;
    const A = this.addr;
    const srcKey = addressKey6(d, l3 + 8);
    const dstKey = addressKey6(d, l3 + 24);
    if (tracked) {
      let e = ct.find(nh, srcKey, dstKey, sport, dport);
      let reply = false;
      if (e >= 0 && (aux[e * Conntrack.AUX + AUX_DIR] !== dir || !equal16(A, e * AW, d, l3 + 8) || !equal16(A, e * AW + 16, d, l3 + 24))) e = -1;
      if (e < 0) {
        e = ct.findReply(nh, srcKey, dstKey, sport, dport);
        if (e >= 0 && (aux[e * Conntrack.AUX + AUX_DIR] === dir || !equal16(A, e * AW + 16, d, l3 + 8) || !equal16(A, e * AW, d, l3 + 24))) e = -1;
        reply = e >= 0;
      }
      if (e >= 0) {
        const c = h.compiled;
        const a = e * Conntrack.AUX;
        if (aux[a + AUX_GEN] !== c.generation || aux[a + AUX_IDENTITY] !== id.version) {
          h.counters.add(h.counters.at.flows_rejudged);
          const okey = aux[a + AUX_KEY];
          const w = e * AW;
          const r = c.evaluate6(nh, A, w, w + 16, okey, id, id.lookup6(A, w), id.lookup6(A, w + 16));
          if (c.actionOf(r) !== ACTION_ALLOW) {
            const cport = revokeFlow(ct, e, h.counters, c, dir, r);
            if (logged(c, r, 0)) h.log6(dir, 0, nh, A, w, w + 16, cport, okey, r);
            return h.dropAs(dir, D_DENIED);
          }
          recordFlow(aux, e, c, id.version, aux[a + AUX_DIR], r, okey);
        }
        ct.observe(e, reply, flags, h.nowMs);
        return PASS;
      }
      if (nh === PROTO_TCP && (flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) return h.dropAs(dir, D_NO_FLOW);
      // A stray echo reply is judged alone and opens nothing (as for IPv4).
      if (nh === PROTO_ICMPV6 && key === ECHO6_REPLY) tracked = false;
    }

    const c = h.compiled;
    let srcId: number;
    const gbpIn = dir === OUTSIDE ? pool.group[slot] : -1;
    if (gbpIn >= 0) {
      h.counters.add(h.counters.at.gbp_identified);
      srcId = id.lookupGroupPolicy(gbpIn);
    } else srcId = id.lookup6(d, l3 + 8);
    const r = c.evaluate6(nh, d, l3 + 8, l3 + 24, key, id, srcId, id.lookup6(d, l3 + 24));
    const allow = tally(c, dir, r);
    if (logged(c, r, allow)) h.log6(dir, allow, nh, d, l3 + 8, l3 + 24, sport, key, r);
    if (allow === 0) return h.dropAs(dir, D_DENIED);
    if (!tracked) return PASS;
    const e = ct.open(nh, srcKey, dstKey, sport, dport, dstKey, flags, h.nowMs);
    if (e < 0) return h.dropAs(dir, e === OPEN_FULL ? D_FULL : D_CLASH);
    const w = e * AW;
    for (let i = 0; i < AW; i++) A[w + i] = d[l3 + 8 + i]; // source then destination (no subarray: no view allocated)
    recordFlow(aux, e, c, id.version, dir, r, key);
    h.counters.add(h.counters.at.flows_opened);
    return PASS;
  }

  /** A first fragment: judged by judge() as its datagram; when it passes, its later fragments may follow. */
  private judgeFirstFragment(ctx: StageContext, slot: number, dir: number, ident: number, proto: number): number {
    this.firstFragment = true;
    let v: number;
    try {
      v = this.judge(ctx, slot, dir);
    } finally {
      this.firstFragment = false;
    }
    if (v === PASS) {
      const d = ctx.pool.data;
      this.host.fragments.remember(addressKey6(d, ctx.l3 + 8), addressKey6(d, ctx.l3 + 24), ident, proto, dir, 1, this.host.nowMs);
    }
    return v;
  }
}
