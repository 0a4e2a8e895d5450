import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { ServicesRuntime } from '../src/services-run.js';

const run = promisify(execFile);
const key = Buffer.alloc(64, 1).toString('base64');

/** A port free on 127.0.0.1 (TCP; the DNS socket binds UDP and TCP on it). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("the agent's DNS socket", () => {
  let rt: ServicesRuntime | undefined;
  afterEach(async () => {
    await rt?.stop();
    rt = undefined;
  });

  it('answers on the batched native UDP transport (not node:dgram), over UDP and TCP', async () => {
    const port = await freePort();
    const cfg = validateConfig({
      name: 'a', listen: '198.18.0.1:7946', signingKey: key, encryption: { insecure: true },
      dns: { listen: `127.0.0.1:${port}`, forward: false },
      networks: [{ name: 'blue', vni: 100, subnet: '198.19.0.0/24' }],
    });
    rt = new ServicesRuntime(cfg, createLogger({ level: 'silent' }));
    await rt.start({ publish() {}, unpublish() { return true; } } as never, undefined);
    expect(rt.status().dnsBatched).toBe(true);
    for (const tcp of [false, true]) {
      const r = await run('dig', ['@127.0.0.1', '-p', String(port), ...(tcp ? ['+tcp'] : []), '+tries=2', '+time=2', 'nothing.here']);
      expect(r.stdout).toMatch(/status: NXDOMAIN/);
    }
    expect(rt.dnsCounters.snapshot().queries).toBeGreaterThanOrEqual(2);
  });
});
