import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { importCompose, main, validateConfig } from '@overlay/agent';

const FIXTURE = 'packages/agent/test/fixtures/stack.compose.yaml';
const key = (n: number, b: number) => Buffer.alloc(n, b).toString('base64');

async function run(args: string[]) {
  let stdout = '';
  let stderr = '';
  const o = process.stdout.write;
  const e = process.stderr.write;
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof o;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof e;
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe('agent import compose', () => {
  it('a web/api/db stack: services per network, replicas, healthchecks, endpoint modes; one warning per ignored key', () => {
    const r = importCompose(readFileSync(FIXTURE, 'utf8'));
    expect(r.warnings.map((w) => `${w.path}: ${w.message}`)).toEqual([
      '/version: ignored',
      '/volumes: ignored',
      '/secrets: ignored',
      '/networks/front/driver: ignored',
      '/networks/back/driver: ignored',
      '/networks/back/attachable: ignored',
      '/services/web/image: ignored',
      '/services/web/depends_on: ignored',
      '/services/web/volumes: ignored',
      '/services/web/deploy/restart_policy: ignored',
      '/services/web/ports/0: published host port 8080 ignored: the overlay reaches the target port 80 directly',
      '/services/api/image: ignored',
      '/services/api/environment: ignored',
      '/services/api/deploy/resources: ignored',
      '/services/api/healthcheck/test: shell form: run as ["CMD", "sh", "-c", …] (checks run without a shell otherwise)',
      '/services/db/image: ignored',
      '/services/db/environment: ignored',
      '/services/db/secrets: ignored',
      '/services/db/volumes: ignored',
      '/services/db/deploy/placement: ignored',
    ]);
    const c = r.config as any;
    expect(c.networks.map((n: any) => [n.name, n.vni, n.subnet, n.endpoints.length])).toEqual([['front', 100, '198.19.10.0/24', 5], ['back', 101, '198.19.20.0/24', 4]]);
    expect(c.services.map((s: any) => [s.name, s.network, s.endpointMode, s.instances.length])).toEqual([
      ['web', 'front', 'vip', 2], ['api', 'front', 'dnsrr', 3], ['api', 'back', 'dnsrr', 3], ['db', 'back', 'dnsrr', 1],
    ]);
    expect(c.services[0].healthcheck).toEqual({ test: ['CMD', 'wget', '-q', '-O-', 'http://localhost/healthz'], interval: '10s', timeout: '2s', retries: 3 });
    expect(c.services[1].healthcheck.test).toEqual(['CMD', 'sh', '-c', 'curl -fsS http://localhost:9000/ready']);
    expect(c.services[0].instances[0].ports).toEqual([{ port: 80, proto: 'tcp' }]);
    expect(c.services[1].instances[0].ports).toEqual([{ port: 9000, proto: 'tcp' }]);
    // With a name and keys it is a config the agent accepts as it is.
    const cfg = validateConfig({ ...c, name: 'host-a', listen: '198.18.0.1:7946', signingKey: key(64, 1), encryption: { insecure: true } });
    expect(cfg.services.find((s) => s.name === 'web')!.healthcheck!.fall).toBe(3);
    expect(cfg.networks[0].endpoints[0].ipv4Text).toBe('198.19.10.10');
  });

  it('through the CLI: YAML on stdout (no aliases), the warnings on stderr, exit 0; usage errors exit 2', async () => {
    const r = await run(['import', 'compose', FIXTURE]);
    expect(r.code).toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(20);
    expect(r.stderr).toMatch(/^warning: \/version: ignored\n/);
    expect(r.stdout).not.toMatch(/[&*]a\d/);
    expect((parse(r.stdout) as any).services).toHaveLength(4);
    expect((await run(['import', 'swarm', FIXTURE])).code).toBe(2);
    expect((await run(['import', 'compose'])).code).toBe(2);
    expect((await run(['import', 'compose', '/nonexistent.yaml'])).code).toBe(2);
  });

  it('a service on a network without a subnet falls back to dnsrr with a warning', () => {
    const r = importCompose('services:\n  cache:\n    image: redis\n    deploy: { endpoint_mode: vip }\n');
    expect((r.config as any).services[0]).toMatchObject({ name: 'cache', network: 'default', endpointMode: 'dnsrr' });
    expect(r.warnings.map((w) => w.path)).toEqual(['/services/cache/image', '/services/cache/deploy/endpoint_mode']);
  });
});
