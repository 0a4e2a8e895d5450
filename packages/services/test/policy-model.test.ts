import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseIpv4Address } from '@overlay/dataplane';
import { CompiledPolicy } from '../src/policy/compile.js';
import { IdentityTable } from '../src/policy/identity.js';
import { validatePolicy, type Policy, type PolicyRule } from '../src/policy/rules.js';
import { referenceVerdict, type RefPacket } from './policy-reference.js';

const GROUPS = ['web', 'db', 'cache', 'admin', 'ops'];
/** 16 overlay addresses 198.19.0.0 .. 198.19.0.15: small, so CIDRs, groups and packets collide often. */
const ADDRS = Array.from({ length: 16 }, (_, i) => `198.19.0.${i}`);
const CIDRS = ['198.19.0.0/16', '198.19.0.0/28', '198.19.0.0/29', '198.19.0.8/29', '198.19.0.4/30', '198.19.0.12/30', '198.19.0.3/32', '198.19.0.9', '0.0.0.0/0', '198.18.0.0/16'];

const selector = fc.option(
  fc.record({ groups: fc.option(fc.uniqueArray(fc.constantFrom(...GROUPS), { minLength: 1, maxLength: 3 }), { nil: undefined }), cidrs: fc.option(fc.uniqueArray(fc.constantFrom(...CIDRS), { minLength: 1, maxLength: 2 }), { nil: undefined }) }, { requiredKeys: [] }),
  { nil: undefined, freq: 8 },
);
const port = fc.integer({ min: 1, max: 24 });
const portSpec = fc.oneof(port.map(String), fc.tuple(port, port).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`), fc.constant('1-65535'), fc.constant('65535'));

const ruleBody = fc.oneof(
  fc.record({ proto: fc.constant('any' as const) }),
  fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), ports: fc.option(fc.array(portSpec, { minLength: 1, maxLength: 3 }), { nil: undefined }) }),
  fc.record({ proto: fc.constant('icmp' as const), icmpTypes: fc.option(fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 3 }), { nil: undefined }) }),
);
const rule = fc.record({ action: fc.constantFrom('allow' as const, 'deny' as const), from: selector, to: selector, body: ruleBody });
const tier = fc.array(rule, { maxLength: 5 });
const policy = fc.record({ defaultAction: fc.constantFrom('allow' as const, 'deny' as const), admin: tier, network: tier, service: tier }).map(({ defaultAction, admin, network, service }) => {
  let n = 0;
  const mk = (rs: typeof admin): PolicyRule[] =>
    rs.map((r) => {
      const out: PolicyRule = { id: `r${n++}`, action: r.action, ...r.body };
      if (r.from !== undefined) out.from = strip(r.from);
      if (r.to !== undefined) out.to = strip(r.to);
      for (const k of ['proto', 'ports', 'icmpTypes'] as const) if (out[k] === undefined) delete out[k];
      return out;
    });
  return { defaultAction, tiers: { admin: mk(admin), network: mk(network), service: mk(service) } } satisfies Policy;
});
function strip(s: { groups?: string[]; cidrs?: string[] }) {
  const o: { groups?: string[]; cidrs?: string[] } = {};
  if (s.groups !== undefined) o.groups = s.groups;
  if (s.cidrs !== undefined) o.cidrs = s.cidrs;
  return o;
}
const membership = fc.array(fc.subarray(GROUPS), { minLength: 16, maxLength: 16 });
const packet = fc.record({
  proto: fc.constantFrom(1, 6, 17, 47),
  src: fc.constantFrom(...ADDRS),
  dst: fc.constantFrom(...ADDRS),
  key: fc.integer({ min: 0, max: 26 }),
});

describe('policy: compiled evaluator equals the naive reference', () => {
  it('1000 random rule sets × 100 random packets (10^5 verdicts): same action and same deciding rule', () => {
    let verdicts = 0;
    let ruled = 0;
    fc.assert(
      fc.property(policy, membership, fc.array(packet, { minLength: 100, maxLength: 100 }), (pol, groups, packets) => {
        const identity = new IdentityTable();
        groups.forEach((gs, i) => identity.set(ADDRS[i], gs));
        const groupsOf = (ip: string) => identity.groupsOf(ip);
        const c = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1);
        for (const p of packets as RefPacket[]) {
          const key = p.proto === 47 ? 0 : p.key;
          const ref = referenceVerdict(pol, { ...p, key }, groupsOf);
          const src = parseIpv4Address(p.src) | 0;
          const dst = parseIpv4Address(p.dst) | 0;
          const r = c.evaluate(p.proto, src, dst, key, identity.bits, identity.lookup(src), identity.lookup(dst));
          expect(r < 0 ? null : c.ids[r]).toBe(ref.ruleId);
          expect(c.actionOf(r) === 1 ? 'allow' : 'deny').toBe(ref.action);
          verdicts++;
          if (r >= 0) ruled++;
        }
      }),
      { numRuns: 1000, seed: 0x5eed },
    );
    expect(verdicts).toBe(100_000);
    // The generator is useful only if rules decide a good share of verdicts and the default the rest.
    expect(ruled).toBeGreaterThan(20_000);
    expect(ruled).toBeLessThan(95_000);
  }, 120_000);
});
