import { Conntrack, PROTO_TCP, PROTO_UDP } from '../vip/conntrack.js';
import type { CounterSet } from '@overlay/dataplane';
import type { CompiledPolicy } from './compile.js';
import type { PolicyCounter } from './filter.js';

/**
 * What the policy filter's IPv4 (filter.ts) and IPv6 (filter6.ts) paths share: directions, drop
 * reason indexes (POLICY_DROP_REASONS order), the conntrack aux words, the L4 header reader, the
 * per-rule tally and the recording of a new flow. Allocation-free.
 */
export const INSIDE = 0;
export const OUTSIDE = 1;
export const D_DENIED = 0;
export const D_NO_FLOW = 1;
export const D_MALFORMED = 2;
export const D_FRAGMENT = 3;
export const D_FULL = 4;
export const D_CLASH = 5;
// aux words of a conntrack entry
export const AUX_GEN = 0;
export const AUX_IDENTITY = 1;
export const AUX_DIR = 2;
export const AUX_RULE = 3;
export const AUX_KEY = 4;

/** L4 fields of the packet being judged: written by readL4. */
export const L4_SPORT = 0;
export const L4_DPORT = 1;
export const L4_KEY = 2;
export const L4_FLAGS = 3;
/** 1 when the packet belongs to a trackable flow (TCP, UDP, other protocols, ICMP echo). */
export const L4_TRACKED = 4;

/** readL4 results. */
export const L4_OK = 0;
export const L4_MALFORMED = -1;

/**
 * Read the L4 header at d[l4 .. l4end) of protocol `proto` into `out`: ports (TCP, UDP), the
 * destination port or ICMP type as the rules' key, TCP flags; for `icmp` (1 or 58) echo requests
 * (`echoRequest`) carry their identifier as source port, echo replies as destination port, and
 * other types are not tracked. Other protocols: key 0, tracked.
 */
export function readL4(d: Uint8Array, l4: number, l4end: number, proto: number, icmp: number, echoRequest: number, echoReply: number, out: Int32Array): number {
  out[L4_SPORT] = 0;
  out[L4_DPORT] = 0;
  out[L4_KEY] = 0;
  out[L4_FLAGS] = 0;
  out[L4_TRACKED] = 1;
  if (proto === PROTO_TCP || proto === PROTO_UDP) {
    if (l4 + (proto === PROTO_TCP ? 20 : 8) > l4end) return L4_MALFORMED;
    out[L4_SPORT] = (d[l4] << 8) | d[l4 + 1];
    out[L4_DPORT] = out[L4_KEY] = (d[l4 + 2] << 8) | d[l4 + 3];
    if (proto === PROTO_TCP) out[L4_FLAGS] = d[l4 + 13];
  } else if (proto === icmp) {
    if (l4 + 8 > l4end) return L4_MALFORMED;
    const type = (out[L4_KEY] = d[l4]);
    const id = (d[l4 + 4] << 8) | d[l4 + 5];
    if (type === echoRequest) out[L4_SPORT] = id;
    else if (type === echoReply) out[L4_DPORT] = id;
    else out[L4_TRACKED] = 0;
  }
  return L4_OK;
}

/** Count a new flow's verdict by deciding rule (or the default) and direction; 1 when allowed. */
export function tally(c: CompiledPolicy, dir: number, r: number): number {
  const at = dir * (c.size + 1) + (r < 0 ? c.size : r);
  if (c.actionOf(r) !== 1) {
    c.drops[at]++;
    return 0;
  }
  c.allows[at]++;
  return 1;
}

/** Whether rule `r`'s decision (`allow` 1/0) is logged: denials unless `log: false`, allows only with `log: true`. */
export function logged(c: CompiledPolicy, r: number, allow: number): boolean {
  return r < 0 ? allow === 0 : c.log[r] === 1;
}

/** Note in flow `e`'s aux words the ruleset and identity generations, direction, deciding rule and key. */
export function recordFlow(aux: Int32Array, e: number, c: CompiledPolicy, identityVersion: number, dir: number, r: number, key: number): void {
  const a = e * Conntrack.AUX;
  aux[a + AUX_GEN] = c.generation;
  aux[a + AUX_IDENTITY] = identityVersion;
  aux[a + AUX_DIR] = dir;
  aux[a + AUX_RULE] = r;
  aux[a + AUX_KEY] = key;
}

/** A tracked flow the rules in force deny: removed, counted (revoked, and by deciding rule); returns its initiator's port for the log. */
export function revokeFlow(ct: Conntrack, e: number, counters: CounterSet<PolicyCounter>, c: CompiledPolicy, dir: number, r: number): number {
  const cport = ct.clientPort[e];
  ct.remove(e);
  counters.add(counters.at.flows_revoked);
  tally(c, dir, r);
  return cport;
}
