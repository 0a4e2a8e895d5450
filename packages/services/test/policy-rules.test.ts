import { describe, expect, it } from 'vitest';
import { parseIpv4Address } from '@overlay/dataplane';
import { CompiledPolicy } from '../src/policy/compile.js';
import { IdentityTable } from '../src/policy/identity.js';
import { PolicyError, validatePolicy, type Policy } from '../src/policy/rules.js';

function errorOf(p: unknown): PolicyError {
  try {
    validatePolicy(p);
  } catch (e) {
    if (e instanceof PolicyError) return e;
    throw e;
  }
  throw new Error('no error');
}

const rule = (extra: Record<string, unknown>) => ({ defaultAction: 'deny', tiers: { network: [{ id: 'ok', action: 'allow' }, { id: 'r', action: 'allow', ...extra }] } });

describe('policy rules: validation', () => {
  it.each([
    [null, 'policy'],
    [{ defaultAction: 'maybe', tiers: {} }, 'defaultAction'],
    [{ defaultAction: 'deny', tiers: { everyone: [] } }, 'tiers.everyone'],
    [{ defaultAction: 'deny', tiers: { admin: {} } }, 'tiers.admin'],
    [rule({ action: 'permit' }), 'tiers.network[1].action'],
    [rule({ id: 'ok' }), 'tiers.network[1].id'],
    [rule({ proto: 'sctp' }), 'tiers.network[1].proto'],
    [rule({ proto: 'tcp', ports: ['80', '90-70'] }), 'tiers.network[1].ports[1]'],
    [rule({ proto: 'tcp', ports: ['0'] }), 'tiers.network[1].ports[0]'],
    [rule({ proto: 'udp', ports: ['65536'] }), 'tiers.network[1].ports[0]'],
    [rule({ proto: 'any', ports: ['80'] }), 'tiers.network[1].ports'],
    [rule({ proto: 'tcp', icmpTypes: [8] }), 'tiers.network[1].icmpTypes'],
    [rule({ proto: 'icmp', icmpTypes: [256] }), 'tiers.network[1].icmpTypes[0]'],
    [rule({ from: { groups: [] } }), 'tiers.network[1].from.groups'],
    [rule({ to: { cidrs: ['198.19.0.1/24'] } }), 'tiers.network[1].to.cidrs[0]'],
    [rule({ to: { cidrs: ['198.19.0.0/33'] } }), 'tiers.network[1].to.cidrs[0]'],
    [rule({ to: { cidrs: ['2001:db8::1/32'] } }), 'tiers.network[1].to.cidrs[0]'],
    [rule({ to: { cidrs: ['2001:db8::/129'] } }), 'tiers.network[1].to.cidrs[0]'],
    [rule({ to: { cidrs: ['2001:db8:::/64'] } }), 'tiers.network[1].to.cidrs[0]'],
    [rule({ proto: 'icmpv6', ports: ['80'] }), 'tiers.network[1].ports'],
    [rule({ proto: 'tcp', icmpTypes: [128] }), 'tiers.network[1].icmpTypes'],
    [rule({ to: { hosts: ['a'] } }), 'tiers.network[1].to.hosts'],
    [rule({ log: 'yes' }), 'tiers.network[1].log'],
    [rule({ priority: 1 }), 'tiers.network[1].priority'],
  ])('%j → PolicyError at %s', (p, path) => {
    const e = errorOf(p);
    expect(e.code).toBe('OVL_ERR_POLICY');
    expect(e.path).toBe(path);
    expect(e.message.startsWith(`${path}: `)).toBe(true);
  });

  it('rule ids are unique across tiers; the error names both places', () => {
    const e = errorOf({ defaultAction: 'deny', tiers: { admin: [{ id: 'x', action: 'deny' }], service: [{ id: 'x', action: 'allow' }] } });
    expect(e.path).toBe('tiers.service[0].id');
    expect(e.message).toContain('tiers.admin[0]');
  });

  it('a valid policy normalises in tier order admin, network, service whatever the key order', () => {
    const n = validatePolicy({ tiers: { service: [{ id: 's', action: 'allow' }], admin: [{ id: 'a', action: 'deny', proto: 'udp', ports: ['53', 8000] }] }, defaultAction: 'allow' });
    expect(n.rules.map((r) => [r.id, r.tier, r.proto, r.ranges, r.log])).toEqual([
      ['a', 'admin', 17, [53, 53, 8000, 8000], true],
      ['s', 'service', 0, undefined, false],
    ]);
  });
});

describe('policy rules: an endpoint with groups and CIDRs matches either (union)', () => {
  const policy: Policy = {
    defaultAction: 'deny',
    tiers: { network: [{ id: 'db-clients', action: 'allow', from: { groups: ['web'], cidrs: ['198.19.9.0/24'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432'] }] },
  };
  const id = new IdentityTable();
  id.set('198.19.0.1', ['web']);
  id.set('198.19.0.2', ['db']);
  id.set('198.19.9.7', ['batch']);
  const c = new CompiledPolicy(validatePolicy(policy), (g) => id.groupId(g), 1);
  const verdict = (src: string, dst = '198.19.0.2') => {
    const s = parseIpv4Address(src) | 0;
    const d = parseIpv4Address(dst) | 0;
    return c.evaluate(6, s, d, 5432, id, id.lookup(s), id.lookup(d));
  };
  it('in the group but outside the CIDR: matches', () => expect(verdict('198.19.0.1')).toBe(0));
  it('inside the CIDR but not in the group: matches', () => expect(verdict('198.19.9.7')).toBe(0));
  it('in neither: no match (default)', () => expect(verdict('198.19.0.3')).toBe(-1));
  it('destination not in db: no match', () => expect(verdict('198.19.0.1', '198.19.0.1')).toBe(-1));
});

describe('identity table', () => {
  it('replace() rebuilds the whole table at once, all or nothing; lookups follow', () => {
    const id = new IdentityTable();
    id.set('198.19.0.1', ['web']);
    const v = id.version;
    const entries = Array.from({ length: 3000 }, (_, i) => [`198.19.${i >> 8}.${i & 255}`, i % 2 ? ['db'] : ['web', `g${i % 70}`]] as const);
    id.replace(entries);
    expect(id.version).toBe(v + 1 + 1); // one rebuild, plus the one growing the bitset past 32 groups
    expect(id.size).toBe(3000);
    expect(id.groupsOf('198.19.0.3')).toEqual(['db']);
    const bit = (ip: string, group: string) => {
      const base = id.lookup(parseIpv4Address(ip) | 0);
      const g = id.groupId(group);
      return base < 0 ? -1 : (id.bits[base + (g >>> 5)] >>> (g & 31)) & 1;
    };
    expect([bit('198.19.11.182', 'web'), bit('198.19.11.182', `g${2998 % 70}`), bit('198.19.11.182', 'db')]).toEqual([1, 1, 0]); // i = 2998
    expect([bit('198.19.11.183', 'web'), bit('198.19.11.183', 'db')]).toEqual([0, 1]); // i = 2999
    expect(id.lookup(parseIpv4Address('198.19.200.1') | 0)).toBe(-1);
    expect(() => id.replace([['198.19.0.1', ['web']], ['nope', ['x']]])).toThrow(PolicyError);
    expect(id.size).toBe(3000);
  });
});
