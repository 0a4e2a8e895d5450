/**
 * Trust and certificate files re-read at once on SIGHUP (docs/pki.md "Trust and certificate files
 * while running"; cli.ts, pki-run.ts): a real agent from `runAgent` (loopback gossip socket, no
 * device), its trust file replaced by two CAs and its certificate by a re-issued one; then the
 * reload SIGHUP runs (`running.reload(configPath)`), called in the same tick as the writes, so the
 * 1 s poll cannot have taken them first. Both are taken by that call: trust_reloaded, two CAs
 * trusted, our notAfter the new certificate's, the log line of the SIGHUP reload.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePrivateKey, publicKeyOf } from '@overlay/crypto';
import { createCa, encodePem, generateSigningKey, signCert, DAY_MS, type CaKeyPair } from '@overlay/pki';
import { loadConfig } from '../src/config.js';
import { runAgent } from '../src/cli.js';
import type { Logger } from '../src/log.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** A TCP port free on 127.0.0.1 now (the agent binds UDP and TCP on it). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('PKI files re-read on SIGHUP (real agent, in process)', () => {
  it('the SIGHUP reload takes a changed trust file and certificate file at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pki-reload-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const now = Date.now();
    const ca1 = createCa({ name: 'reload-ca1', now: now - 60_000 });
    const ca2 = createCa({ name: 'reload-ca2', now: now - 60_000 });
    const wgPriv = generatePrivateKey();
    const wgPub = new Uint8Array(Buffer.from(publicKeyOf(wgPriv), 'base64'));
    const id = generateSigningKey();
    const issue = (ca: CaKeyPair, lifetimeMs: number) => signCert(ca, { name: 'rl0', prefixes: ['198.19.0.1/32'], wgKey: wgPub, signKey: id.publicKey, now: now - 1000, lifetimeMs }).bytes;
    const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') };
    writeFileSync(files.ca, encodePem('CERTIFICATE', ca1.cert.bytes));
    writeFileSync(files.cert, encodePem('CERTIFICATE', issue(ca1, DAY_MS)));
    writeFileSync(files.key, encodePem('ED25519 PRIVATE KEY', id.seed), { mode: 0o600 });
    const cfgPath = join(dir, 'agent.yaml');
    const writeConfig = (port: number) => writeFileSync(cfgPath, [
      'name: rl0',
      `listen: 127.0.0.1:${port}`,
      'wireguard:',
      `  privateKey: ${wgPriv}`,
      `controlSocket: ${join(dir, 'a.sock')}`,
      'pki:',
      `  ca: ${files.ca}`,
      `  cert: ${files.cert}`,
      `  key: ${files.key}`,
      '',
    ].join('\n'));
    const logged: Record<string, unknown>[] = [];
    const keep = (o: unknown) => void (typeof o === 'object' && o && logged.push(o as Record<string, unknown>));
    const log = { info: keep, warn: keep, error: keep, debug: () => undefined } as unknown as Logger;
    // The port found free may be taken before the agent binds it (another process): try another.
    let running: Awaited<ReturnType<typeof runAgent>> | undefined;
    for (let attempt = 0; !running; attempt++) {
      writeConfig(await freePort());
      try {
        running = await runAgent(loadConfig(cfgPath), log);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 4) throw e;
      }
    }
    const agentRun = running;
    cleanups.push(() => agentRun.stop());
    const pki = () => agentRun.agent.status().pki!;
    expect(pki().trusted).toBe(1);
    expect(pki().counters.trust_reloaded).toBe(0);

    // Rollover step 1 and a re-issued certificate (CA2, 2 days), written and reloaded in one tick.
    const renewed = issue(ca2, 2 * DAY_MS);
    writeFileSync(files.ca, encodePem('CERTIFICATE', ca1.cert.bytes) + encodePem('CERTIFICATE', ca2.cert.bytes));
    writeFileSync(files.cert, encodePem('CERTIFICATE', renewed));
    const applied = agentRun.reload(cfgPath);
    // Taken synchronously by the SIGHUP path, before the config apply even starts.
    expect(pki().trusted).toBe(2);
    expect(pki().counters.trust_reloaded).toBe(1);
    expect(pki().selfNotAfter).toBe(now - 1000 + 2 * DAY_MS);
    expect(pki().byIssuer).toEqual({ 'reload-ca2': 1 });
    const line = logged.find((o) => typeof o.pki === 'string' && o.pki.includes('(SIGHUP)'));
    expect(line, 'the SIGHUP reload logged what it took').toMatchObject({ trust: true, cert: true });
    expect(await applied, 'the unchanged config applies (an empty plan)').toBeDefined();
    // Nothing left for the poll: a second SIGHUP takes nothing.
    await agentRun.reload(cfgPath);
    expect(logged.filter((o) => typeof o.pki === 'string' && o.pki.includes('(SIGHUP)')).at(-1)).toMatchObject({ trust: false, cert: false });
    expect(pki().counters.trust_reloaded).toBe(1);
  }, 60_000);
});
