import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseIpAddress } from '@overlay/dataplane';
import { CompiledPolicy } from '../src/policy/compile.js';
import { IdentityTable } from '../src/policy/identity.js';
import { validatePolicy, type Policy, type PolicyRule } from '../src/policy/rules.js';
import { referenceVerdict, type RefPacket } from './policy-reference.js';

const GROUPS = ['web', 'db', 'cache', 'admin', 'ops'];
/**
 * 16 overlay addresses 198.19.0.0 .. 198.19.0.15 and 16 IPv6 ones 2001:db8::0 .. 2001:db8::f
 * (and two outside 2001:db8::/112): small, so CIDRs, groups and packets collide often.
 */
const ADDRS4 = Array.from({ length: 16 }, (_, i) => `198.19.0.${i}`);
const ADDRS6 = [...Array.from({ length: 14 }, (_, i) => `2001:db8::${i.toString(16)}`), '2001:db8:0:1::7', '2001:db9::1'];
const ADDRS = [...ADDRS4, ...ADDRS6];
const CIDRS = [
  '198.19.0.0/16', '198.19.0.0/28', '198.19.0.0/29', '198.19.0.8/29', '198.19.0.4/30', '198.19.0.12/30', '198.19.0.3/32', '198.19.0.9', '0.0.0.0/0', '198.18.0.0/16',
  '2001:db8::/32', '2001:db8::/125', '2001:db8::8/125', '2001:db8::4/126', '2001:db8::3/128', '2001:db8::9', '::/0', '2001:db8:0:1::/64',
];

const selector = fc.option(
  fc.record({ groups: fc.option(fc.uniqueArray(fc.constantFrom(...GROUPS), { minLength: 1, maxLength: 3 }), { nil: undefined }), cidrs: fc.option(fc.uniqueArray(fc.constantFrom(...CIDRS), { minLength: 1, maxLength: 2 }), { nil: undefined }) }, { requiredKeys: [] }),
  { nil: undefined, freq: 8 },
);
const port = fc.integer({ min: 1, max: 24 });
const portSpec = fc.oneof(port.map(String), fc.tuple(port, port).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`), fc.constant('1-65535'), fc.constant('65535'));

const ruleBody = fc.oneof(
  fc.record({ proto: fc.constant('any' as const) }),
  fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), ports: fc.option(fc.array(portSpec, { minLength: 1, maxLength: 3 }), { nil: undefined }) }),
  fc.record({ proto: fc.constantFrom('icmp' as const, 'icmpv6' as const), icmpTypes: fc.option(fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 3 }), { nil: undefined }) }),
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
const membership = fc.array(fc.subarray(GROUPS), { minLength: ADDRS.length, maxLength: ADDRS.length });
/** Source and destination of one family. */
const packet = fc.record({
  proto: fc.constantFrom(1, 6, 17, 47, 58),
  v6: fc.boolean(),
  src: fc.nat(15),
  dst: fc.nat(15),
  key: fc.integer({ min: 0, max: 26 }),
}).map(({ v6, src, dst, ...rest }) => ({ ...rest, src: (v6 ? ADDRS6 : ADDRS4)[src], dst: (v6 ? ADDRS6 : ADDRS4)[dst] }));

/** The compiled verdict for a reference packet, through evaluate (IPv4) or evaluate6 (IPv6). */
function compiledVerdict(c: CompiledPolicy, identity: IdentityTable, p: RefPacket): number {
  const s = parseIpAddress(p.src);
  const d = parseIpAddress(p.dst);
  if (s.family === 4) {
    const src = ((s.bytes[0] << 24) | (s.bytes[1] << 16) | (s.bytes[2] << 8) | s.bytes[3]) | 0;
    const dst = ((d.bytes[0] << 24) | (d.bytes[1] << 16) | (d.bytes[2] << 8) | d.bytes[3]) | 0;
    return c.evaluate(p.proto, src, dst, p.key, identity, identity.lookup(src), identity.lookup(dst));
  }
  const buf = new Uint8Array(40);
  buf.set(s.bytes, 3); // odd offsets: the evaluator reads bytes, not aligned words
  buf.set(d.bytes, 21);
  return c.evaluate6(p.proto, buf, 3, 21, p.key, identity, identity.lookup6(buf, 3), identity.lookup6(buf, 21));
}

describe('policy: compiled evaluator equals the naive reference', () => {
  it('1000 random rule sets × 100 random packets (10^5 verdicts, IPv4 and IPv6): same action and same deciding rule', () => {
    let verdicts = 0;
    let ruled = 0;
    let v6 = 0;
    fc.assert(
      fc.property(policy, membership, fc.array(packet, { minLength: 100, maxLength: 100 }), (pol, groups, packets) => {
        const identity = new IdentityTable();
        groups.forEach((gs, i) => identity.set(ADDRS[i], gs));
        const groupsOf = (ip: string) => identity.groupsOf(ip);
        const c = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1);
        // The same rules with every rule walked in order (no cells): the residual path.
        const walked = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1, { maxCellsPerRule: 0 });
        const probed = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1, { rowIndex: false });
        for (const p of packets as RefPacket[]) {
          const q = { ...p, key: p.proto === 47 ? 0 : p.key };
          const ref = referenceVerdict(pol, q, groupsOf);
          const r = compiledVerdict(c, identity, q);
          expect(r < 0 ? null : c.ids[r]).toBe(ref.ruleId);
          expect(c.actionOf(r) === 1 ? 'allow' : 'deny').toBe(ref.action);
          expect(compiledVerdict(walked, identity, q)).toBe(r);
          expect(compiledVerdict(probed, identity, q)).toBe(r);
          verdicts++;
          if (r >= 0) ruled++;
          if (q.src.includes(':')) v6++;
        }
      }),
      { numRuns: 1000, seed: 0x5eed },
    );
    expect(verdicts).toBe(100_000);
    expect(v6).toBeGreaterThan(40_000);
    // The generator is useful only if rules decide a good share of verdicts and the default the rest.
    expect(ruled).toBeGreaterThan(20_000);
    expect(ruled).toBeLessThan(95_000);
  }, 300_000); // ~100 s at load 78 on 2 cores
});

/** Large rule sets: many groups and nested CIDRs of both families, so cells, rows and the pair hash all fill. */
const BIG_GROUPS = Array.from({ length: 40 }, (_, i) => `g${i}`);
const BIG4 = Array.from({ length: 64 }, (_, i) => `198.19.0.${i}`);
const BIG6 = Array.from({ length: 64 }, (_, i) => `2001:db8::${i.toString(16)}`);
const bigCidr = fc.oneof(
  fc.tuple(fc.nat(63), fc.integer({ min: 26, max: 32 })).map(([a, len]) => `198.19.0.${a & (0xff << (32 - len)) & 0xff}/${len}`),
  fc.tuple(fc.nat(63), fc.integer({ min: 122, max: 128 })).map(([a, len]) => `2001:db8::${(a & (0xffff << (128 - len)) & 0xffff).toString(16)}/${len}`),
);
const bigSelector = fc.option(
  fc.record({ groups: fc.option(fc.uniqueArray(fc.constantFrom(...BIG_GROUPS), { minLength: 1, maxLength: 4 }), { nil: undefined }), cidrs: fc.option(fc.uniqueArray(bigCidr, { minLength: 1, maxLength: 3 }), { nil: undefined }) }, { requiredKeys: [] }),
  { nil: undefined, freq: 6 },
);
const bigPort = fc.integer({ min: 1, max: 64 });
const bigRule = fc.record({
  action: fc.constantFrom('allow' as const, 'deny' as const),
  from: bigSelector,
  to: bigSelector,
  body: fc.oneof(
    fc.record({ proto: fc.constant('any' as const) }),
    fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), ports: fc.option(fc.array(fc.oneof(bigPort.map(String), fc.tuple(bigPort, bigPort).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`)), { minLength: 1, maxLength: 4 }), { nil: undefined, freq: 4 }) }),
    fc.record({ proto: fc.constantFrom('icmp' as const, 'icmpv6' as const), icmpTypes: fc.option(fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 3 }), { nil: undefined }) }),
  ),
});
const bigPolicy = fc.record({ defaultAction: fc.constantFrom('allow' as const, 'deny' as const), rules: fc.array(bigRule, { minLength: 200, maxLength: 600 }) }).map(({ defaultAction, rules }) => {
  const mk = (r: (typeof rules)[number], n: number): PolicyRule => {
    const out: PolicyRule = { id: `r${n}`, action: r.action, ...r.body };
    if (r.from !== undefined) out.from = strip(r.from);
    if (r.to !== undefined) out.to = strip(r.to);
    for (const k of ['proto', 'ports', 'icmpTypes'] as const) if (out[k] === undefined) delete out[k];
    return out;
  };
  const third = Math.floor(rules.length / 3);
  return { defaultAction, tiers: { admin: rules.slice(0, third).map((r, i) => mk(r, i)), network: rules.slice(third, 2 * third).map((r, i) => mk(r, third + i)), service: rules.slice(2 * third).map((r, i) => mk(r, 2 * third + i)) } } satisfies Policy;
});
const bigPacket = fc.record({ proto: fc.constantFrom(1, 6, 17, 47, 58), v6: fc.boolean(), src: fc.nat(63), dst: fc.nat(63), key: fc.integer({ min: 0, max: 70 }) })
  .map(({ v6, src, dst, ...rest }) => ({ ...rest, src: (v6 ? BIG6 : BIG4)[src], dst: (v6 ? BIG6 : BIG4)[dst] }));

describe('policy: compiled evaluator equals the reference on large rule sets', () => {
  it('40 rule sets of 200–600 rules (40 groups, nested CIDRs of both families) × 250 packets', () => {
    let verdicts = 0;
    let ruled = 0;
    fc.assert(
      fc.property(bigPolicy, fc.array(fc.subarray(BIG_GROUPS, { maxLength: 4 }), { minLength: 128, maxLength: 128 }), fc.array(bigPacket, { minLength: 250, maxLength: 250 }), (pol, groups, packets) => {
        const identity = new IdentityTable();
        identity.replace(groups.map((gs, i) => [i < 64 ? BIG4[i] : BIG6[i - 64], gs] as const));
        const groupsOf = (ip: string) => identity.groupsOf(ip);
        const c = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1);
        // Few pairs per rule (many residual rules) and no row key index (every cell probed).
        const capped = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1, { maxCellsPerRule: 4, rowIndex: false });
        expect(capped.residualCount).toBeGreaterThan(0);
        for (const p of packets as RefPacket[]) {
          const q = { ...p, key: p.proto === 47 ? 0 : p.key };
          const ref = referenceVerdict(pol, q, groupsOf);
          const r = compiledVerdict(c, identity, q);
          expect(r < 0 ? null : c.ids[r]).toBe(ref.ruleId);
          expect(compiledVerdict(capped, identity, q)).toBe(r);
          verdicts++;
          if (r >= 0) ruled++;
        }
      }),
      { numRuns: 40, seed: 0xb16 },
    );
    expect(verdicts).toBe(10_000);
    expect(ruled).toBeGreaterThan(3000);
  }, 120_000);
});

/**
 * Long rows: few atoms, many ports over the whole port space (and ICMP types), so rows get more
 * than 16 key pieces and their bucket tables (compile-rows.ts) are used; packets' keys are
 * drawn around bucket edges (multiples of 256, ± 1) as well as anywhere.
 */
const widePort = fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 255 }).chain((b) => fc.integer({ min: -1, max: 1 }).map((e) => Math.min(65535, Math.max(0, b * 256 + e)))));
const wideRule = fc.record({
  action: fc.constantFrom('allow' as const, 'deny' as const),
  from: fc.option(fc.record({ groups: fc.uniqueArray(fc.constantFrom('web', 'db'), { minLength: 1, maxLength: 2 }) }), { nil: undefined, freq: 3 }),
  to: fc.option(fc.record({ cidrs: fc.constantFrom('198.19.0.0/28', '198.19.0.8/29', '198.19.0.9').map((c) => [c]) }), { nil: undefined, freq: 3 }),
  body: fc.oneof(
    { weight: 4, arbitrary: fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), ports: fc.array(fc.tuple(widePort, fc.nat(300)).map(([a0, w]) => { const a = Math.max(1, a0); return w < 150 ? String(a) : `${a}-${Math.min(65535, a + w)}`; }), { minLength: 1, maxLength: 3 }) }) },
    { weight: 1, arbitrary: fc.record({ proto: fc.constant('icmp' as const), icmpTypes: fc.uniqueArray(fc.nat(255), { minLength: 1, maxLength: 4 }) }) },
  ),
});
const widePolicy = fc.array(wideRule, { minLength: 40, maxLength: 160 }).map((rules): Policy => ({
  defaultAction: 'deny',
  tiers: { network: rules.map((r, n) => ({ id: `w${n}`, action: r.action, ...r.body, ...(r.from ? { from: r.from } : {}), ...(r.to ? { to: r.to } : {}) })) },
}));

describe('policy: long rows (bucket tables) equal the reference', () => {
  it('60 rule sets of 40–160 rules over the whole port space × 100 packets, keys around bucket edges', () => {
    let bucketed = 0;
    let verdicts = 0;
    fc.assert(
      fc.property(widePolicy, fc.array(fc.record({ proto: fc.constantFrom(1, 6, 17), src: fc.nat(15), dst: fc.nat(15), key: widePort }), { minLength: 100, maxLength: 100 }), (pol, packets) => {
        const identity = new IdentityTable();
        identity.replace(ADDRS4.map((a, i) => [a, i % 3 === 0 ? ['web'] : i % 3 === 1 ? ['db'] : ['web', 'db']] as const));
        const c = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1);
        const probed = new CompiledPolicy(validatePolicy(pol), (g) => identity.groupId(g), 1, { rowIndex: false });
        if ((c as unknown as { rk: { bucket: Int32Array } }).rk.bucket.length > 0) bucketed++;
        for (const p of packets) {
          const q: RefPacket = { proto: p.proto, src: ADDRS4[p.src], dst: ADDRS4[p.dst], key: p.proto === 1 ? p.key & 255 : p.key };
          const r = compiledVerdict(c, identity, q);
          expect(r < 0 ? null : c.ids[r]).toBe(referenceVerdict(pol, q, (ip) => identity.groupsOf(ip)).ruleId);
          expect(compiledVerdict(probed, identity, q)).toBe(r);
          verdicts++;
        }
      }),
      { numRuns: 60, seed: 0xb0c },
    );
    expect(verdicts).toBe(6_000);
    // The test is about bucket tables: most rule sets must have some.
    expect(bucketed).toBeGreaterThan(45);
  }, 300_000);
});
