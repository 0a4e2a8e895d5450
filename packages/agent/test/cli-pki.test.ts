import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustedCas, decodePem, formatToken, generateSigningKey, generateWireGuardKey, parseToken, verifyCert } from '@overlay/pki';
import { pkiMain } from '../src/cli-pki.js';
import { main } from '../src/cli.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'agent-pki-'));
  dirs.push(d);
  return d;
};

async function run(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await pkiMain(args, (s) => void (stdout += s), (s) => void (stderr += s));
  return { code, stdout, stderr };
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const certOf = (path: string) => decodePem('CERTIFICATE', readFileSync(path, 'utf8'))[0];

describe('agent ca / cert / token / join', () => {
  it('init a CA, sign a cert, create a token, join through `agent ca serve` over TCP, rotate the token', async () => {
    const dir = tempDir();
    const init = await run(['ca', 'init', '--dir', dir, '--name', 'test-ca']);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/^CA test-ca .*\ndigest [0-9a-f]{64}\n$/);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    const seed = decodePem('ED25519 PRIVATE KEY', readFileSync(join(dir, 'ca.key'), 'utf8'))[0];
    expect(init.stdout).not.toContain(b64(seed));
    expect((await run(['ca', 'init', '--dir', dir, '--name', 'again'])).code).toBe(1);
    const trust = new TrustedCas([certOf(join(dir, 'ca.crt'))]);

    const id = generateSigningKey();
    const wg = generateWireGuardKey();
    const signed = await run(['cert', 'sign', '--dir', dir, '--name', 'db-1', '--sign-key', b64(id.publicKey), '--wg-key', b64(wg.publicKey), '--prefix', '198.19.0.2/32', '--group', 'db', '--out', join(dir, 'db-1.crt')]);
    expect(signed.code, signed.stderr).toBe(0);
    const v = verifyCert(certOf(join(dir, 'db-1.crt')), trust, Date.now());
    expect([v.cert.name, v.cert.groups, v.cert.notAfter - v.cert.notBefore]).toEqual(['db-1', ['db'], 7 * 86_400_000]);

    const created = await run(['token', 'create', '--dir', dir, '--group', 'web', '--within', '198.19.0.0/16']);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(Buffer.from(parseToken(token).caDigest)).toEqual(Buffer.from(trust.list()[0].digest));
    expect(statSync(join(dir, 'token.json')).mode & 0o777).toBe(0o600);

    // The signer as an operator runs it: a separate process on a TCP port.
    const child = spawn('node', ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts', 'ca', 'serve', '--dir', dir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let log = '';
    child.stderr!.on('data', (d: Buffer) => void (log += d.toString()));
    const waitLog = async (re: RegExp, ms = 30_000) => {
      const end = Date.now() + ms;
      while (!re.test(log) && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      return re.exec(log);
    };
    const port = Number((await waitLog(/answering joins on 127\.0\.0\.1:(\d+)/))?.[1]);
    expect(port, log).toBeGreaterThan(0);
    const server = `127.0.0.1:${port}`;

    const out = join(dir, 'web-1');
    mkdirSync(out);
    const joined = await run(['join', '--token', token, '--server', server, '--name', 'web-1', '--prefix', '198.19.0.11/32', '--out', out]);
    expect(joined.code, joined.stderr).toBe(0);
    const nc = verifyCert(certOf(join(out, 'node.crt')), trust, Date.now()).cert;
    expect([nc.name, nc.groups]).toEqual(['web-1', ['web']]);
    expect(statSync(join(out, 'node.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'wg.key')).mode & 0o777).toBe(0o600);
    expect(Buffer.from(certOf(join(out, 'ca.crt')))).toEqual(Buffer.from(certOf(join(dir, 'ca.crt'))));

    const joinAs = async (tok: string, name: string) => {
      const o = join(dir, name);
      mkdirSync(o);
      return run(['join', '--token', tok, '--server', server, '--name', name, '--out', o]);
    };
    const t = parseToken(token);
    const wrongSecret = await joinAs(formatToken({ ...t, secret: new Uint8Array(32).fill(9) }), 'x-1');
    expect([wrongSecret.code, wrongSecret.stderr]).toEqual([1, expect.stringContaining('bad_secret')]);
    const otherCa = await joinAs(formatToken({ ...t, caDigest: new Uint8Array(32).fill(3) }), 'x-2');
    expect([otherCa.code, otherCa.stderr]).toEqual([1, expect.stringContaining('wrong_issuer')]);

    const rotated = await run(['token', 'rotate', '--dir', dir]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const token2 = rotated.stdout.trim();
    expect(token2).not.toBe(token);
    expect(await waitLog(/join token rotated/, 10_000), log).not.toBeNull();
    const old = await joinAs(token, 'x-3');
    expect([old.code, old.stderr]).toEqual([1, expect.stringContaining('bad_secret')]);
    expect((await joinAs(token2, 'web-2')).code).toBe(0);
    // web-1 was issued to another identity key: a new key asking for that name is refused.
    const again = join(dir, 'web-1-again');
    mkdirSync(again);
    const taken = await run(['join', '--token', token2, '--server', server, '--name', 'web-1', '--out', again]);
    expect([taken.code, taken.stderr]).toEqual([1, expect.stringContaining('name_taken')]);
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'issued.json'), 'utf8')))).toEqual(['web-1', 'web-2']);

    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
    expect(child.exitCode).toBe(0);
    expect(log).toMatch(/joins \{"issued":2,"bad_secret":2,"wrong_issuer":1,"name_taken":1\}/);
    // No key or secret in anything the signer printed.
    for (const secret of [parseToken(token).secret, parseToken(token2).secret, seed]) {
      expect(log).not.toContain(Buffer.from(secret).toString('hex'));
      expect(log).not.toContain(b64(secret));
    }
  }, 120_000);

  it('usage errors exit 2 and the main CLI dispatches and lists the PKI commands', async () => {
    expect((await run(['ca', 'init', '--name', 'x'])).code).toBe(2);
    expect((await run(['ca', 'burn', '--dir', '/nonexistent'])).code).toBe(2);
    expect((await run(['token', 'rotate', '--dir', '/x', '--group', 'a'])).code).toBe(2);
    expect((await run(['cert', 'sign', '--dir', '/x', '--name', 'n', '--sign-key', 'short', '--wg-key', 'x', '--out', '/x/y'])).code).toBe(2);
    const w = process.stdout.write;
    let text = '';
    process.stdout.write = ((s: string) => ((text += s), true)) as typeof process.stdout.write;
    try {
      expect(await main(['--help'])).toBe(0);
      expect(await main(['join', '--help'])).toBe(0);
    } finally {
      process.stdout.write = w;
    }
    expect(text).toContain('agent ca init --dir DIR --name NAME');
    expect(text).toContain('agent token create|rotate');
    expect(text).toContain('usage: agent join --token TOKEN');
    expect(text).toContain('Exit codes: 0 ok, 1 runtime failure');
  });
});
