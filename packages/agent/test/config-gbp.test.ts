import { describe, expect, it } from 'vitest';
import { AgentConfigError, LiveConfig, identityEntries, validateConfig } from '@overlay/agent';
import { parseIpv4Address } from '@overlay/dataplane';

const key = (n: number, b: number) => Buffer.alloc(n, b).toString('base64');
const doc = (groupIds: Record<string, number>[], gbp = true): any => ({
  version: 1,
  name: 'a',
  listen: '198.18.0.1:7946',
  signingKey: key(64, 1),
  encryption: { insecure: true },
  networks: [
    { name: 'blue', vni: 100, subnet: '198.19.0.0/24', gbp, endpoints: [{ id: 'x', mac: '02:00:00:00:00:01', ipv4: '198.19.0.1', groups: ['web', 'ops'] }] },
    { name: 'red', vni: 200, subnet: '198.19.1.0/24', endpoints: [{ id: 'y', mac: '02:00:00:00:00:02', ipv4: '198.19.1.1', groups: ['db'] }] },
  ],
  policies: groupIds.map((g, i) => ({ network: i ? 'red' : 'blue', defaultAction: 'deny', groupIds: g })),
});

describe('config: VXLAN-GBP (network gbp, policies\' groupIds)', () => {
  it('a network turns GBP on; an address sends the ID of its first group that has one', () => {
    const c = validateConfig(doc([{ ops: 30 }, { db: 20, web: 10 }]));
    expect(c.networks.map((n) => n.gbp)).toEqual([true, undefined]);
    expect(identityEntries(c)).toEqual([['198.19.0.1', ['ops', 'web'], 10], ['198.19.1.1', ['db'], 20]]);
    // The live config declares the IDs: a packet arriving with ID 30 stands for group ops.
    const live = new LiveConfig({ cfg: c, agent: { publish() {}, unpublish() { return true; } } as any, instances: () => undefined, log: () => {} });
    live.start();
    const t = live.identity;
    const bit = (g: string) => (t.bits[t.lookupGroupPolicy(30) + (t.groupId(g) >>> 5)] >>> (t.groupId(g) & 31)) & 1;
    expect([bit('ops'), bit('web')]).toEqual([1, 0]);
    expect(t.groupPolicyOf(parseIpv4Address('198.19.0.1') | 0)).toBe(10);
  });

  it('refuses a group with two IDs, an ID for two groups and IDs outside 1..65535, by path', () => {
    const refused = (d: any) => {
      try {
        validateConfig(d);
      } catch (e) {
        expect(e).toBeInstanceOf(AgentConfigError);
        return [(e as AgentConfigError).field, ...(e as AgentConfigError).problems.map((p) => p.path)];
      }
      return [];
    };
    expect(refused(doc([{ web: 10 }, { web: 11 }]))).toContain('/policies/1/groupIds/web');
    expect(refused(doc([{ web: 10 }, { db: 10 }]))).toContain('/policies/1/groupIds/db');
    expect(refused(doc([{ web: 0 }]))).toContain('/policies/0/groupIds/web');
    expect(refused(doc([{ web: 65536 }]))).toContain('/policies/0/groupIds/web');
    expect(refused({ ...doc([]), networks: [{ ...doc([]).networks[0], gbp: 'yes' }] })).toContain('/networks/0/gbp');
  });
});
