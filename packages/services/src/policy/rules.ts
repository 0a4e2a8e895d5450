import { OverlayError, parseIpAddress, parseIpv4Address } from '@overlay/dataplane';

/**
 * The policy model: what an operator writes (YAML-friendly plain data) and its validation.
 *
 * ```yaml
 * defaultAction: deny            # what no rule decides
 * tiers:
 *   admin:   [ { id: block-ssh, action: deny, to: { cidrs: [198.19.0.0/16] }, proto: tcp, ports: ['22'] } ]
 *   network: [ { id: web-db, action: allow, from: { groups: [web] }, to: { groups: [db] }, proto: tcp, ports: ['5432'] } ]
 *   service: []
 * ```
 *
 * Semantics (the reference evaluator in test/policy-reference.ts is written from this text):
 *
 * - Tiers are evaluated in the order admin, network, service. Within a tier the first rule (in
 *   list order) that matches the packet decides, with its action. A tier without a matching rule
 *   passes the decision on to the next. No match in any tier: `defaultAction`.
 *   (Equivalently: the first matching rule of the list admin ++ network ++ service decides.)
 * - A rule matches when its `from` matches the source address, its `to` the destination
 *   address, and its protocol part matches the packet.
 * - An endpoint selector `{ groups?, cidrs? }` matches an address that is in ANY of the listed
 *   groups OR inside ANY of the listed CIDRs (a union: "these groups, and also these
 *   networks"). A missing selector, or one with neither list, matches every address. A list
 *   given but empty is an error (it would match nothing; omit it to match all). Groups come
 *   from the identity table (address → groups) the agent programs; an address not in it is in
 *   no group.
 * - CIDRs are IPv4 (`198.19.0.0/16`) or IPv6 (`2001:db8::/48`); a CIDR matches addresses of
 *   its own family only. A bare address is a /32 (IPv4) or /128 (IPv6).
 * - `proto`: `tcp`, `udp`, `icmp` (IPv4's ICMP, protocol 1), `icmpv6` (protocol 58) or `any`
 *   (default). A protocol is its IP protocol number in either family. `any` matches every IP
 *   protocol, including ones without ports.
 * - `ports` (tcp/udp only): destination ports, each `'N'` or `'N-M'` (1..65535, N ≤ M); the
 *   rule matches a destination port in any of them. Missing: every port.
 * - `icmpTypes` (icmp or icmpv6 only): ICMP types 0..255; missing: every type.
 * - `log`: log this rule's decisions (rate-limited). Denials are logged unless `log: false`;
 *   allows only with `log: true`.
 * - Rule ids are unique across all tiers (they name counters and `explain` answers).
 */
export type PolicyAction = 'allow' | 'deny';
export type PolicyProto = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'any';
export const TIERS = ['admin', 'network', 'service'] as const;
export type Tier = (typeof TIERS)[number];

export interface EndpointSelector {
  groups?: string[];
  cidrs?: string[];
}

export interface PolicyRule {
  id: string;
  action: PolicyAction;
  from?: EndpointSelector;
  to?: EndpointSelector;
  proto?: PolicyProto;
  ports?: string[];
  icmpTypes?: number[];
  log?: boolean;
}

export interface Policy {
  defaultAction: PolicyAction;
  tiers: Partial<Record<Tier, PolicyRule[]>>;
}

/** A policy is malformed; `path` names the offending value (e.g. `tiers.network[3].ports[0]`). */
export class PolicyError extends OverlayError {
  readonly path: string;
  constructor(path: string, message: string) {
    super('OVL_ERR_POLICY', `${path}: ${message}`);
    this.path = path;
  }
}

/** An IPv4 CIDR as numbers: the network address (unsigned) and the prefix length. */
export interface Cidr4 {
  base: number;
  prefix: number;
}

/** A CIDR of either family: the network address as an unsigned integer (32 or 128 bits) and the prefix length. */
export interface Cidr {
  family: 4 | 6;
  value: bigint;
  prefix: number;
}

/** A rule after validation, in list order over all tiers. */
export interface NormalRule {
  id: string;
  tier: Tier;
  action: PolicyAction;
  /** undefined: any address. */
  from: { groups: string[]; cidrs: Cidr[] } | undefined;
  to: { groups: string[]; cidrs: Cidr[] } | undefined;
  /** 0 = any, else the IP protocol number (1, 6, 17, 58). */
  proto: number;
  /** Inclusive [lo, hi] pairs of destination ports (tcp/udp) or ICMP types; undefined = all. */
  ranges: number[] | undefined;
  log: boolean;
}

export interface NormalPolicy {
  defaultAction: PolicyAction;
  rules: NormalRule[];
}

export const MAX_RULES = 1 << 20;
const PROTO_NUMBER: Record<PolicyProto, number> = { any: 0, icmp: 1, tcp: 6, udp: 17, icmpv6: 58 };
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
export const GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(v: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(v)) if (!keys.includes(k)) throw new PolicyError(path === '' ? k : `${path}.${k}`, `unknown field (expected one of ${keys.join(', ')})`);
}

/** Parse `a.b.c.d/n` (host bits must be zero). */
export function parseCidr4(text: unknown, path: string): Cidr4 {
  if (typeof text !== 'string') throw new PolicyError(path, 'must be a string like 198.19.0.0/16');
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const prefix = slash < 0 ? 32 : Number(text.slice(slash + 1));
  if (slash >= 0 && !/^\d{1,2}$/.test(text.slice(slash + 1))) throw new PolicyError(path, `bad prefix length in ${JSON.stringify(text)}`);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new PolicyError(path, `prefix length must be 0..32 in ${JSON.stringify(text)}`);
  let base: number;
  try {
    base = parseIpv4Address(addr);
  } catch {
    throw new PolicyError(path, `not an IPv4 address: ${JSON.stringify(text.slice(0, 64))}`);
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((base & ~mask) >>> 0 !== 0) throw new PolicyError(path, `host bits set in ${JSON.stringify(text)} (did you mean ${maskText(base & mask)}/${prefix}?)`);
  return { base, prefix };
}

function maskText(a: number): string {
  return [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
}

/** Parse an IPv4 (`a.b.c.d/n`) or IPv6 (`x::/n`) CIDR; host bits must be zero. */
export function parseCidr(text: unknown, path: string): Cidr {
  if (typeof text === 'string' && text.includes(':')) {
    const slash = text.indexOf('/');
    const addr = slash < 0 ? text : text.slice(0, slash);
    const lenText = slash < 0 ? '128' : text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > 128) throw new PolicyError(path, `prefix length must be 0..128 in ${JSON.stringify(text.slice(0, 64))}`);
    const prefix = Number(lenText);
    let bytes: Uint8Array;
    try {
      const ip = parseIpAddress(addr);
      if (ip.family !== 6) throw new Error('not IPv6');
      bytes = ip.bytes;
    } catch {
      throw new PolicyError(path, `not an IPv6 address: ${JSON.stringify(text.slice(0, 64))}`);
    }
    let value = 0n;
    for (const b of bytes) value = (value << 8n) | BigInt(b);
    const host = (1n << BigInt(128 - prefix)) - 1n;
    if ((value & host) !== 0n) throw new PolicyError(path, `host bits set in ${JSON.stringify(text)}`);
    return { family: 6, value, prefix };
  }
  const c = parseCidr4(text, path);
  return { family: 4, value: BigInt(c.base), prefix: c.prefix };
}

function selector(v: unknown, path: string): NormalRule['from'] {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw new PolicyError(path, 'must be an object { groups?, cidrs? }');
  onlyKeys(v, ['groups', 'cidrs'], path);
  const groups: string[] = [];
  const cidrs: Cidr[] = [];
  if (v.groups !== undefined) {
    if (!Array.isArray(v.groups) || v.groups.length === 0) throw new PolicyError(`${path}.groups`, 'must be a non-empty list of group names (omit it to match any)');
    v.groups.forEach((g, i) => {
      if (typeof g !== 'string' || !GROUP_RE.test(g)) throw new PolicyError(`${path}.groups[${i}]`, `not a group name: ${JSON.stringify(g)}`);
      groups.push(g);
    });
  }
  if (v.cidrs !== undefined) {
    if (!Array.isArray(v.cidrs) || v.cidrs.length === 0) throw new PolicyError(`${path}.cidrs`, 'must be a non-empty list of CIDRs (omit it to match any)');
    v.cidrs.forEach((c, i) => cidrs.push(parseCidr(c, `${path}.cidrs[${i}]`)));
  }
  if (groups.length === 0 && cidrs.length === 0) return undefined;
  return { groups, cidrs };
}

function portRanges(v: unknown, path: string): number[] {
  if (!Array.isArray(v) || v.length === 0) throw new PolicyError(path, "must be a non-empty list like ['5432', '8000-8080']");
  const out: number[] = [];
  v.forEach((p, i) => {
    const text = typeof p === 'number' ? String(p) : p;
    const m = typeof text === 'string' ? /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text) : null;
    if (m === null) throw new PolicyError(`${path}[${i}]`, `not a port or range: ${JSON.stringify(p)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || lo > hi) throw new PolicyError(`${path}[${i}]`, `ports must be 1..65535 with low ≤ high, got ${JSON.stringify(p)}`);
    out.push(lo, hi);
  });
  return out;
}

function icmpTypes(v: unknown, path: string): number[] {
  if (!Array.isArray(v) || v.length === 0) throw new PolicyError(path, 'must be a non-empty list of ICMP types 0..255');
  const out: number[] = [];
  v.forEach((t, i) => {
    if (!Number.isInteger(t) || (t as number) < 0 || (t as number) > 255) throw new PolicyError(`${path}[${i}]`, `ICMP type must be an integer 0..255, got ${JSON.stringify(t)}`);
    out.push(t as number, t as number);
  });
  return out;
}

/** Validate a policy (plain data, e.g. parsed YAML); every error is a PolicyError naming its path. */
export function validatePolicy(p: unknown): NormalPolicy {
  if (!isObject(p)) throw new PolicyError('policy', 'must be an object { defaultAction, tiers }');
  onlyKeys(p, ['defaultAction', 'tiers'], '');
  if (p.defaultAction !== 'allow' && p.defaultAction !== 'deny') throw new PolicyError('defaultAction', `must be allow or deny, got ${JSON.stringify(p.defaultAction)}`);
  const tiers = p.tiers ?? {};
  if (!isObject(tiers)) throw new PolicyError('tiers', 'must be an object { admin?, network?, service? }');
  onlyKeys(tiers, TIERS, 'tiers');
  const rules: NormalRule[] = [];
  const ids = new Map<string, string>();
  for (const tier of TIERS) {
    const list = tiers[tier];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new PolicyError(`tiers.${tier}`, 'must be a list of rules');
    list.forEach((r: unknown, i) => {
      const path = `tiers.${tier}[${i}]`;
      if (rules.length >= MAX_RULES) throw new PolicyError(path, `more than ${MAX_RULES} rules`);
      if (!isObject(r)) throw new PolicyError(path, 'must be a rule object');
      onlyKeys(r, ['id', 'action', 'from', 'to', 'proto', 'ports', 'icmpTypes', 'log'], path);
      if (typeof r.id !== 'string' || !ID_RE.test(r.id)) throw new PolicyError(`${path}.id`, `must be 1..128 characters [A-Za-z0-9_.:-], got ${JSON.stringify(r.id)}`);
      const seen = ids.get(r.id);
      if (seen !== undefined) throw new PolicyError(`${path}.id`, `duplicate rule id ${JSON.stringify(r.id)} (also ${seen})`);
      ids.set(r.id, path);
      if (r.action !== 'allow' && r.action !== 'deny') throw new PolicyError(`${path}.action`, `must be allow or deny, got ${JSON.stringify(r.action)}`);
      const protoName = r.proto ?? 'any';
      if (typeof protoName !== 'string' || !(protoName in PROTO_NUMBER)) throw new PolicyError(`${path}.proto`, `must be tcp, udp, icmp, icmpv6 or any, got ${JSON.stringify(r.proto)}`);
      const proto = PROTO_NUMBER[protoName as PolicyProto];
      let ranges: number[] | undefined;
      if (r.ports !== undefined) {
        if (proto !== 6 && proto !== 17) throw new PolicyError(`${path}.ports`, 'ports need proto tcp or udp');
        ranges = portRanges(r.ports, `${path}.ports`);
      }
      if (r.icmpTypes !== undefined) {
        if (proto !== 1 && proto !== 58) throw new PolicyError(`${path}.icmpTypes`, 'icmpTypes need proto icmp or icmpv6');
        ranges = icmpTypes(r.icmpTypes, `${path}.icmpTypes`);
      }
      if (r.log !== undefined && typeof r.log !== 'boolean') throw new PolicyError(`${path}.log`, 'must be true or false');
      rules.push({
        id: r.id,
        tier,
        action: r.action,
        from: selector(r.from, `${path}.from`),
        to: selector(r.to, `${path}.to`),
        proto,
        ranges,
        log: r.log ?? r.action === 'deny',
      });
    });
  }
  return { defaultAction: p.defaultAction, rules };
}
