import { describe, expect, it } from 'vitest';
import { parseIpAddress } from '@overlay/dataplane';
import { parseHealthSpec, type ProbeResult, type VipSpec } from '@overlay/services';
import { LOCAL, LocalServices, ServiceView, SimCluster, formatStatus, parseConfig, serviceKind, suspicionTimeoutMs, type EndpointRecord } from '@overlay/agent';
import { ServiceVipSync, allocateVips, fnv1a, type VipControl } from '../src/services-vip.js';

const blue = { name: 'blue', vni: 100 };
const ip4 = (i: number) => Uint8Array.of(198, 19, 0, i);
const mac = (i: number) => Uint8Array.of(2, 0, 0, 0, 0, i);
const u32 = (t: string) => t.split('.').reduce((a, b) => a * 256 + Number(b), 0);

/** A VipControl that keeps what it was told, per vni/vip. */
function recorder(): VipControl & { specs: Map<string, VipSpec> } {
  const specs = new Map<string, VipSpec>();
  return { specs, setVip: (vni, s) => void specs.set(`${vni}/${s.vip}`, s), removeVip: (vni, v) => void specs.delete(`${vni}/${v}`) };
}

/** 3 agents; hosts 0 and 1 run `web` in vip mode (no declared VIP), host 2 balances. */
function cluster(probe: (address: string) => boolean, drainMs = 10_000, net = { subnet: '198.19.0.0/24', resolver: '198.19.0.254' }) {
  const views = Array.from({ length: 3 }, () => new ServiceView());
  const kinds = views.map((v) => serviceKind(v));
  const c = new SimCluster({ n: 3, seed: 5, config: LOCAL, networks: [blue], agent: (i) => ({ kinds: [kinds[i]] }) });
  const fake = async (t: { address: string }): Promise<ProbeResult> => (probe(t.address) ? { ok: true, why: 'ok', detail: '', output: '', ms: 1 } : { ok: false, why: 'refused', detail: 'ECONNREFUSED', output: '', ms: 1 });
  const locals = c.agents.map((a, i) => new LocalServices({ agent: a, kind: kinds[i], now: () => c.clock.now(), checker: { clock: c.clock, probes: { tcp: fake } } }));
  const control = recorder();
  const a = c.agents[2];
  const sync = new ServiceVipSync({
    view: views[2], control, networks: [{ ...blue, ...net }],
    endpoint: (n, id) => a.endpoint(n, id),
    endpoints: (n) => a.table.ofKind({ code: 1 } as never, n) as Iterable<EndpointRecord>,
    ownerState: (o) => (o === a.name ? 'alive' : a.membership.stateOf(o)),
    drainMs,
  });
  return { c, views, locals, control, sync };
}

async function advance(c: SimCluster, ms: number, until?: () => boolean): Promise<number> {
  const start = c.clock.now();
  while (c.clock.now() - start < ms) {
    if (until?.()) break;
    c.run(20);
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  }
  return c.clock.now() - start;
}

const spec = parseHealthSpec({ kind: 'tcp', interval: '200ms', retries: 2, rise: 1, damp: '1s' });
const web = (i: number) => ({ network: 'blue', service: 'web', id: `web-${i}`, endpoint: `ep-${i}`, ipv4: ip4(i + 1), ports: [{ port: 8080, proto: 'tcp' as const, name: '' }], mode: 'vip' as const, health: spec });
const backends = (control: ReturnType<typeof recorder>): Record<string, string | number> => {
  const all = [...control.specs.values()];
  return all.length === 1 ? Object.fromEntries(all[0].backends.map((b) => [b.id, b.state])) : { vips: all.length };
};

describe('VIPs in the agent', () => {
  it('allocation: deterministic whatever the order, collision-free, in the upper half, past taken addresses', () => {
    const names = Array.from({ length: 100 }, (_, i) => `svc-${i}`);
    const taken = new Set([u32('198.19.0.254'), u32('198.19.0.200')]);
    const a = allocateVips('198.19.0.0/24', names, taken);
    const b = allocateVips('198.19.0.0/24', [...names].reverse(), new Set(taken));
    expect([...a].sort()).toEqual([...b].sort());
    expect(a.size).toBe(100);
    const addrs = [...a.values()].map(u32);
    expect(new Set(addrs).size).toBe(100);
    for (const x of addrs) {
      expect(x).toBeGreaterThanOrEqual(u32('198.19.0.128'));
      expect(x).toBeLessThanOrEqual(u32('198.19.0.254'));
      expect(taken.has(x)).toBe(false);
    }
    // Two names that hash to one start: the smaller gets it, the other the next free address.
    const size = 127; // .128 .. .254
    const first = 'a';
    let second = '';
    for (let i = 0; !second; i++) if (fnv1a(`z${i}`) % size === fnv1a(first) % size) second = `z${i}`;
    const pair = allocateVips('198.19.0.0/24', [second, first], new Set());
    expect(u32(pair.get(first)!)).toBe(u32('198.19.0.128') + (fnv1a(first) % size));
    expect(u32(pair.get(second)!)).toBe(u32(pair.get(first)!) + 1);
    // A full range leaves the rest without a VIP; a /30 uses both host addresses.
    expect(allocateVips('198.19.0.0/29', ['a', 'b', 'c', 'd']).size).toBe(3);
    expect([...allocateVips('198.19.0.0/30', ['a', 'b'], new Set()).values()].sort()).toEqual(['198.19.0.1', '198.19.0.2']);
  });

  it('backends follow health, a tombstone drains, owner death removes them; the VIP is the same on every host', async () => {
    const down = new Set<string>();
    const { c, views, locals, control, sync } = cluster((a) => !down.has(a), 300);
    c.bootstrapAll();
    for (const i of [0, 1, 2]) c.agents[i].publish(blue, { id: `ep-${i}`, mac: mac(i + 1), ipv4: ip4(i + 1) });
    for (const i of [0, 1]) locals[i].add(web(i));
    const both = () => JSON.stringify(backends(control)) === JSON.stringify({ 'web-0': 'healthy', 'web-1': 'healthy' });
    expect(await advance(c, 10_000, both)).toBeLessThan(10_000);
    const [s] = [...control.specs.values()];
    expect(s.ports).toEqual([8080]);
    expect(s.backends.map((b) => [b.ip, b.mac])).toEqual([['198.19.0.1', '02:00:00:00:00:01'], ['198.19.0.2', '02:00:00:00:00:02']]);
    expect(s.vip).toBe(allocateVips('198.19.0.0/24', ['web'], new Set([u32('198.19.0.254'), u32('198.19.0.1'), u32('198.19.0.2'), u32('198.19.0.3')])).get('web'));
    // Another host computing from its own view gets the same address.
    const other = recorder();
    const a0 = c.agents[0];
    const sync0 = new ServiceVipSync({
      view: views[0], control: other, networks: [{ ...blue, subnet: '198.19.0.0/24', resolver: '198.19.0.254' }],
      endpoint: (n, id) => a0.endpoint(n, id), endpoints: (n) => a0.table.ofKind({ code: 1 } as never, n) as Iterable<EndpointRecord>,
      ownerState: (o) => (o === a0.name ? 'alive' : a0.membership.stateOf(o)),
      self: a0.name,
    });
    sync0.flush();
    expect([...other.specs.values()].map((x) => x.vip)).toEqual([s.vip]);
    // Its own instance is a backend there too, marked local (the translator hairpins flows to it).
    expect(backends(other)).toEqual({ 'web-0': 'healthy', 'web-1': 'healthy' });
    expect([...other.specs.values()][0].backends.map((x) => [x.id, x.local])).toEqual([['web-0', true], ['web-1', false]]);
    expect(s.backends.every((x) => x.local === false)).toBe(true);
    sync0.close();
    expect(other.specs.size).toBe(0);

    down.add('198.19.0.2');
    expect(await advance(c, 10_000, () => backends(control)['web-1'] === 'down')).toBeLessThan(3_000);
    expect(backends(control)).toEqual({ 'web-0': 'healthy', 'web-1': 'down' });
    down.clear();
    expect(await advance(c, 10_000, both)).toBeLessThan(10_000);

    // Withdrawn by its live owner: draining, then gone after drainMs.
    locals[1].remove('blue', 'web-1');
    await advance(c, 5_000, () => views[2].instances('blue', 'web').length === 1);
    await Promise.resolve();
    expect(backends(control)).toEqual({ 'web-0': 'healthy', 'web-1': 'draining' });
    await new Promise((r) => setTimeout(r, 600));
    expect(backends(control)).toEqual({ 'web-0': 'healthy' });

    // Owner dead: removed in the same turn as the view drops it.
    locals[1].add(web(1));
    expect(await advance(c, 10_000, both)).toBeLessThan(10_000);
    c.kill(0);
    const bound = suspicionTimeoutMs(LOCAL, 3) * 2 + 5_000;
    expect(await advance(c, bound, () => !views[2].instances('blue', 'web').some((x) => x.id === 'web-0'))).toBeLessThan(bound);
    await Promise.resolve(); // the recompute is one microtask after the view's change
    expect(backends(control)).toEqual({ 'web-1': 'healthy' });
    expect(sync.counters.snapshot().drains_started).toBe(1);
    expect(formatStatus({ ...c.agents[2].status(), services: { resolvers: {}, instances: [], local: [], vips: sync.list(), counters: {} } })).toMatch(new RegExp(`vip web\\.blue +${s.vip.replaceAll('.', '\\.')} \\(allocated\\) +ports 8080  backends web-1=198\\.19\\.0\\.2:healthy`));
    sync.close();
    expect(control.specs.size).toBe(0);
    for (const l of locals) await l.stop();
  });

  it('a declared VIP is used; two services declaring one VIP: the smaller name gets it; dnsrr gets none', async () => {
    const { c, views, locals, control, sync } = cluster(() => true);
    c.bootstrapAll();
    for (const i of [0, 1]) c.agents[i].publish(blue, { id: `ep-${i}`, mac: mac(i + 1), ipv4: ip4(i + 1) });
    const vip = Uint8Array.of(198, 19, 0, 100);
    locals[0].add({ ...web(0), service: 'zeta', vip });
    locals[1].add({ ...web(1), service: 'alpha', vip });
    locals[1].add({ ...web(1), service: 'plain', id: 'plain-1', mode: 'dnsrr' as const });
    await advance(c, 10_000, () => sync.counters.snapshot().declared_conflicts > 0 && views[2].services('blue').includes('plain'));
    await Promise.resolve();
    expect(control.specs.size).toBe(1);
    expect(sync.list().map((v) => [v.service, v.vip, v.allocated])).toEqual([['alpha', '198.19.0.100', false]]);
    sync.close();
    for (const l of locals) await l.stop();
  });

  it('a declared IPv6 VIP: its backends are the instances\' IPv6 addresses; one without an IPv6 address is no backend', async () => {
    const { c, locals, control, sync } = cluster(() => true);
    c.bootstrapAll();
    for (const i of [0, 1]) c.agents[i].publish(blue, { id: `ep-${i}`, mac: mac(i + 1), ipv4: ip4(i + 1) });
    const vip = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 1);
    const six = (i: number) => Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, i + 1);
    locals[0].add({ ...web(0), service: 'web6', vip, ipv6: six(0) });
    locals[1].add({ ...web(1), service: 'web6', vip, ipv6: six(1) });
    locals[1].add({ ...web(1), service: 'web6', id: 'web-v4only', vip });
    await advance(c, 10_000, () => [...control.specs.values()].some((s) => s.backends.length === 2));
    await Promise.resolve();
    const [s] = [...control.specs.values()];
    expect(s.vip).toBe('2001:db8:64::ff01');
    expect(s.backends.map((b) => [b.id, b.ip])).toEqual([['web-0', '2001:db8:64::1'], ['web-1', '2001:db8:64::2']]);
    sync.close();
    for (const l of locals) await l.stop();
  });

  it('config: vip mode without a VIP is accepted on an IPv4 subnet', () => {
    const cfg = parseConfig(`
name: h1
listen: 198.18.0.1:7946
signingKey: ${Buffer.alloc(64, 7).toString('base64')}
encryption: { insecure: true }
networks:
  - { name: blue, vni: 100, subnet: 198.19.0.0/24, endpoints: [{ id: h1, mac: "02:00:00:00:00:01", ipv4: 198.19.0.1 }] }
services:
  - { name: web, network: blue, endpointMode: vip, instances: [{ id: web-1, endpoint: h1, ports: [{ port: 80 }] }] }
`);
    expect(cfg.services[0]).toMatchObject({ endpointMode: 'vip', vip: undefined });
  });

  it('IPv6 allocation: deterministic, in the upper half of the host range without its last address, past taken addresses', () => {
    const big = (t: string) => [...parseIpAddress(t).bytes].reduce((n, x) => (n << 8n) | BigInt(x), 0n);
    const names = Array.from({ length: 100 }, (_, i) => `svc-${i}`);
    const a = allocateVips('2001:db8:64::/64', names, new Set([big('2001:db8:64::ffff:ffff:ffff:fffe')]));
    const b = allocateVips('2001:db8:64::/64', [...names].reverse());
    expect(a.size).toBe(100);
    expect(new Set(a.values()).size).toBe(100);
    for (const [name, vip] of a) {
      const n = big(vip);
      expect(n >> 64n, vip).toBe(big('2001:db8:64::') >> 64n);
      expect(n & (1n << 63n), vip).not.toBe(0n); // upper half of the interface identifiers
      expect(n & ((1n << 64n) - 1n), vip).not.toBe((1n << 64n) - 1n);
      expect(b.get(name)).toBe(vip); // the start is FNV-1a's, far apart: the same without the taken one
    }
    // A taken address is skipped: the next one up gets it.
    const first = allocateVips('2001:db8:64::/64', ['web']).get('web')!;
    expect(big(allocateVips('2001:db8:64::/64', ['web'], new Set([big(first)])).get('web')!)).toBe(big(first) + 1n);
    // Tiny subnets: a /126 has two middle addresses, a /127 none; host bits set in the subnet are ignored.
    expect([...allocateVips('2001:db8::5/126', ['a', 'b', 'c']).values()].sort()).toEqual(['2001:db8::5', '2001:db8::6']);
    expect(allocateVips('2001:db8::/127', ['a']).size).toBe(0);
    expect(allocateVips('2001:db8::/x', ['a']).size).toBe(0);
  });

  it('an undeclared VIP on a network with an IPv6 subnet is allocated from it; backends are the instances\' IPv6 addresses', async () => {
    const subnet = '2001:db8:64::/64';
    const resolver = '2001:db8:64::ffff:ffff:ffff:fffe';
    const { c, locals, control, sync } = cluster(() => true, 10_000, { subnet, resolver });
    c.bootstrapAll();
    for (const i of [0, 1]) c.agents[i].publish(blue, { id: `ep-${i}`, mac: mac(i + 1), ipv4: ip4(i + 1) });
    const six = (i: number) => Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, i + 1);
    locals[0].add({ ...web(0), service: 'web6', ipv6: six(0) });
    locals[1].add({ ...web(1), service: 'web6', ipv6: six(1) });
    await advance(c, 10_000, () => [...control.specs.values()].some((s) => s.backends.length === 2));
    await Promise.resolve();
    const [s] = [...control.specs.values()];
    const big = (b: Uint8Array) => [...b].reduce((n, x) => (n << 8n) | BigInt(x), 0n);
    expect(s.vip).toBe(allocateVips(subnet, ['web6'], new Set([big(parseIpAddress(resolver).bytes), big(six(0)), big(six(1))])).get('web6'));
    expect(s.vip.startsWith('2001:db8:64:0:')).toBe(true);
    expect(s.backends.map((b) => [b.id, b.ip])).toEqual([['web-0', '2001:db8:64::1'], ['web-1', '2001:db8:64::2']]);
    expect(sync.list().map((v) => [v.service, v.allocated])).toEqual([['web6', true]]);
    sync.close();
    for (const l of locals) await l.stop();
  });

  it('config: vip mode without a VIP is accepted on an IPv6 subnet, refused on a network without a subnet', () => {
    const doc = (net: string) => `
name: h1
listen: 198.18.0.1:7946
signingKey: ${Buffer.alloc(64, 7).toString('base64')}
encryption: { insecure: true }
networks:
  - { name: blue, vni: 100, ${net}endpoints: [{ id: h1, mac: "02:00:00:00:00:01", ipv6: "2001:db8:64::1" }] }
services:
  - { name: web, network: blue, endpointMode: vip, instances: [{ id: web-1, endpoint: h1, ports: [{ port: 80 }] }] }
`;
    expect(parseConfig(doc('subnet: "2001:db8:64::/64", ')).services[0]).toMatchObject({ endpointMode: 'vip', vip: undefined });
    expect(() => parseConfig(doc(''))).toThrow(/\/services\/0\/vip: required with endpointMode 'vip' when the network has no subnet to allocate one from/);
  });
});
