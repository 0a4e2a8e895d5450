import { ARP_LENGTH, ARP_REQUEST, arpTargetIp, isEthernetIpv4Arp, rewriteArpRequestAsReply } from '../codec/arp.js';
import { readI32 } from '../codec/bytes.js';
import { ETHERTYPE_ARP } from '../codec/ethernet.js';
import { C, type Counters } from '../counters.js';
import type { Network } from '../network.js';
import { PASS, REPLY, type Stage, type StageContext } from '../stage.js';

/**
 * ARP suppression as a responder stage ('arp'), installed first when `arpSuppression` is on: a
 * broadcast ARP request (optionally 802.1Q-tagged, the tag kept) for an IPv4 address in the
 * network's neighbour table is rewritten in place into the reply (REPLY: back to the device,
 * nothing crosses the underlay), counted in `inside.arpSuppressed`. Gratuitous ARP (sender IP =
 * target IP), replies and unknown targets PASS to the flood policy. Group frames only.
 */
export class ArpResponder implements Stage {
  readonly name = 'arp';
  readonly kind = 'responder';
  readonly groupOnly = true;

  constructor(
    private readonly net: Network,
    private readonly counters: Counters,
  ) {}

  inside(ctx: StageContext, slot: number): number {
    if (ctx.etherType !== ETHERTYPE_ARP) return PASS;
    const pool = ctx.pool;
    const d = pool.data;
    const off = pool.off[slot];
    const arpOff = ctx.l3;
    if (arpOff + ARP_LENGTH > off + pool.len[slot]) return PASS;
    if (!isEthernetIpv4Arp(d, arpOff) || ((d[arpOff + 6] << 8) | d[arpOff + 7]) !== ARP_REQUEST) return PASS;
    const tpa = arpTargetIp(d, arpOff);
    if (tpa === readI32(d, arpOff + 14)) return PASS;
    const t = this.net.neighbours;
    const e = t.find(0, tpa);
    if (e < 0) return PASS;
    pool.len[slot] = rewriteArpRequestAsReply(d, off, arpOff, t.va[e], t.vb[e]);
    this.counters.c[C.arpSuppressed]++;
    return REPLY;
  }
}
