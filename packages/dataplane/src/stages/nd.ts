import { ETHERTYPE_IPV6 } from '../codec/ethernet.js';
import { ND_ADVERTISEMENT_LENGTH, neighborSolicitationTarget, rewriteSolicitationAsAdvertisement } from '../codec/nd.js';
import { C, type Counters } from '../counters.js';
import type { Network } from '../network.js';
import { PASS, REPLY, type Stage, type StageContext } from '../stage.js';

/**
 * ND suppression, the IPv6 counterpart of 'arp', as the responder stage 'nd': a multicast
 * Neighbor Solicitation (optionally 802.1Q-tagged) for an address in the network's IPv6
 * neighbour table is rewritten in place into the Neighbor Advertisement (S+O flags, target
 * link-layer option, ICMPv6 checksum) and answered to the device, counted in
 * `inside.arpSuppressed`. Duplicate address detection (source ::) and unknown targets PASS to
 * the flood policy. The advertisement may be longer than the solicitation: it is only written
 * when it fits the slot (`pool.limit`). Group frames only.
 */
export class NdResponder implements Stage {
  readonly name = 'nd';
  readonly kind = 'responder';
  readonly groupOnly = true;

  constructor(
    private readonly net: Network,
    private readonly counters: Counters,
  ) {}

  inside(ctx: StageContext, slot: number): number {
    const t = this.net.neighbours6;
    if (t.size === 0 || ctx.etherType !== ETHERTYPE_IPV6) return PASS;
    const pool = ctx.pool;
    const d = pool.data;
    const off = pool.off[slot];
    const ipOff = ctx.l3;
    const target = neighborSolicitationTarget(d, ipOff, off + pool.len[slot]);
    if (target < 0) return PASS;
    if (ipOff + ND_ADVERTISEMENT_LENGTH > pool.limit(slot)) return PASS;
    const e = t.find(d, target);
    if (e < 0) return PASS;
    pool.len[slot] = rewriteSolicitationAsAdvertisement(d, off, ipOff, t.hi(e), t.lo(e));
    this.counters.c[C.arpSuppressed]++;
    return REPLY;
  }
}
