import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LiveConfig, main, serveControl, validateConfig } from '@overlay/agent';
import { controlCommand } from '../src/config-commands.js';

const key = Buffer.alloc(64, 1).toString('base64');
const doc = {
  version: 1, name: 'host-a', listen: '198.18.0.1:7946', signingKey: key, encryption: { insecure: true },
  networks: [{ name: 'blue', vni: 100, subnet: '198.19.0.0/24', device: 'ov0', endpoints: [
    { id: 'web-a', device: 'ov0', mac: '02:00:00:00:00:01', ipv4: '198.19.0.11', groups: ['web'] },
    { id: 'db-a', mac: '02:00:00:00:00:03', ipv4: '198.19.0.21', groups: ['db'] },
  ] }],
  policies: [{ network: 'blue', defaultAction: 'deny', tiers: {
    admin: [{ id: 'no-ssh', action: 'deny', proto: 'tcp', ports: ['22'] }],
    network: [{ id: 'web-db', action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432'] }],
  } }],
};

/** `agent policy explain …` through main(), its stdout and stderr captured. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(['policy', 'explain', ...args]), out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

describe('agent policy explain', () => {
  let srv: Server | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await new Promise((r) => (srv ? srv.close(r) : r(undefined)));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('names the deciding rule, tier and groups of the running agent\'s policy; refuses bad queries with exit 2', async () => {
    const cfg = validateConfig(doc);
    const stages: string[] = [];
    const live = new LiveConfig({
      cfg, agent: { publish() {}, unpublish: () => true }, instances: () => undefined, log: () => {},
      dataplane: { addStage: (_v: number, s: { name: string }) => void stages.push(s.name), removeStage: () => true } as never,
    });
    live.start();
    expect(stages).toEqual(['policy']);
    dir = mkdtempSync(join(tmpdir(), 'explain-'));
    const sock = join(dir, 'a.sock');
    srv = await serveControl(sock, () => ({}), (line) => controlCommand(live, line));

    const allowed = await cli(['--socket', sock, '--src', '198.19.0.11', '--dst', '198.19.0.21', '--proto', 'tcp', '--port', '5432']);
    expect(allowed.code).toBe(0);
    expect(allowed.out).toMatch(/^ALLOW 198\.19\.0\.11 → 198\.19\.0\.21 tcp port 5432 on blue\n/);
    expect(allowed.out).toMatch(/rule web-db \(tier network, #\d+\)/);
    expect(allowed.out).toMatch(/source groups: web; destination groups: db/);

    const ssh = await cli(['--socket', sock, '--src', '198.19.0.11', '--dst', '198.19.0.21', '--proto', 'tcp', '--port', '22', '--json']);
    expect(JSON.parse(ssh.out)).toMatchObject({ network: 'blue', action: 'deny', tier: 'admin', ruleId: 'no-ssh' });

    const back = await cli(['--socket', sock, '--src', '198.19.0.21', '--dst', '198.19.0.11', '--proto', 'tcp', '--port', '5432', '--network', 'blue']);
    expect(back.out).toMatch(/^DENY .*\n  decided by: the default action/);

    expect((await cli(['--socket', sock, '--src', 'nope', '--dst', '198.19.0.21', '--proto', 'tcp'])).code).toBe(2);
    expect((await cli(['--socket', sock, '--src', '198.19.0.11', '--dst', '198.19.0.21', '--proto', 'tcp', '--network', 'red'])).code).toBe(2);
    expect((await cli(['--socket', sock, '--src', '198.19.0.11', '--proto', 'tcp'])).code).toBe(2);
    expect((await cli(['--socket', join(dir, 'none.sock'), '--src', '198.19.0.11', '--dst', '198.19.0.21', '--proto', 'udp'])).code).toBe(1);
  });
});
