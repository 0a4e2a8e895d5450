import { BlockList, isIPv6 } from 'node:net';
import type { Policy, PolicyRule } from '../src/policy/rules.js';

/**
 * The naive evaluator, written from the semantics in src/policy/rules.ts and nothing else: walk
 * the tiers admin, network, service in order, the rules of each in list order; the first rule
 * whose from, to and protocol part all match decides; otherwise the default action. Used only to
 * check the compiled evaluator.
 */
export interface RefPacket {
  proto: number;
  src: string;
  dst: string;
  /** Destination port (tcp/udp) or ICMP type. */
  key: number;
}

export interface RefVerdict {
  action: 'allow' | 'deny';
  ruleId: string | null;
}

/** CIDR membership by node's own BlockList (independent of the code under test); families never mix. */
const lists = new Map<string, BlockList>();
function inCidr(ip: string, cidr: string): boolean {
  const v6 = cidr.includes(':');
  if (v6 !== isIPv6(ip)) return false;
  let list = lists.get(cidr);
  if (list === undefined) {
    const [net, len] = cidr.includes('/') ? cidr.split('/') : [cidr, v6 ? '128' : '32'];
    list = new BlockList();
    list.addSubnet(net, Number(len), v6 ? 'ipv6' : 'ipv4');
    lists.set(cidr, list);
  }
  return list.check(ip, v6 ? 'ipv6' : 'ipv4');
}

function endpointMatches(sel: PolicyRule['from'], ip: string, groupsOf: (ip: string) => readonly string[]): boolean {
  if (sel === undefined || (sel.groups === undefined && sel.cidrs === undefined)) return true;
  const inGroup = (sel.groups ?? []).some((g) => groupsOf(ip).includes(g));
  const inNet = (sel.cidrs ?? []).some((c) => inCidr(ip, c));
  return inGroup || inNet;
}

function protoMatches(r: PolicyRule, p: RefPacket): boolean {
  const want = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, any: -1 }[r.proto ?? 'any'];
  if (want !== -1 && want !== p.proto) return false;
  if (r.ports !== undefined) {
    return r.ports.some((s) => {
      const [lo, hi] = s.split('-').map(Number);
      return p.key >= lo && p.key <= (hi ?? lo);
    });
  }
  if (r.icmpTypes !== undefined) return r.icmpTypes.includes(p.key);
  return true;
}

export function referenceVerdict(policy: Policy, p: RefPacket, groupsOf: (ip: string) => readonly string[]): RefVerdict {
  for (const tier of ['admin', 'network', 'service'] as const) {
    for (const r of policy.tiers[tier] ?? []) {
      if (endpointMatches(r.from, p.src, groupsOf) && endpointMatches(r.to, p.dst, groupsOf) && protoMatches(r, p)) return { action: r.action, ruleId: r.id };
    }
  }
  return { action: policy.defaultAction, ruleId: null };
}
