/** Names and layouts the VIP translator's IPv4 and IPv6 paths share. */
import { readMacHi, readMacLo } from '@overlay/dataplane';
import type { VipService } from './service.js';

/** The translator's drop reasons (stage reasons: counted in the dataplane's `stats().stages.vip`). Append-only. */
export const VIP_DROP_REASONS = ['malformed', 'fragment', 'unsupported_protocol', 'port_closed', 'no_backend', 'table_full', 'tuple_clash'] as const;
export type VipDropReason = (typeof VIP_DROP_REASONS)[number];

/** Event counters of the translator. Append-only. */
export const VIP_COUNTERS = ['translated_inside', 'translated_outside', 'arp_answered', 'flows_reset', 'rst_sent', 'rst_no_slot', 'drains_expired', 'hairpinned', 'hairpin_replies', 'nd_answered', 'icmp_errors_translated', 'flows_superseded', 'fragments_translated'] as const;
export type VipCounter = (typeof VIP_COUNTERS)[number];

// The per-flow words in `Conntrack.aux` (both families).
export const A_CLI_HI = 0;
export const A_CLI_LO = 1;
export const A_BE_HI = 2;
export const A_BE_LO = 3;
/** Next sequence number the client will send (its last segment's end): the RST's ack. */
export const A_CLI_NXT = 4;
/** Next sequence number the backend will send: the RST's seq, which the client accepts (RFC 5961 §3.2 wants it exact). */
export const A_SRV_NXT = 5;
/** The VIP's MAC, so replies need no second lookup. */
export const A_VIP_HI = 6;
export const A_VIP_LO = 7;

/**
 * A new flow's MACs in its aux words at `a`: the client's (the frame's source MAC at `srcMac`),
 * backend `b`'s and the VIP's; no server sequence seen yet.
 */
export function setFlowMacs(aux: Int32Array, a: number, d: Uint8Array, srcMac: number, svc: VipService, b: number): void {
  aux[a + A_CLI_HI] = readMacHi(d, srcMac);
  aux[a + A_CLI_LO] = readMacLo(d, srcMac);
  aux[a + A_BE_HI] = svc.healthyMacHi[b];
  aux[a + A_BE_LO] = svc.healthyMacLo[b];
  aux[a + A_SRV_NXT] = 0;
  aux[a + A_VIP_HI] = svc.macHi;
  aux[a + A_VIP_LO] = svc.macLo;
}
