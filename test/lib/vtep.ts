/**
 * Starts and talks to VTEP host processes (vtep-host.ts: openHost from @overlay/host behind a
 * stdio protocol) in testbed namespaces, and builds the static configurations the system tests,
 * the demo and the benchmark use.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HostStats } from '@overlay/host';
import type { TestHost } from './testbed.js';
import { waitForLine } from './testbed.js';
import type { HostConfig } from './host-config.js';

export type { HostConfig, HostNetworkConfig } from './host-config.js';
export type { HostStats };

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const runner = fileURLToPath(new URL('./vtep-host.ts', import.meta.url));

export interface VtepProcess {
  readonly host: TestHost;
  readonly child: ChildProcess;
  readonly port: number;
  readonly networks: Array<{ vni: number; tap: string; mac: string; mtu: number }>;
  stats(): Promise<HostStats>;
  /** SIGTERM and wait for a clean exit (resolves with the exit code). */
  stop(): Promise<number | null>;
  /** Everything the process wrote to stderr so far (for failure messages). */
  stderr(): string;
}

/** Spawn vtep-host.ts in the host's namespace and wait for READY; `nodeArgs` go to node first (e.g. --cpu-prof). */
export async function startVtep(host: TestHost, cfg: HostConfig, nodeArgs: string[] = []): Promise<VtepProcess> {
  const child = host.spawn(process.execPath, [...nodeArgs, '--conditions=source', '--import', 'tsx', runner, JSON.stringify(cfg)], { cwd: repoRoot });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 100_000) err = err.slice(-50_000);
  });
  const line = await waitForLine(child, /^READY /, 30_000);
  const ready = JSON.parse(line.slice(6)) as { port: number; networks: VtepProcess['networks'] };
  let pending: Array<(s: HostStats) => void> = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (l.startsWith('STATS ')) pending.shift()?.(JSON.parse(l.slice(6)) as HostStats);
    }
  });
  return {
    host,
    child,
    port: ready.port,
    networks: ready.networks,
    stats: () =>
      new Promise<HostStats>((resolve, reject) => {
        if (child.exitCode !== null) return reject(new Error(`vtep on ${host.name} exited: ${err}`));
        const t = setTimeout(() => reject(new Error(`no stats from ${host.name}`)), 10_000);
        pending.push((s) => {
          clearTimeout(t);
          resolve(s);
        });
        child.stdin?.write('stats\n');
      }),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', (code) => {
          clearTimeout(t);
          pending = [];
          resolve(code);
        });
        child.kill('SIGTERM');
      }),
    stderr: () => err,
  };
}

/** MAC for overlay endpoint `n` of host `h`: locally administered, unicast. */
export function endpointMac(h: number, n = 0): string {
  return `02:00:c6:13:${h.toString(16).padStart(2, '0')}:${n.toString(16).padStart(2, '0')}`;
}

/**
 * Full-mesh static configuration: every host has one TAP per VNI with address
 * 198.19.<vni-index>.<host> (/24), and knows every other host's MAC, IP and VTEP.
 * `members[vni]` lists host indexes (1-based) attached to that VNI; default all. With `ipv6`,
 * VTEPs use the hosts' IPv6 underlay addresses.
 */
export function meshConfig(hosts: TestHost[], vnis: number[] = [100], members?: Record<number, number[]>, o: { ipv6?: boolean } = {}): HostConfig[] {
  const u = (h: TestHost) => (o.ipv6 ? h.underlay6! : h.underlay);
  return hosts.map((h) => ({
    address: u(h),
    networks: vnis
      .map((vni, vi) => ({ vni, vi, members: members?.[vni] ?? hosts.map((x) => x.index) }))
      .filter((n) => n.members.includes(h.index))
      .map(({ vni, vi, members: m }) => {
        const peers = hosts.filter((x) => x.index !== h.index && m.includes(x.index));
        return {
          vni,
          tap: `vx${vi}`,
          mac: endpointMac(h.index, vi),
          addresses: [`198.19.${vi}.${h.index}/24`],
          fdb: peers.map((p) => ({ mac: endpointMac(p.index, vi), vtep: u(p) })),
          neighbours: peers.map((p) => ({ ip: `198.19.${vi}.${p.index}`, mac: endpointMac(p.index, vi) })),
          flood: peers.map((p) => u(p)),
        };
      }),
  }));
}
