import { afterEach, describe, expect, it } from 'vitest';
import { createDataplane, parseIpAddress, type Dataplane } from '@overlay/dataplane';
import { buildFrame, createMemoryDevice, createTestnet, type MemoryDevice } from '@overlay/dataplane/testing';
import { LiveConfig, identityEntries, validateConfig } from '@overlay/agent';

/**
 * IPv6 endpoints get identities from the agent: the policy the config installs judges an IPv6
 * flow by the groups of its addresses (endpoint groups and service names), on two in-memory
 * hosts, each running the agent's LiveConfig (egress judged at a, ingress at b).
 */
const key = (n: number, b: number) => Buffer.alloc(n, b).toString('base64');
const VNI = 100;
const MAC = (n: number) => `02:00:00:00:00:0${n}`;
const V6 = (n: number) => `2001:db8:0:0::${n}`; // written long on purpose: entries are canonical
const U = (n: number) => `198.18.0.${n}`;

const doc = (): any => ({
  version: 1,
  encryption: { insecure: true },
  hosts: { a: { listen: `${U(1)}:7946`, signingKey: key(64, 1) }, b: { listen: `${U(2)}:7946`, signingKey: key(64, 2) } },
  networks: [{ name: 'blue', vni: VNI, subnet: '198.19.0.0/24', device: 'ov0', endpoints: [
    { id: 'web-1', host: 'a', mac: MAC(1), ipv4: '198.19.0.1', ipv6: V6(1), groups: ['web'] },
    { id: 'db-2', host: 'b', mac: MAC(2), ipv6: V6(2) },
    { id: 'misc-3', host: 'b', mac: MAC(3), ipv6: V6(3), groups: ['misc'] },
  ] }],
  services: [{ name: 'db', network: 'blue', instances: [{ id: 'db', endpoint: 'db-2' }] }],
  policies: [{ network: 'blue', defaultAction: 'deny', tiers: { network: [
    { id: 'web-db', action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432'] },
  ] } }],
});

/** An Ethernet + IPv6 + TCP frame (no payload; the filter does not check L4 checksums). */
function tcp6(src: number, dst: number, sport: number, dport: number, flags: number): Buffer {
  const p = new Uint8Array(40 + 20);
  p[0] = 0x60;
  p[5] = 20; // payload length
  p[6] = 6; // TCP
  p[7] = 64;
  p.set(parseIpAddress(V6(src)).bytes, 8);
  p.set(parseIpAddress(V6(dst)).bytes, 24);
  p[40] = sport >> 8; p[41] = sport & 255; p[42] = dport >> 8; p[43] = dport & 255;
  p[52] = 5 << 4;
  p[53] = flags;
  return buildFrame({ src: MAC(src), dst: MAC(dst), etherType: 0x86dd, payload: p });
}

const open: { dp: Dataplane; live: LiveConfig }[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) {
    h.live.close();
    await h.dp.close();
  }
});

describe('agent: IPv6 endpoint addresses in the identity table', () => {
  it('identityEntries lists an endpoint\'s IPv6 address (canonical) with its groups and services, and learned instances\' IPv6 addresses', () => {
    const a = validateConfig(doc(), undefined, { host: 'a' });
    expect(identityEntries(a, [{ service: 'api', ipv4: new Uint8Array(0), ipv6: parseIpAddress('2001:db8::77').bytes }])).toEqual([
      ['198.19.0.1', ['web']],
      ['2001:db8::1', ['web']],
      ['2001:db8::2', ['db']],
      ['2001:db8::3', ['misc']],
      ['2001:db8::77', ['api']],
    ]);
  });

  it('an IPv6 flow web → db:5432 passes both hosts\' filters; web → misc and web → db:80 are denied by group', async () => {
    const net = createTestnet();
    const devs: MemoryDevice[] = [];
    const lives: LiveConfig[] = [];
    for (const [i, host] of [[1, 'a'], [2, 'b']] as const) {
      const dev = createMemoryDevice({ name: 'ov0' });
      const dp = createDataplane({ transport: net.transport(U(i)), networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop' }] });
      const live = new LiveConfig({ cfg: validateConfig(doc(), undefined, { host }), agent: { publish: () => undefined, unpublish: () => true }, instances: () => undefined, dataplane: dp, log: () => undefined, policyLog: () => undefined });
      open.push({ dp, live });
      live.start();
      dp.setFdb(VNI, MAC(1), { address: U(1) });
      for (const m of [2, 3]) dp.setFdb(VNI, MAC(m), { address: U(2) });
      dp.start();
      devs.push(dev);
      lives.push(live);
    }
    const [fa, fb] = lives.map((l) => l.filters.get(VNI)!);
    expect(fa.identity.groupsOf(V6(2))).toEqual(['db']);
    /** Inject at web's device; what host b's device received. */
    const send = async (frame: Buffer) => {
      devs[0].inject(frame);
      await net.idle();
      return devs[1].received.splice(0).length;
    };
    expect(await send(tcp6(1, 2, 40000, 5432, 0x02))).toBe(1);
    expect([fa.conntrack6.size, fb.conntrack6.size]).toEqual([1, 1]);
    expect(await send(tcp6(1, 3, 40001, 5432, 0x02))).toBe(0);
    expect(await send(tcp6(1, 2, 40002, 80, 0x02))).toBe(0);
    expect(fa.stats().counters.inside_denied).toBe(2);
    expect(fa.explain({ src: V6(1), dst: V6(2), proto: 'tcp', port: 5432 })).toMatchObject({ action: 'allow', ruleId: 'web-db', srcGroups: ['web'], dstGroups: ['db'] });
    // The default at b denies what a has no rule for either: b's own misc → web.
    devs[1].inject(tcp6(3, 1, 40003, 5432, 0x02));
    await net.idle();
    expect(devs[0].received.splice(0)).toHaveLength(0);
    expect(fb.stats().counters.inside_denied).toBe(1);
  });
});
