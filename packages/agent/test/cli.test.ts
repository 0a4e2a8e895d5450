import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { queryControl, serveControl, validateConfig } from '@overlay/agent';

function agent(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('agent CLI', () => {
  it('keygen prints keys that make a valid config', async () => {
    const r = await agent(['keygen']);
    expect(r.code).toBe(0);
    const keys = parse(r.stdout) as Record<string, unknown>;
    const cfg = validateConfig({ name: 'n1', listen: '198.18.0.1:7946', ...keys });
    expect(cfg.signingKey.length).toBe(64);
    expect(cfg.clusterKeys).toHaveLength(1);
    expect(cfg.wireguard?.privateKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  }, 60_000);

  it('refuses a bad config with exit code 2 and the field name, starting nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'name: n1\nlisten: 198.18.0.1:7946\nsigningKey: AAAA\n');
    const r = await agent(['--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('signingKey');
    const r2 = await agent(['--config', join(dir, 'missing.yaml')]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('--config');
    const r3 = await agent(['status']);
    expect(r3.code).toBe(2);
  }, 60_000);

  it('serves status on a control socket only its owner can open, whatever the umask', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-ctl-'));
    const path = join(dir, 'ctl.sock');
    const old = process.umask(0);
    try {
      const srv = await serveControl(path, () => ({ name: 'n1' }));
      try {
        expect(statSync(path).mode & 0o777).toBe(0o600);
        expect(await queryControl(path)).toEqual({ name: 'n1' });
      } finally {
        srv.close();
      }
    } finally {
      process.umask(old);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
