import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { generatePrivateKey, publicKeyOf } from '@overlay/crypto';
import { createTestbed, type Testbed } from './lib/testbed.js';

const DIR = resolve('examples/embedder');

interface Daemon {
  proc: ChildProcess;
  lines: () => Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

// examples/embedder/daemon.ts as an operator runs it: two daemons in two namespace hosts, each
// embedding @overlay/host (dataplane + WireGuard) with the other as its only peer, ping each
// other over the encrypted overlay; SIGTERM stops each with exit 0 and its final counters.
describe('examples/embedder: two embedder daemons ping each other', () => {
  let tb: Testbed;
  const dir = mkdtempSync(join(tmpdir(), 'embedder-'));
  const daemons: Daemon[] = [];
  const keys = [generatePrivateKey(), generatePrivateKey()];
  const mac = (i: number) => `02:00:00:00:0e:0${i + 1}`;
  const ip = (i: number) => `198.19.0.${i + 1}`;

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'emb' });
    for (let i = 0; i < 2; i++) {
      const o = 1 - i;
      const cfg = {
        underlay: tb.hosts[i].underlay,
        privateKey: keys[i],
        network: { vni: 42, tap: 'emb0', mac: mac(i), address: `${ip(i)}/24`, peers: [{ publicKey: publicKeyOf(keys[o]), vtep: tb.hosts[o].underlay, mac: mac(o), ip: ip(o) }] },
      };
      const file = join(dir, `d${i}.json`);
      writeFileSync(file, JSON.stringify(cfg), { mode: 0o600 });
      const proc = tb.hosts[i].spawn('node', ['--import', 'tsx', 'daemon.ts', file], { cwd: DIR, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      proc.stdout?.on('data', (d) => (out += d));
      proc.stderr?.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
      daemons.push({ proc, lines: () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>), stderr: () => err, exited });
    }
    const deadline = Date.now() + 30_000;
    while (!daemons.every((d) => d.lines().some((l) => l.event === 'ready'))) {
      for (const d of daemons) if (d.proc.exitCode !== null) throw new Error(`daemon exited ${d.proc.exitCode}: ${d.stderr()}`);
      if (Date.now() > deadline) throw new Error(`daemons not ready: ${daemons.map((d) => d.stderr()).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);
  afterAll(async () => {
    for (const d of daemons) if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
    await tb?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ready lines carry the public key and the MTU less VXLAN and WireGuard overhead; ping both ways; SIGTERM exits 0 with counters', async () => {
    for (let i = 0; i < 2; i++) {
      const ready = daemons[i].lines().find((l) => l.event === 'ready')!;
      expect(ready).toMatchObject({ publicKey: publicKeyOf(keys[i]), tap: 'emb0' });
      expect(ready.mtu).toBe(tb.mtu - 50 - 32);
    }
    for (const [a, b] of [[0, 1], [1, 0]]) {
      const r = await tb.hosts[a].run('ping', ['-c', '5', '-i', '0.1', '-W', '2', ip(b)], { timeoutMs: 20_000 });
      expect({ a, code: r.code, loss: /(\d+)% packet loss/.exec(r.stdout)?.[1] }).toEqual({ a, code: 0, loss: '0' });
    }
    for (const d of daemons) d.proc.kill('SIGTERM');
    expect(await Promise.all(daemons.map((d) => d.exited))).toEqual([0, 0]);
    for (let i = 0; i < 2; i++) {
      const last = daemons[i].lines().at(-1)!;
      expect(last.event).toBe('stopped');
      expect(last.delivered as number).toBeGreaterThanOrEqual(10); // 5 requests + 5 replies each way
      const [peer] = last.peers as { publicKey: string; up: boolean; rxBytes: number }[];
      expect(peer.publicKey).toBe(publicKeyOf(keys[1 - i]));
      expect(peer.rxBytes).toBeGreaterThan(0);
      // The TAP is gone with the daemon.
      expect((await tb.hosts[i].run('ip', ['link', 'show', 'emb0'])).code).not.toBe(0);
    }
  }, 60_000);
});
