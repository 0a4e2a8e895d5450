import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { parseHealthSpec, type ProbeResult } from '@overlay/services';
import { ServiceDirectory } from '../../services/src/directory.js';
import { TYPE_A } from '../../services/src/dns/wire.js';
import { formatStatus } from '../src/status.js';
import { LOCAL, LocalServices, RecordTable, directorySink, describeInstance, SERVICES, SERVICE_KIND, ServiceView, SimCluster, serviceKind, signRecord, suspicionTimeoutMs, type ServiceInstanceData } from '@overlay/agent';

const blue = { name: 'blue', vni: 100 };
const ip4 = (i: number) => Uint8Array.of(198, 19, 0, i);

/** n agents on a virtual clock, each with a service view and its own LocalServices. */
function cluster(n: number, probe?: (address: string) => boolean) {
  const views = Array.from({ length: n }, () => new ServiceView());
  const kinds = views.map((v) => serviceKind(v));
  const c = new SimCluster({ n, seed: 3, config: LOCAL, networks: [blue], agent: (i) => ({ kinds: [kinds[i]] }) });
  const fake = async (t: { address: string }): Promise<ProbeResult> => (probe!(t.address) ? { ok: true, why: 'ok', detail: '', output: '', ms: 1 } : { ok: false, why: 'refused', detail: 'ECONNREFUSED', output: '', ms: 1 });
  const locals = c.agents.map((a, i) => new LocalServices({ agent: a, kind: kinds[i], now: () => c.clock.now(), checker: { clock: c.clock, probes: { tcp: fake } } }));
  return { c, views, locals };
}

/** Virtual time in small steps, letting the checker's promises settle between them. */
async function advance(c: SimCluster, ms: number, until?: () => boolean): Promise<number> {
  const start = c.clock.now();
  while (c.clock.now() - start < ms) {
    if (until?.()) break;
    c.run(20);
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  }
  return c.clock.now() - start;
}

const web = (i: number, health?: ReturnType<typeof parseHealthSpec>) => ({
  network: 'blue', service: 'web', id: `web-${i}`, endpoint: `ep-${i}`, ipv4: ip4(i), ports: [{ port: 80, proto: 'tcp' as const, name: 'http' }], health,
});
const answer = (v: ServiceView) => v.lookup('blue', 'web').instances.map((x) => x.id).sort();

describe('service-instance records', () => {
  it('instances declared on 3 of 5 hosts reach every host, with their ports and health', async () => {
    const { c, views, locals } = cluster(5);
    c.bootstrapAll();
    for (const i of [0, 1, 2]) locals[i].add(web(i));
    const t = await advance(c, 10_000, () => views.every((v) => v.size === 3));
    expect(t).toBeLessThan(10_000);
    for (const v of views) {
      expect(answer(v)).toEqual(['web-0', 'web-1', 'web-2']);
      const one = v.instances('blue', 'web').find((x) => x.id === 'web-1')!;
      expect(one).toMatchObject({ owner: 'node-1', endpoint: 'ep-1', health: 'healthy', mode: 'dnsrr', ttl: 5, ports: [{ port: 80, proto: 'tcp', name: 'http' }] });
      expect([...one.ipv4]).toEqual([198, 19, 0, 1]);
    }
    for (const l of locals) await l.stop();
  });

  it('an instance turned unhealthy by its own host\'s check leaves every host\'s answer; healthy again, it returns', async () => {
    const down = new Set<string>();
    const { c, views, locals } = cluster(5, (a) => !down.has(a));
    c.bootstrapAll();
    const spec = parseHealthSpec({ kind: 'tcp', interval: '200ms', retries: 2, rise: 1, damp: '1s' });
    for (const i of [0, 1, 2]) locals[i].add(web(i, spec));
    expect(await advance(c, 10_000, () => views.every((v) => v.lookup('blue', 'web').healthy === 3))).toBeLessThan(10_000);
    down.add('198.19.0.2');
    const gone = await advance(c, 10_000, () => views.every((v) => !answer(v).includes('web-2')));
    expect(gone).toBeLessThan(3_000); // 2 failed probes 200 ms apart, then gossip
    for (const v of views) {
      expect(v.instances('blue', 'web').find((x) => x.id === 'web-2')).toMatchObject({ health: 'unhealthy', reason: 'ECONNREFUSED' });
      expect(answer(v)).toEqual(['web-0', 'web-1']);
    }
    expect(locals[2].health('blue', 'web-2')).toBe('unhealthy');
    down.clear();
    expect(await advance(c, 10_000, () => views.every((v) => answer(v).length === 3))).toBeLessThan(10_000);
    for (const l of locals) await l.stop();
  });

  it("a host's death removes all its instances from every host at once; a tombstone removes one", async () => {
    const { c, views, locals } = cluster(5);
    c.bootstrapAll();
    for (const i of [0, 1, 2]) locals[i].add(web(i));
    locals[2].add({ ...web(2), service: 'db', id: 'db-2', ports: [{ port: 5432, proto: 'tcp' as const }] });
    await advance(c, 10_000, () => views.every((v) => v.size === 4));
    c.kill(2);
    const bound = suspicionTimeoutMs(LOCAL, 5) * 2 + 5_000;
    const t = await advance(c, bound, () => views.every((v, i) => i === 2 || v.size === 2));
    expect(t).toBeLessThan(bound);
    for (const [i, v] of views.entries()) {
      if (i === 2) continue;
      expect(answer(v)).toEqual(['web-0', 'web-1']);
      expect(v.services('blue')).toEqual(['web']);
    }
    expect(locals[1].remove('blue', 'web-1')).toBe(true);
    await advance(c, 5_000, () => views.every((v, i) => i === 2 || v.size === 1));
    for (const [i, v] of views.entries()) if (i !== 2) expect(answer(v)).toEqual(['web-0']);
    for (const l of locals) await l.stop();
  });

  it('a member forging another host\'s instance record (or its health) is refused and counted everywhere', async () => {
    const { c, views, locals } = cluster(4);
    c.bootstrapAll();
    locals[1].add(web(1));
    await advance(c, 5_000, () => views.every((v) => v.size === 1));
    const real = c.agents[0].table.get<ServiceInstanceData>(SERVICE_KIND, 'blue', 'web-1')!.rec;
    // node-3 signs "node-1's" instance as unhealthy, and a new instance in node-1's name, with its own key.
    const forge = (id: string, health: number) =>
      signRecord(SERVICES, { network: 'blue', id, owner: 'node-1', version: real.version + 100, deleted: false }, { ...real.data!, health }, c.keys[3]);
    const evil = c.agents[3] as unknown as { gossipRecord(r: { body: Uint8Array; sig: Uint8Array }): void };
    evil.gossipRecord(forge('web-1', 2));
    evil.gossipRecord(forge('web-9', 1));
    await advance(c, 3_000);
    for (const i of [0, 2]) {
      expect(c.agents[i].drops.get('record_bad_signature')).toBeGreaterThanOrEqual(2);
      expect(answer(views[i])).toEqual(['web-1']);
      expect(views[i].instances('blue', 'web')[0].health).toBe('healthy');
    }
    for (const l of locals) await l.stop();
  });

  it('malformed instance data is a counted drop, not a record', async () => {
    const { c, views, locals } = cluster(3);
    c.bootstrapAll();
    const bad: Partial<ServiceInstanceData>[] = [
      { service: 'Not_A_Label' },
      { ipv4: new Uint8Array(0) }, // no address at all
      { ipv4: Uint8Array.of(1, 2, 3) },
      { ttl: 601 },
      { ports: [{ port: 0, proto: 0, name: '' }] },
      { ports: [{ port: 80, proto: 7, name: '' }] },
    ];
    const base: ServiceInstanceData = { service: 'web', ipv4: ip4(1), ipv6: new Uint8Array(0), ports: [], health: 1, since: 1, reason: '', mode: 0, vip: new Uint8Array(0), ttl: 5, endpoint: 'ep-1' };
    const a1 = c.agents[1] as unknown as { gossipRecord(r: { body: Uint8Array; sig: Uint8Array }): void };
    bad.forEach((b, j) => a1.gossipRecord(signRecord(SERVICES, { network: 'blue', id: `bad-${j}`, owner: 'node-1', version: 10 + j, deleted: false }, { ...base, ...b }, c.keys[1])));
    await advance(c, 3_000);
    expect(c.agents[0].drops.get('record_malformed')).toBeGreaterThanOrEqual(bad.length);
    expect(views[0].size).toBe(0);
    for (const l of locals) await l.stop();
  });

  it('a tcp check needs a port: refused before anything is published', async () => {
    const { c, views, locals } = cluster(2);
    c.bootstrapAll();
    expect(() => locals[0].add({ ...web(0, parseHealthSpec({ kind: 'tcp' })), ports: [] })).toThrow(/port/);
    await advance(c, 2_000);
    expect(views[1].size).toBe(0);
    expect(c.agents[0].table.count()).toBe(0);
    for (const l of locals) await l.stop();
  });

  it('the view feeds the DNS directory on every host: A records follow health, owner death and the last instance leaving', async () => {
    const down = new Set<string>();
    const { c, views, locals } = cluster(4, (a) => !down.has(a));
    const dirs = views.map((v) => {
      const d = new ServiceDirectory();
      v.attach(directorySink(d));
      return d;
    });
    const a = (d: ServiceDirectory, name = 'web') => {
      const e = d.lookupText('blue', name);
      return e ? d.answers(e, TYPE_A).ends.length : -1;
    };
    c.bootstrapAll();
    const spec = parseHealthSpec({ kind: 'tcp', interval: '200ms', retries: 1, rise: 1, damp: '0s' });
    for (const i of [0, 1, 2]) locals[i].add(web(i, spec));
    await advance(c, 10_000, () => dirs.every((d) => a(d) === 3));
    expect(dirs.map((d) => a(d))).toEqual([3, 3, 3, 3]);
    expect(dirs.map((d) => a(d, 'web-1.tasks.web'))).toEqual([1, 1, 1, 1]);
    down.add('198.19.0.1');
    await advance(c, 10_000, () => dirs.every((d) => a(d) === 2));
    expect(dirs.map((d) => a(d))).toEqual([2, 2, 2, 2]);
    expect(dirs.map((d) => a(d, 'all.tasks.web'))).toEqual([3, 3, 3, 3]);
    const text = formatStatus({ ...c.agents[3].status(), services: { resolvers: { blue: '198.19.0.254' }, instances: [...views[3].all()].map((i) => ({ network: i.network, ...describeInstance(i) })), local: [], counters: {} } });
    expect(text).toMatch(/resolver blue +198\.19\.0\.254/);
    expect(text).toMatch(/web\.blue +web-1 +198\.19\.0\.1 +80\/tcp \(http\) +unhealthy owner node-1 +\(ECONNREFUSED\)/);
    c.kill(2);
    await advance(c, 20_000, () => dirs.every((d, i) => i === 2 || a(d, 'all.tasks.web') === 2));
    for (const i of [0, 1, 3]) expect(a(dirs[i], 'all.tasks.web')).toBe(2);
    locals[0].remove('blue', 'web-0');
    locals[1].remove('blue', 'web-1');
    await advance(c, 10_000, () => dirs.every((d, i) => i === 2 || a(d) === -1));
    for (const i of [0, 1, 3]) expect(dirs[i].serviceNames('blue')).toEqual([]);
    for (const l of locals) await l.stop();
  });

  it('a stored instance holds copies of its address bytes, never views of the packet it came in', () => {
    const t = new RecordTable([SERVICES], () => undefined, () => 0, { self: 'me', stateOf: () => 'alive', metaOf: () => undefined });
    const d: ServiceInstanceData = { service: 'web', ipv4: ip4(7), ipv6: new Uint8Array(16).fill(9), ports: [], health: 1, since: 1, reason: '', mode: 1, vip: ip4(200), ttl: 5, endpoint: 'ep' };
    const r = signRecord(SERVICES, { network: 'blue', id: 'w', owner: 'x', version: 1, deleted: false }, d, new Uint8Array(64));
    const packet = new Uint8Array(r.body.length + 100);
    packet.set(r.body, 50);
    const opened = t.open({ body: packet.subarray(50, 50 + r.body.length), sig: r.sig })!;
    t.putOwn(opened);
    const got = opened.data as ServiceInstanceData;
    packet.fill(0);
    expect([...got.ipv4, ...got.vip]).toEqual([198, 19, 0, 7, 198, 19, 0, 200]);
    expect([...got.ipv6]).toEqual(Array(16).fill(9));
    for (const b of [got.ipv4, got.ipv6, got.vip]) expect(b.buffer).not.toBe(packet.buffer);
  });

  it('a stored record lives in the table slab: body, signature and address bytes share one buffer, a copy of what arrived', () => {
    const t = new RecordTable([SERVICES], () => undefined, () => 0, { self: 'me', stateOf: () => 'alive', metaOf: () => undefined });
    const d: ServiceInstanceData = { service: 'web', ipv4: ip4(7), ipv6: new Uint8Array(0), ports: [{ port: 80, proto: 0, name: 'http' }], health: 1, since: 1, reason: '', mode: 0, vip: new Uint8Array(0), ttl: 5, endpoint: 'ep' };
    const r = signRecord(SERVICES, { network: 'blue', id: 'w', owner: 'x', version: 1, deleted: false }, d, nacl.sign.keyPair().secretKey);
    const chunk = new Uint8Array(r.body.length + 64);
    chunk.set(r.body, 0);
    chunk.set(r.sig, r.body.length);
    const rec = t.open({ body: chunk.subarray(0, r.body.length), sig: chunk.subarray(r.body.length) })!;
    t.putOwn(rec);
    const got = rec.data as ServiceInstanceData;
    expect(rec.sig.buffer).toBe(rec.body.buffer);
    expect(got.ipv4.buffer).toBe(rec.body.buffer);
    expect(rec.body.buffer).not.toBe(chunk.buffer);
    expect(rec.body.buffer.byteLength).toBe(64 * 1024);
    chunk.fill(0);
    expect(Buffer.compare(rec.body, r.body)).toBe(0);
    expect(Buffer.compare(rec.sig, r.sig)).toBe(0);
    expect([...got.ipv4]).toEqual([198, 19, 0, 7]);
    expect(got.ipv6.length + got.vip.length).toBe(0);
  });
});
