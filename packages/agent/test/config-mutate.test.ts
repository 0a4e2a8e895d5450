import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Ajv } from 'ajv';
import { AgentConfigError, FORMATS, LiveConfig, controlCommand, main, schemaProblems, validateConfig, type AgentConfig } from '@overlay/agent';

/**
 * 200 configs, each a valid one with one seeded mutation whose JSON pointer is known: every one
 * is refused with that path among its problems — by the loader, by `agent run` (exit 2, no
 * control socket, no TAP) and by a running config's apply (no record, stage or instance touched).
 */
const key = (n: number, b: number) => Buffer.alloc(n, b).toString('base64');
const TAP = `h5m${process.pid % 100000}`;

function perHost(sock: string): any {
  return {
    version: 1,
    name: 'host-a',
    listen: '198.18.0.1:7946',
    seeds: ['198.18.0.2:7946'],
    signingKey: key(64, 1),
    encryption: { clusterKeys: [key(32, 2)] },
    controlSocket: sock,
    log: { level: 'info', format: 'json' },
    networks: [
      { name: 'blue', vni: 100, subnet: '198.19.0.0/24', device: TAP, endpoints: [
        { id: 'a', device: TAP, mac: '02:00:00:00:00:01', ipv4: '198.19.0.1' },
        { id: 'web-a', mac: '02:00:00:00:00:02', ipv4: '198.19.0.11', groups: ['front'] },
      ] },
      { name: 'red', vni: 200, subnet: '198.19.1.0/24', endpoints: [{ id: 'db-a', mac: '02:00:00:00:01:03', ipv4: '198.19.1.21' }] },
    ],
    services: [
      { name: 'web', network: 'blue', endpointMode: 'vip', instances: [{ id: 'web-a', endpoint: 'web-a', ports: [{ port: 80 }] }], healthcheck: { kind: 'tcp', interval: '2s' } },
      { name: 'db', network: 'red', instances: [{ id: 'db-a', endpoint: 'db-a', ports: [{ port: 5432 }] }] },
    ],
    policies: [{ network: 'blue', defaultAction: 'allow', tiers: { admin: [{ id: 'no-ssh', action: 'deny', proto: 'tcp', ports: ['22'] }] } }],
    store: { kind: 'gossip' },
  };
}

/** A tiny seeded PRNG (mulberry32): the same 200 cases every run. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Mutation = (c: any, r: () => number) => string;
const pick = <T,>(r: () => number, xs: T[]): T => xs[Math.floor(r() * xs.length)];
const net = (r: () => number) => Math.floor(r() * 2);

/** Each mutation breaks one thing and returns the pointer that must be named. */
const MUTATIONS: Mutation[] = [
  // shape: unknown keys at any depth
  (c, r) => { const k = pick(r, ['vtepp', 'netwroks', 'x']); c[k] = 1; return `/${k}`; },
  (c, r) => { const i = net(r); c.networks[i].subnett = '198.19.0.0/24'; return `/networks/${i}/subnett`; },
  (c) => { c.networks[0].endpoints[1].ipv44 = '198.19.0.2'; return '/networks/0/endpoints/1/ipv44'; },
  (c) => { c.services[0].instances[0].ports[0].protocol = 'tcp'; return '/services/0/instances/0/ports/0/protocol'; },
  (c) => { c.services[0].healthcheck.intervall = '1s'; return '/services/0/healthcheck/intervall'; },
  (c) => { c.policies[0].tiers.admin[0].port = ['22']; return '/policies/0/tiers/admin/0/port'; },
  (c) => { c.log.colour = true; return '/log/colour'; },
  (c) => { c.store.endpoint = ['x']; return '/store/endpoint'; },
  // shape: types, ranges, enums, formats
  (c, r) => { const i = net(r); c.networks[i].vni = pick(r, [-1, 1 << 24, 'blue', 1.5]); return `/networks/${i}/vni`; },
  (c, r) => { const i = net(r); c.networks[i].subnet = pick(r, ['198.19.0.0', '198.19.0.0/33', 'fe80::%eth0/64', '198.19.0.300/24']); return `/networks/${i}/subnet`; },
  (c, r) => { c.networks[0].endpoints[1].mac = pick(r, ['02:00:00:00:00', 'zz:00:00:00:00:01']); return '/networks/0/endpoints/1/mac'; },
  (c, r) => { c.networks[0].endpoints[1].ipv4 = pick(r, ['198.19.0.256', '2001:db8::1', '198.19.0.1/32', '']); return '/networks/0/endpoints/1/ipv4'; },
  (c, r) => { c.listen = pick(r, ['198.18.0.1:99999', 'host:1', '2001:db8::1:7946', '[198.18.0.1]:1']); return '/listen'; },
  (c, r) => { c.seeds = ['198.18.0.2', pick(r, ['nope', '198.18.0.2:0'])]; return '/seeds/1'; },
  (c) => { c.signingKey = key(32, 1); return '/signingKey'; },
  (c) => { c.encryption.clusterKeys = [key(16, 2)]; return '/encryption/clusterKeys/0'; },
  (c) => { c.services[0].ttl = 601; return '/services/0/ttl'; },
  (c) => { c.services[1].endpointMode = 'rr'; return '/services/1/endpointMode'; },
  (c) => { c.services[0].instances[0].ports[0].port = 0; return '/services/0/instances/0/ports/0/port'; },
  (c) => { c.networks[0].ageingMs = 10; return '/networks/0/ageingMs'; },
  (c) => { c.log.level = 'loud'; return '/log/level'; },
  (c) => { c.metrics = { listen: 'everywhere' }; return '/metrics/listen'; },
  (c) => { c.version = 2; return '/version'; },
  (c) => { c.policies[0].defaultAction = 'maybe'; return '/policies/0/defaultAction'; },
  (c) => { c.policies[0].tiers.admin[0].ports = ['ssh']; return '/policies/0/tiers/admin/0/ports/0'; },
  (c) => { c.store = { kind: 'consul' }; return '/store/kind'; },
  (c, r) => { const i = net(r); delete c.networks[i].name; return `/networks/${i}/name`; },
  (c) => { delete c.networks[0].endpoints[1].mac; return '/networks/0/endpoints/1/mac'; },
  (c) => { c.services[0].name = 'Web_1'; return '/services/0/name'; },
  (c) => { c.networks[0].device = 'a/b'; return '/networks/0/device'; },
  // semantics: containment, overlaps, duplicates, references
  (c) => { c.networks[0].subnet = '198.19.0.1/24'; return '/networks/0/subnet'; },
  (c) => { c.networks[1].device = `${TAP}x`; c.networks[1].subnet = '198.19.0.0/23'; c.networks[1].endpoints[0].ipv4 = '198.19.1.21'; return '/networks/1/subnet'; },
  (c) => { c.networks[0].endpoints[1].ipv4 = '198.19.9.9'; return '/networks/0/endpoints/1/ipv4'; },
  (c) => { c.networks[0].endpoints[1].mac = '02:00:00:00:00:01'; return '/networks/0/endpoints/1/mac'; },
  (c) => { c.networks[0].endpoints[1].mac = '03:00:00:00:00:02'; return '/networks/0/endpoints/1/mac'; },
  (c) => { c.networks[0].endpoints[1].ipv4 = '198.19.0.1'; return '/networks/0/endpoints/1/ipv4'; },
  (c) => { c.networks[1].name = 'blue'; return '/networks/1/name'; },
  (c) => { c.networks[1].vni = 100; return '/networks/1/vni'; },
  (c) => { c.networks[0].endpoints[1].id = 'a'; return '/networks/0/endpoints/1/id'; },
  (c) => { c.networks[0].endpoints[1].device = TAP; return '/networks/0/endpoints/1/device'; },
  (c) => { c.networks[0].resolver = '198.19.5.53'; return '/networks/0/resolver'; },
  (c) => { c.services[1].network = 'green'; return '/services/1/network'; },
  (c) => { c.services[0].instances[0].endpoint = 'nope'; return '/services/0/instances/0/endpoint'; },
  (c) => { c.services[0].vip = '198.18.7.1'; return '/services/0/vip'; },
  (c) => { c.services[1].name = 'web'; c.services[1].network = 'blue'; c.services[1].instances = []; return '/services/1/name'; },
  (c) => { c.services[0].healthcheck = { kind: 'tcp', interval: '1x' }; return '/services/0/healthcheck/interval'; },
  (c) => { c.policies[0].network = 'green'; return '/policies/0/network'; },
  (c) => { c.policies.push({ network: 'blue', defaultAction: 'deny' }); return '/policies/1/network'; },
  (c) => { c.policies[0].tiers.admin.push({ id: 'no-ssh', action: 'allow' }); return '/policies/0/tiers/admin/1/id'; },
  (c) => { c.policies[0].tiers.admin[0].ports = ['80-22']; return '/policies/0/tiers/admin/0/ports/0'; },
  (c) => { c.policies[0].tiers.admin[0].proto = 'icmp'; return '/policies/0/tiers/admin/0/ports'; },
  (c) => { c.store = { kind: 'etcd' }; return '/store/endpoints'; },
  (c) => { c.advertise = '0.0.0.0:7946'; return '/advertise'; },
  (c) => { c.vtep = '::'; return '/vtep'; },
  (c) => { c.encryption = { clusterKeys: [key(32, 2)], insecure: true }; return '/encryption/insecure'; },
  (c) => { c.networks[0].encryption = 'wireguard'; return '/networks/0/encryption'; },
  (c) => { c.networks[0].endpoints[1].host = 'host-b'; return '/networks/0/endpoints/1/host'; },
];

/** The published schema file, compiled as another tool would (with our formats). */
function published() {
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
  for (const [name, f] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate: f.check });
  return ajv.compile(JSON.parse(readFileSync('packages/agent/schema/agent-config.schema.json', 'utf8')));
}

function fakeRuntime(cfg: AgentConfig) {
  const calls: string[] = [];
  const dp = {
    addStage: (vni: number, s: { name: string }) => void calls.push(`addStage ${vni} ${s.name}`),
    removeStage: (vni: number, name: string) => (calls.push(`removeStage ${vni} ${name}`), true),
  };
  const live = new LiveConfig({
    cfg,
    agent: { publish: (n) => void calls.push(`publish ${n.name}`), unpublish: (n, id) => (calls.push(`unpublish ${n}/${id}`), true) },
    instances: () => ({ add: (i) => void calls.push(`add ${i.id}`), remove: (n, id) => (calls.push(`remove ${n}/${id}`), true) }),
    dataplane: dp as never,
    log: () => undefined,
  });
  live.start();
  calls.length = 0;
  return { live, calls };
}

describe('200 mutated configs', () => {
  it('each is refused with the mutated path, by the loader, by `agent run` (nothing opened) and by a running config (nothing changed)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h5mut-'));
    const sock = join(dir, 'ctl.sock');
    try {
      const base = validateConfig(perHost(sock));
      const { live, calls } = fakeRuntime(base);
      const before = JSON.stringify(live.cfg.services) + JSON.stringify(live.cfg.policies);
      const generation = live.filters.get(100)!.compiled.generation;
      const r = rng(0x5eed);
      const seen = new Set<number>();
      const stderr = process.stderr.write;
      const file$ = published();
      let shape = 0;
      for (let n = 0; n < 200; n++) {
        const m = n < MUTATIONS.length ? n : Math.floor(r() * MUTATIONS.length); // every mutation at least once
        seen.add(m);
        const doc = perHost(sock);
        const path = MUTATIONS[m](doc, r);
        let err: AgentConfigError | undefined;
        try {
          validateConfig(doc);
        } catch (e) {
          err = e as AgentConfigError;
        }
        expect({ n, m, path, refused: err instanceof AgentConfigError }).toEqual({ n, m, path, refused: true });
        expect({ n, m, paths: err!.problems.map((p) => p.path) }).toEqual({ n, m, paths: expect.arrayContaining([path]) });
        // The published file refuses exactly the documents the loader's schema pass refuses.
        const bySchema = schemaProblems(doc).length > 0;
        expect({ n, m, file: file$(doc) }).toEqual({ n, m, file: !bySchema });
        if (bySchema) shape++;
        // The same file through the CLI and through a running agent's apply.
        const file = join(dir, 'bad.yaml');
        writeFileSync(file, stringify(doc));
        let cliErr = '';
        process.stderr.write = ((s: string) => ((cliErr += s), true)) as typeof process.stderr.write;
        let code: number;
        try {
          code = await main(['run', '--config', file]);
        } finally {
          process.stderr.write = stderr;
        }
        expect({ n, code, named: cliErr.includes(`${path}: `) }).toEqual({ n, code: 2, named: true });
        expect(existsSync(sock)).toBe(false);
        const a = await controlCommand(live, `apply ${file}`);
        expect({ n, ok: a?.ok, named: a?.error?.includes(`${path}: `) }).toEqual({ n, ok: undefined, named: true });
      }
      expect(seen.size).toBe(MUTATIONS.length);
      expect(shape).toBeGreaterThan(50); // both kinds: shape (schema) and semantic refusals
      expect(shape).toBeLessThan(150);
      expect(calls).toEqual([]);
      expect(JSON.stringify(live.cfg.services) + JSON.stringify(live.cfg.policies)).toBe(before);
      expect(live.filters.get(100)!.compiled.generation).toBe(generation);
      expect(execFileSync('ip', ['-o', 'link', 'show']).toString()).not.toContain(TAP);
      live.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('reports every problem at once, each with its path', () => {
    const doc = perHost('/tmp/unused.sock');
    doc.networks[0].subnett = 1;
    doc.services[0].ttl = 601;
    doc.log.level = 'loud';
    const e = (() => {
      try {
        validateConfig(doc);
      } catch (x) {
        return x as AgentConfigError;
      }
    })()!;
    expect(e.problems.map((p) => p.path).sort()).toEqual(['/log/level', '/networks/0/subnett', '/services/0/ttl']);
    expect(e.message.split('\n')).toHaveLength(3);
    const sem = perHost('/tmp/unused.sock');
    sem.networks[0].endpoints[1].ipv4 = '198.19.9.9';
    sem.services[1].network = 'green';
    sem.policies[0].network = 'green';
    try {
      validateConfig(sem);
    } catch (x) {
      expect((x as AgentConfigError).problems.map((p) => p.path)).toEqual(['/networks/0/endpoints/1/ipv4', '/services/1/network', '/policies/0/network']);
    }
    expect.assertions(3);
  });
});
