/**
 * Helpers for interop tests against Debian's unmodified wireguard-go: start it in a namespace
 * (`wireguard-go -f IFACE`), configure it with `wg set` (keys through files mode 0600, removed
 * at once), read `wg show` state, and drive our wg-peer.ts process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { waitForLine, type TestHost } from './testbed.js';
import type { WgPeerConfig } from './wg-peer.js';

export interface WgGoOptions {
  iface: string;
  privateKey: string;
  port: number;
  address: string;
  peer: { publicKey: string; allowedIPs: string; endpoint?: string; presharedKey?: string; persistentKeepalive?: number };
}

/** Writes secrets to private temp files for `wg set`, and removes them afterwards. */
async function withKeyFiles<T>(keys: Record<string, string | undefined>, fn: (paths: Record<string, string>) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'wgkeys-'));
  try {
    const paths: Record<string, string> = {};
    for (const [k, v] of Object.entries(keys)) {
      if (v === undefined) continue;
      paths[k] = join(dir, k);
      writeFileSync(paths[k], v + '\n', { mode: 0o600 });
    }
    return await fn(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startWireguardGo(host: TestHost, o: WgGoOptions): Promise<ChildProcess> {
  const child = host.spawn('wireguard-go', ['-f', o.iface], { stdio: 'pipe', env: { ...process.env, LOG_LEVEL: 'verbose', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' } });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await host.run('ip', ['link', 'show', o.iface]);
    if (r.code === 0) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`wireguard-go did not create ${o.iface}`);
    await new Promise((r2) => setTimeout(r2, 50));
  }
  await withKeyFiles({ priv: o.privateKey, psk: o.peer.presharedKey }, async (p) => {
    const args = ['set', o.iface, 'private-key', p.priv, 'listen-port', String(o.port), 'peer', o.peer.publicKey, 'allowed-ips', o.peer.allowedIPs];
    if (o.peer.endpoint) args.push('endpoint', o.peer.endpoint);
    if (p.psk) args.push('preshared-key', p.psk);
    if (o.peer.persistentKeepalive) args.push('persistent-keepalive', String(o.peer.persistentKeepalive));
    await host.exec('wg', args);
  });
  await host.exec('ip', ['addr', 'add', o.address, 'dev', o.iface]);
  await host.exec('ip', ['link', 'set', o.iface, 'up']);
  return child;
}

/** Latest handshake time (unix seconds) wireguard-go reports for its peer, 0 if none. */
export async function latestHandshake(host: TestHost, iface: string): Promise<number> {
  const out = await host.exec('wg', ['show', iface, 'latest-handshakes']);
  const n = Number(out.trim().split(/\s+/)[1] ?? 0);
  return Number.isFinite(n) ? n : 0;
}

export interface OurPeer {
  child: ChildProcess;
  publicKey: string;
  events: string[];
  stats(): Promise<{ device: { drops: Record<string, number>; rx: Record<string, number>; tx: Record<string, number> }; peers: { up: boolean; handshakes: number }[] }>;
  connect(): void;
  stop(): Promise<void>;
}

export async function startOurPeer(host: TestHost, cfg: WgPeerConfig): Promise<OurPeer> {
  const child = host.spawn('node', ['--conditions=source', '--import', 'tsx', 'test/lib/wg-peer.ts'], { cwd: process.cwd(), stdio: 'pipe' });
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`wg-peer: ${d}`));
  const events: string[] = [];
  let buf = '';
  const statsWaiters: ((s: string) => void)[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('EVENT ')) events.push((JSON.parse(line.slice(6)) as { type: string }).type);
      else if (line.startsWith('STATS ')) statsWaiters.shift()?.(line.slice(6));
    }
  });
  const ready = waitForLine(child, /^READY /, 30_000);
  child.stdin!.write(JSON.stringify(cfg) + '\n');
  const line = await ready;
  const { publicKey } = JSON.parse(line.slice(6)) as { publicKey: string };
  return {
    child,
    publicKey,
    events,
    stats: () =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no STATS from wg-peer')), 10_000);
        statsWaiters.push((s) => {
          clearTimeout(t);
          resolve(JSON.parse(s));
        });
        child.stdin!.write('stats\n');
      }),
    connect: () => void child.stdin!.write('connect\n'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 5_000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.stdin!.end();
      }),
  };
}
