import { describe, expect, it } from 'vitest';
import { parseIpv4Address } from '@overlay/dataplane';
import { IdentityTable } from '../src/policy/identity.js';
import { PolicyError } from '../src/policy/rules.js';

const A = (s: string) => parseIpv4Address(s) | 0;
const groupsAt = (t: IdentityTable, off: number) => {
  const out: number[] = [];
  for (let w = 0; w < t.words; w++) for (let b = 0; b < 32; b++) if (t.bits[off + w] & (1 << b)) out.push(w * 32 + b);
  return out;
};

describe('identity table: Group Policy IDs (VXLAN-GBP)', () => {
  it('an address sends its ID; a declared ID stands for its groups; undeclared and absent give -1', () => {
    const t = new IdentityTable();
    t.set('198.19.0.1', ['web'], 10);
    t.set('198.19.0.2', ['db']);
    t.defineGroupPolicy(20, ['db', 'ops']);
    expect(t.groupPolicyOf(A('198.19.0.1'))).toBe(10);
    expect(t.groupPolicyOf(A('198.19.0.2'))).toBe(-1);
    expect(t.groupPolicyOf(A('198.19.0.3'))).toBe(-1);
    expect(groupsAt(t, t.lookupGroupPolicy(20))).toEqual([t.groupId('db'), t.groupId('ops')].sort((x, y) => x - y));
    expect(t.lookupGroupPolicy(10)).toBe(-1); // sent by an address, but not declared here
    expect(t.lookupGroupPolicy(-1)).toBe(-1);
    expect(t.lookupGroupPolicy(70000)).toBe(-1);
    // Address lookups are unchanged by the declared IDs.
    expect(groupsAt(t, t.lookup(A('198.19.0.2')))).toEqual([t.groupId('db')]);
  });

  it('a declaration survives growth of the group bitsets; forgetting it and replacing the table clear it', () => {
    const t = new IdentityTable();
    t.defineGroupPolicy(5, ['g0']);
    for (let i = 1; i < 70; i++) t.groupId(`g${i}`); // words grow from 1 to 4
    t.defineGroupPolicy(6, ['g69']);
    expect(groupsAt(t, t.lookupGroupPolicy(5))).toEqual([t.groupId('g0')]);
    expect(groupsAt(t, t.lookupGroupPolicy(6))).toEqual([69]);
    t.defineGroupPolicy(5, []);
    expect(t.lookupGroupPolicy(5)).toBe(-1);
    t.set('198.19.0.1', ['g1'], 7);
    t.replace([['198.19.0.9', ['g2'], 8]]);
    expect(t.groupPolicyOf(A('198.19.0.1'))).toBe(-1);
    expect(t.groupPolicyOf(A('198.19.0.9'))).toBe(8);
  });

  it('refuses IDs outside 1..65535 with the path', () => {
    const t = new IdentityTable();
    for (const bad of [0, 65536, 1.5, -2]) {
      expect(() => t.defineGroupPolicy(bad, ['x'])).toThrow(PolicyError);
      expect(() => t.set('198.19.0.1', ['x'], bad)).toThrow(/gbpId/);
    }
  });
});
