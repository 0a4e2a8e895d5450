import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfigError, LiveConfig, main, formatPlan, identityEntries, plan, planView, schemaText, validateConfig, type AgentConfig } from '@overlay/agent';

const key = (n: number, b: number) => Buffer.alloc(n, b).toString('base64');
const base = (): any => ({
  version: 1,
  name: 'host-a',
  listen: '198.18.0.1:7946',
  signingKey: key(64, 1),
  encryption: { insecure: true },
  networks: [{ name: 'blue', vni: 100, subnet: '198.19.0.0/24', device: 'ov0', endpoints: [
    { id: 'a', device: 'ov0', mac: '02:00:00:00:00:01', ipv4: '198.19.0.1' },
    { id: 'web-a', mac: '02:00:00:00:00:02', ipv4: '198.19.0.11' },
    { id: 'db-a', mac: '02:00:00:00:00:03', ipv4: '198.19.0.21', groups: ['data'] },
  ] }],
  services: [
    { name: 'web', network: 'blue', instances: [{ id: 'web-a', endpoint: 'web-a', ports: [{ port: 80 }] }] },
    { name: 'db', network: 'blue', instances: [{ id: 'db-a', endpoint: 'db-a', ports: [{ port: 5432 }] }] },
  ],
  policies: [{ network: 'blue', defaultAction: 'allow', tiers: { network: [{ id: 'web-db', action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432'] }] } }],
});

function runtime(cfg: AgentConfig) {
  const calls: string[] = [];
  const dp = {
    addStage: (vni: number, s: { name: string }) => void calls.push(`addStage ${vni} ${s.name}`),
    removeStage: (vni: number, name: string) => (calls.push(`removeStage ${vni} ${name}`), true),
  };
  const logs: string[] = [];
  const live = new LiveConfig({
    cfg,
    agent: { publish: (n, e) => void calls.push(`publish ${n.name}/${e.id}`), unpublish: (n, id) => (calls.push(`unpublish ${n}/${id}`), true) },
    instances: () => ({ add: (i) => void calls.push(`add ${i.network}/${i.id}`), remove: (n, id) => (calls.push(`remove ${n}/${id}`), true) }),
    dataplane: dp as never,
    log: (s) => logs.push(s),
  });
  return { live, calls, logs };
}

describe('plan and apply', () => {
  it('plan prints every change by what it touches, marks what needs a restart, and says so last', () => {
    const next = base();
    next.services[0].ttl = 30; // service changed
    next.services.push({ name: 'api', network: 'blue', endpointMode: 'vip', vip: '198.19.0.100', instances: [{ id: 'api-a', endpoint: 'web-a', ports: [{ port: 8080 }] }] });
    next.services[1].instances = []; // instance removed
    next.networks[0].endpoints.push({ id: 'cache-a', mac: '02:00:00:00:00:04', ipv4: '198.19.0.31' });
    next.policies[0].tiers.network[0].ports = ['5432', '5433'];
    next.policies[0].tiers.network.push({ id: 'deny-rest', action: 'deny', to: { groups: ['db'] } });
    next.listen = '198.18.0.1:7947';
    const p = plan(planView(validateConfig(base())), planView(validateConfig(next)));
    expect(formatPlan(p)).toBe([
      '~ host advertise: 198.18.0.1:7946 -> 198.18.0.1:7947   (needs a restart)',
      '~ host listen: 198.18.0.1:7946 -> 198.18.0.1:7947   (needs a restart)',
      '+ endpoint blue/cache-a: mac=02:00:00:00:00:04 ipv4=198.19.0.31',
      '~ service blue/web: mode=dnsrr ttl=5 -> mode=dnsrr ttl=30',
      '+ service blue/api: mode=vip ttl=5',
      '- instance blue/db/db-a: endpoint=db-a ports=5432/tcp',
      '+ instance blue/api/api-a: endpoint=web-a ports=8080/tcp',
      '+ vip blue/api: 198.19.0.100',
      '~ policy blue: default=allow rules=1 -> default=allow rules=2',
      '~ rule blue/web-db: #0 network {"id":"web-db","action":"allow","from":{"groups":["web"]},"to":{"groups":["db"]},"proto":"tcp","ports":["5432"]} -> #0 network {"id":"web-db","action":"allow","from":{"groups":["web"]},"to":{"groups":["db"]},"proto":"tcp","ports":["5432","5433"]}',
      '+ rule blue/deny-rest: #1 network {"id":"deny-rest","action":"deny","to":{"groups":["db"]}}',
      '5 to add, 5 to change, 1 to remove; 2 need a restart (apply refuses them)',
      '',
    ].join('\n'));
    expect(formatPlan(plan(planView(validateConfig(base())), planView(validateConfig(base()))))).toBe('no changes\n');
    // No key material in a view: fingerprints only.
    expect(JSON.stringify(planView(validateConfig(base())))).not.toContain(key(64, 1));
  });

  it('apply swaps policy by generation, identity, endpoints and instances; a restart change or a bad policy changes nothing', () => {
    const { live, calls } = runtime(validateConfig(base()));
    live.start();
    expect(calls).toEqual(['addStage 100 policy']);
    const f = live.filters.get(100)!;
    const gen = f.compiled.generation;
    expect(live.identity.groupsOf('198.19.0.21')).toEqual(['data', 'db']);
    expect(live.identity.groupsOf('198.19.0.11')).toEqual(['web']);
    calls.length = 0;

    const next = base();
    next.policies[0].defaultAction = 'deny';
    next.networks[0].endpoints.push({ id: 'cache-a', mac: '02:00:00:00:00:04', ipv4: '198.19.0.31', groups: ['cache'] });
    next.networks[0].endpoints.splice(2, 1); // db-a goes, and with it its instance
    next.services[1].instances = [];
    next.services[0].instances[0].ports = [{ port: 8080 }];
    const p = live.apply(validateConfig(next));
    expect(p.restart).toBe(0);
    expect(f.compiled.generation).toBe(gen + 1);
    expect(f.compiled.defaultAction).toBe(0); // ACTION_DENY
    expect(calls).toEqual(['unpublish blue/db-a', 'publish blue/cache-a', 'remove blue/db-a', 'add blue/web-a']);
    expect(live.identity.groupsOf('198.19.0.31')).toEqual(['cache']);
    expect(live.identity.groupsOf('198.19.0.21')).toEqual([]);
    calls.length = 0;

    // Needs a restart: refused whole, even with live changes in the same file.
    const restart = validateConfig({ ...next, vtepPort: 4790, services: [] });
    expect(() => live.apply(restart)).toThrow(AgentConfigError);
    try {
      live.apply(restart);
    } catch (e) {
      expect((e as AgentConfigError).problems.map((x) => x.path)).toEqual(['host vtep']);
    }
    expect(calls).toEqual([]);
    expect(f.compiled.generation).toBe(gen + 1);
    expect(live.cfg.services[0].instances).toHaveLength(1);

    // Policy removed: the stage goes; added again: a new one.
    live.apply(validateConfig({ ...next, policies: [] }));
    expect(calls).toEqual(['removeStage 100 policy']);
    calls.length = 0;
    live.apply(validateConfig(next));
    expect(calls).toEqual(['addStage 100 policy']);
    expect(live.applied).toBe(3);
  });

  it('applyAsync: a large policy compiled in a worker, swapped in whole; applies run in order; a bad one changes nothing', async () => {
    const { live, calls } = runtime(validateConfig(base()));
    live.start();
    const f = live.filters.get(100)!;
    const gen = f.compiled.generation;
    const big = (n: number, extra: object[] = []): any => {
      const c = base();
      const rules: object[] = Array.from({ length: n }, (_, i) => ({ id: `r${i}`, action: 'allow', from: { groups: ['web'] }, to: { groups: [`g${i % 50}`] }, proto: 'tcp', ports: [String(10_000 + i)] }));
      c.policies[0].tiers.network.push(...rules, ...extra);
      return c;
    };
    calls.length = 0;
    // Two applies asked at once: the second waits for the first, so the last asked is what stays.
    const first = live.applyAsync(validateConfig(big(600)));
    const second = live.applyAsync(validateConfig(big(700)));
    await Promise.all([first, second]);
    expect(live.filters.get(100)).toBe(f);
    expect(f.compiled.size).toBe(701);
    expect(f.compiled.generation).toBe(gen + 2);
    expect(f.explain({ src: '198.19.0.11', dst: '198.19.0.21', proto: 'tcp', port: 5432 }).ruleId).toBe('web-db');
    expect(f.explain({ src: '198.19.0.11', dst: '198.19.0.21', proto: 'tcp', port: 10_699 }).action).toBe('allow'); // web → default allow
    expect(calls).toEqual([]);

    // A bad rule deep in a large policy: refused by the worker's validation, nothing swapped.
    const bad = validateConfig(big(700));
    (bad.policies[0].policy.tiers!.network as any[])[650].ports = ['99999'];
    await expect(live.applyAsync(bad)).rejects.toMatchObject({ code: 'OVL_ERR_POLICY' });
    expect(f.compiled.generation).toBe(gen + 2);
    expect(f.compiled.size).toBe(701);

    // A network that gets its first policy: its filter is built with the prepared rules.
    await live.applyAsync(validateConfig({ ...base(), policies: [] }));
    expect(calls).toEqual(['removeStage 100 policy']);
    calls.length = 0;
    await live.applyAsync(validateConfig(big(400)));
    expect(calls).toEqual(['addStage 100 policy']);
    expect(live.filters.get(100)!.compiled.size).toBe(401);
  }, 60_000);

  it('identity: an endpoint\'s groups and its services\' names, from every host of a cluster file', () => {
    const doc: any = {
      version: 1,
      encryption: { insecure: true },
      hosts: { a: { listen: '198.18.0.1:7946', signingKey: key(64, 1) }, b: { listen: '198.18.0.2:7946', signingKey: key(64, 2) } },
      networks: [{ name: 'blue', vni: 100, subnet: '198.19.0.0/24', endpoints: [
        { id: 'x', host: 'a', mac: '02:00:00:00:00:01', ipv4: '198.19.0.1', groups: ['g'] },
        { id: 'y', host: 'b', mac: '02:00:00:00:00:02', ipv4: '198.19.0.2' },
      ] }],
      services: [{ name: 'db', network: 'blue', instances: [{ id: 'db-b', endpoint: 'y' }] }],
    };
    const a = validateConfig(doc, undefined, { host: 'a' });
    expect(a.networks[0].endpoints.map((e) => e.id)).toEqual(['x']);
    expect(a.networks[0].remote.map((e) => e.id)).toEqual(['y']);
    expect(a.services[0].instances).toEqual([]);
    expect(a.services[0].remoteInstances).toEqual([{ id: 'db-b', endpoint: 'y' }]);
    expect(identityEntries(a)).toEqual([['198.19.0.1', ['g']], ['198.19.0.2', ['db']]]);
    const b = validateConfig(doc, undefined, { host: 'b' });
    expect(b.services[0].instances.map((i) => i.id)).toEqual(['db-b']);
    expect(b.listen).toEqual({ ip: '198.18.0.2', port: 7946 });
    expect(() => validateConfig(doc, undefined, { host: 'c' })).toThrow(/^--host: no host "c" in hosts \(a, b\)/);
    // Every host's own fields are checked, whichever is chosen; endpoints must name a host.
    doc.hosts.b.listen = '0.0.0.0:7946';
    delete doc.networks[0].endpoints[0].host;
    try {
      validateConfig(doc, undefined, { host: 'a' });
    } catch (e) {
      expect((e as AgentConfigError).problems.map((x) => x.path)).toEqual(['/hosts/b/advertise', '/networks/0/endpoints/0/host']);
    }
    expect.assertions(9);
  });

  it('identity follows the instances gossip brings: their addresses join their service\'s group, once per burst', async () => {
    const learned: { service: string; ipv4: Uint8Array }[] = [];
    const sinks: { upsert(i: unknown): void }[] = [];
    const live = new LiveConfig({
      cfg: validateConfig(base()),
      agent: { publish: () => undefined, unpublish: () => true },
      instances: () => undefined,
      view: { attach: (s) => void sinks.push(s), all: () => learned as never },
      dataplane: { addStage: () => undefined, removeStage: () => true } as never,
      log: () => undefined,
    });
    live.start();
    expect(sinks).toHaveLength(1);
    const version = live.identity.version;
    learned.push({ service: 'web', ipv4: Uint8Array.of(198, 19, 0, 77) }, { service: 'db', ipv4: Uint8Array.of(198, 19, 0, 78) });
    sinks[0].upsert(learned[0]);
    sinks[0].upsert(learned[1]);
    expect(live.identity.groupsOf('198.19.0.77')).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(live.identity.groupsOf('198.19.0.77')).toEqual(['web']);
    expect(live.identity.groupsOf('198.19.0.78')).toEqual(['db']);
    expect(live.identity.groupsOf('198.19.0.21')).toEqual(['data', 'db']);
    expect(live.identity.version).toBe(version + 1); // one rebuild for the burst
    live.close();
  });

  it('agent check of a cluster file on a machine that is none of its hosts: one line per host; --host one; a problem of any host exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h5chk-'));
    const out: string[] = [];
    const o = process.stdout.write;
    const e = process.stderr.write;
    try {
      writeFileSync(join(dir, 'k'), key(64, 3));
      const text = readFileSync('examples/cluster.yaml', 'utf8').replace(/BASE64/g, key(32, 4)).replaceAll('/etc/overlay/signing.key', join(dir, 'k'));
      writeFileSync(join(dir, 'c.yaml'), text);
      writeFileSync(join(dir, 'bad.yaml'), text.replace('listen: 198.18.0.2:7946', 'listen: 0.0.0.0:7946'));
      process.stdout.write = ((x: string) => (out.push(x), true)) as typeof o;
      process.stderr.write = ((x: string) => (out.push(x), true)) as typeof e;
      const all = await main(['check', '--config', join(dir, 'c.yaml')]);
      const one = await main(['check', '--config', join(dir, 'c.yaml'), '--host', 'host-b']);
      const bad = await main(['check', '--config', join(dir, 'bad.yaml'), '--host', 'host-a']);
      process.stdout.write = o;
      process.stderr.write = e;
      expect([all, one, bad]).toEqual([0, 0, 2]);
      expect(out[0]).toMatch(/^ok host-a: advertise 198\.18\.0\.1:7946, .*api@blue 1 instance; db@blue 0 instances\), 1 policy\n$/);
      expect(out[1]).toMatch(/^ok host-b: advertise 198\.18\.0\.2:7946, .*api@blue 1 instance; db@blue 1 instance\), 1 policy\n$/);
      expect(out[2]).toMatch(/^ok host-b: /);
      expect(out[3]).toMatch(/^agent: \/hosts\/host-b\/advertise: required when listen is a wildcard address/);
    } finally {
      process.stdout.write = o;
      process.stderr.write = e;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the published schema file is the one the loader checks with', () => {
    expect(readFileSync('packages/agent/schema/agent-config.schema.json', 'utf8')).toBe(schemaText());
  });
});
