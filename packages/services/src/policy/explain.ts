/**
 * `agent policy explain <flow>`: which tier, rule and action a new flow like the query would
 * meet under the compiled policy in force, and the groups of its two addresses. Control path
 * (allocates); the verdict is the compiled evaluator's own, as a packet's would be.
 */
import { parseIpAddress } from '@overlay/dataplane';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../vip/conntrack.js';
import { ACTION_ALLOW, type CompiledPolicy } from './compile.js';
import { PROTO_ICMPV6 } from './filter6.js';
import type { IdentityTable } from './identity.js';
import { PolicyError, type Tier } from './rules.js';

/** ICMP echo request: what an ICMP query without a type asks about. */
const ICMP_ECHO_REQUEST = 8;

export interface FlowQuery {
  /** IPv4 or IPv6, both of one family. */
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | number;
  /** Destination port (tcp/udp). */
  port?: number;
  icmpType?: number;
}

export interface Explanation {
  action: 'allow' | 'deny';
  tier: Tier | 'default';
  ruleId: string | null;
  /** Index in the list admin ++ network ++ service; -1 for the default. */
  ruleIndex: number;
  generation: number;
  srcGroups: readonly string[];
  dstGroups: readonly string[];
}

/** The decision `c` gives a new flow like `q`, with `id`'s groups of its addresses. Throws PolicyError on a bad query. */
export function explainFlow(c: CompiledPolicy, id: IdentityTable, q: FlowQuery): Explanation {
  const proto = q.proto === 'tcp' ? PROTO_TCP : q.proto === 'udp' ? PROTO_UDP : q.proto === 'icmp' ? PROTO_ICMP : q.proto === 'icmpv6' ? PROTO_ICMPV6 : q.proto;
  if (!Number.isInteger(proto) || proto < 0 || proto > 255) throw new PolicyError('explain.proto', `must be tcp, udp, icmp, icmpv6 or 0..255, got ${JSON.stringify(q.proto)}`);
  const icmp = proto === PROTO_ICMP || proto === PROTO_ICMPV6;
  const key = proto === PROTO_TCP || proto === PROTO_UDP ? (q.port ?? 0) : icmp ? (q.icmpType ?? (proto === PROTO_ICMP ? ICMP_ECHO_REQUEST : 128)) : 0;
  if (!Number.isInteger(key) || key < 0 || key > (icmp ? 255 : 65535)) throw new PolicyError('explain.port', `out of range: ${key}`);
  const addr = (text: string, field: string) => {
    try {
      return parseIpAddress(text);
    } catch {
      throw new PolicyError(`explain.${field}`, `not an IP address: ${JSON.stringify(String(text).slice(0, 64))}`);
    }
  };
  const src = addr(q.src, 'src');
  const dst = addr(q.dst, 'dst');
  if (src.family !== dst.family) throw new PolicyError('explain.dst', `not of the source's family (IPv${src.family}): ${JSON.stringify(q.dst)}`);
  let r: number;
  if (src.family === 4) {
    const s = ((src.bytes[0] << 24) | (src.bytes[1] << 16) | (src.bytes[2] << 8) | src.bytes[3]) | 0;
    const d = ((dst.bytes[0] << 24) | (dst.bytes[1] << 16) | (dst.bytes[2] << 8) | dst.bytes[3]) | 0;
    r = c.evaluate(proto, s, d, key, id, id.lookup(s), id.lookup(d));
  } else {
    const both = new Uint8Array(32);
    both.set(src.bytes, 0);
    both.set(dst.bytes, 16);
    r = c.evaluate6(proto, both, 0, 16, key, id, id.lookup6(both, 0), id.lookup6(both, 16));
  }
  return {
    action: c.actionOf(r) === ACTION_ALLOW ? 'allow' : 'deny',
    tier: r < 0 ? 'default' : c.tiers[r],
    ruleId: r < 0 ? null : c.ids[r],
    ruleIndex: r,
    generation: c.generation,
    srcGroups: id.groupsOf(q.src),
    dstGroups: id.groupsOf(q.dst),
  };
}
