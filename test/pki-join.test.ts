/**
 * Token join across network namespaces (issue 13): a signer host runs `agent ca serve` on its
 * underlay address; four hosts run `agent join --token` against it, two of them with 5 % loss on
 * every underlay; a wrong secret and a different CA digest are refused. Every written certificate
 * verifies against the CA and is for the joiner's name and prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustedCas, covers, decodePem, formatToken, parseToken, verifyCert } from '@overlay/pki';
import { createTestbed, type Testbed } from './lib/testbed.js';

const MAIN = ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts'];
const PORT = 7950;

describe('token join between namespace hosts', () => {
  let tb: Testbed;
  let dir: string;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 5, prefix: 'pkij' });
    dir = mkdtempSync(join(tmpdir(), 'pki-join-'));
  });
  afterAll(async () => {
    await tb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('4 hosts join with the token (2 under 5 % loss); a wrong secret and another CA digest are refused', async () => {
    const [signerHost, ...joiners] = tb.hosts;
    const sh = (args: string[]) => signerHost.run('node', [...MAIN, ...args], { timeoutMs: 60_000 });
    expect((await sh(['ca', 'init', '--dir', dir, '--name', 'netns-ca'])).code).toBe(0);
    const created = await sh(['token', 'create', '--dir', dir, '--group', 'web', '--within', '198.19.0.0/16']);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();

    const serve = signerHost.spawn('node', [...MAIN, 'ca', 'serve', '--dir', dir, '--listen', `${signerHost.underlay}:${PORT}`]);
    let log = '';
    serve.stderr!.on('data', (d: Buffer) => void (log += d.toString()));
    for (let end = Date.now() + 60_000; !/answering joins/.test(log) && Date.now() < end && serve.exitCode === null; ) await new Promise((r) => setTimeout(r, 100));
    expect(log).toMatch(/answering joins on 198\.18\.0\.1:7950/);

    const joinFrom = (i: number, tok: string) => {
      const h = joiners[i];
      const out = join(dir, `out-${h.index}-${Math.random().toString(16).slice(2, 8)}`);
      mkdirSync(out);
      const r = h.run('node', [...MAIN, 'join', '--token', tok, '--server', `${signerHost.underlay}:${PORT}`, '--name', `web-${h.index}`, '--prefix', `198.19.0.${h.index}/32`, '--out', out], { timeoutMs: 90_000 });
      return r.then((res) => ({ ...res, out, host: h }));
    };
    const trust = new TrustedCas(decodePem('CERTIFICATE', readFileSync(join(dir, 'ca.crt'), 'utf8')));
    const checkJoined = (r: Awaited<ReturnType<typeof joinFrom>>) => {
      expect(r.code, r.stderr).toBe(0);
      const cert = verifyCert(decodePem('CERTIFICATE', readFileSync(join(r.out, 'node.crt'), 'utf8'))[0], trust, Date.now()).cert;
      expect(cert.name).toBe(`web-${r.host.index}`);
      expect(cert.groups).toEqual(['web']);
      expect(covers(cert.prefixes, `198.19.0.${r.host.index}`)).toBe(true);
    };

    // Clean underlay: hosts 2 and 3.
    for (const r of await Promise.all([joinFrom(0, token), joinFrom(1, token)])) checkJoined(r);

    // 5 % loss on every host's underlay egress: hosts 4 and 5 still join (TCP retransmits), and
    // the refusals are still refusals.
    for (const h of tb.hosts) await tb.netem(h, 'loss 5%');
    const t = parseToken(token);
    const [a, b, wrongSecret, otherCa] = await Promise.all([
      joinFrom(2, token),
      joinFrom(3, token),
      joinFrom(0, formatToken({ ...t, secret: new Uint8Array(32).fill(5) })),
      joinFrom(1, formatToken({ ...t, caDigest: new Uint8Array(32).fill(6) })),
    ]);
    checkJoined(a);
    checkJoined(b);
    expect([wrongSecret.code, wrongSecret.stderr]).toEqual([1, expect.stringContaining('bad_secret')]);
    expect([otherCa.code, otherCa.stderr]).toEqual([1, expect.stringContaining('wrong_issuer')]);
    for (const h of tb.hosts) await tb.clearNetem(h);

    serve.kill('SIGTERM');
    // 'close': after the exit and the last of its stderr.
    await new Promise((r) => serve.once('close', r));
    // The signer's counts on exit (keys in the order the outcomes first happened).
    const joins = /joins (\{.*\})/.exec(log)?.[1];
    expect(joins && JSON.parse(joins)).toEqual({ issued: 4, bad_secret: 1, wrong_issuer: 1 });
  }, 300_000);
});
