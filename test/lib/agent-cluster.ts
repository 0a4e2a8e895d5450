/**
 * Real agents in testbed namespaces: writes one YAML config per host (fixed identity keys, one
 * cluster key, WireGuard keys when `encrypt`), spawns `agent --config` in the host's namespace and
 * reads its status over the control socket (a unix socket path, reachable from the test process).
 * Every process is killed by stop()/kill() and, as a backstop, by the testbed's destroy().
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { generatePrivateKey } from '@overlay/crypto';
import { generateSigningKey, queryControl, type AgentStatus } from '@overlay/agent';
import type { TestHost } from './testbed.js';

export interface AgentClusterOptions {
  profile?: 'lan' | 'wan' | 'local';
  encrypt?: boolean;
  seed?: number; // index of the seed host
  /** Extra arguments for the agent's `node` (e.g. `--cpu-prof`), placed before the script. */
  nodeArgs?: string[];
  /** Hosts that run a "newer" agent (test/lib/agent-newer.ts: records carry a field this build does not know). */
  newer?: number[];
  /** How long start() waits for the control socket (default 45 s). */
  startTimeoutMs?: number;
}

export interface AgentProc {
  host: TestHost;
  proc: ChildProcess;
  socket: string;
  status(): Promise<AgentStatus>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Config lines of network blue (VNI 100, 198.19.0.0/24 on TAP ov0) with one endpoint on the TAP. */
export function blueNetwork(id: string, mac: string, ipv4: string): string[] {
  return ['networks:', '  - name: blue', '    vni: 100', '    subnet: 198.19.0.0/24', '    device: ov0', '    endpoints:', `      - { id: ${id}, device: ov0, mac: "${mac}", ipv4: ${ipv4} }`];
}

export class AgentCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'agent-ns-'));
  private readonly signing: Uint8Array[];
  private readonly wg: string[];
  private readonly clusterKey = randomBytes(32).toString('base64');
  readonly procs: (AgentProc | null)[];
  /** Overlay IPv4 of host i's endpoint, optionally overridden per restart. */
  ip = (i: number) => `198.19.0.${i + 1}`;

  constructor(readonly hosts: TestHost[], readonly o: AgentClusterOptions = {}) {
    this.signing = hosts.map(() => generateSigningKey());
    this.wg = hosts.map(() => generatePrivateKey());
    this.procs = hosts.map(() => null);
  }

  config(i: number, endpointIp = this.ip(i), seedIndex = this.o.seed ?? 0): string {
    const h = this.hosts[i];
    const seed = this.hosts[seedIndex];
    const mac = `02:00:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`;
    return [
      `name: ${h.name.slice(-12)}-a${i}`,
      `listen: ${h.underlay}:7946`,
      `seeds: [${seed.underlay}:7946]`,
      `profile: ${this.o.profile ?? 'lan'}`,
      `signingKey: ${Buffer.from(this.signing[i]).toString('base64')}`,
      `encryption:`,
      `  clusterKeys: [${this.clusterKey}]`,
      ...(this.o.encrypt ? [`wireguard:`, `  privateKey: ${this.wg[i]}`] : []),
      `controlSocket: ${join(this.dir, `a${i}.sock`)}`,
      ...blueNetwork(`ep-${i}`, mac, endpointIp),
      '',
    ].join('\n');
  }

  async start(i: number, endpointIp?: string, seedIndex?: number): Promise<AgentProc> {
    const file = join(this.dir, `a${i}.yaml`);
    writeFileSync(file, this.config(i, endpointIp, seedIndex), { mode: 0o600 });
    const host = this.hosts[i];
    const socket = join(this.dir, `a${i}.sock`);
    const script = this.o.newer?.includes(i) ? 'test/lib/agent-newer.ts' : 'packages/agent/src/main.ts';
    const proc = host.spawn('node', [...(this.o.nodeArgs ?? []), '--conditions=source', '--import', 'tsx', script, '--config', file], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
    const p: AgentProc = {
      host,
      proc,
      socket,
      status: () => queryControl(socket) as Promise<AgentStatus>,
      kill: async (signal = 'SIGTERM') => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
        return exited;
      },
    };
    // Wait for the control socket (tsx compiles the agent's sources at start: seconds on an idle
    // machine, tens of seconds when the machine is loaded).
    const deadline = Date.now() + (this.o.startTimeoutMs ?? 45_000);
    for (;;) {
      try {
        await p.status();
        break;
      } catch {
        if (proc.exitCode !== null) throw new Error(`agent ${i} exited: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`agent ${i} did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.procs[i] = p;
    return p;
  }

  async statuses(): Promise<(AgentStatus | null)[]> {
    return Promise.all(this.procs.map((p) => (p ? p.status().catch(() => null) : null)));
  }

  /** Poll until `pred` holds over all live statuses; returns elapsed ms or throws after maxMs. */
  async until(pred: (s: (AgentStatus | null)[]) => boolean, maxMs: number, stepMs = 250): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const s = await this.statuses();
      if (pred(s)) return Date.now() - t0;
      if (Date.now() - t0 > maxMs) throw new Error(`condition not reached in ${maxMs} ms: ${JSON.stringify(s.map((x) => x && { m: x.members.map((m) => `${m.name}:${m.state}`), p: x.counters.programmed, d: x.digest.slice(0, 8) }))}`);
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs.map((p) => p?.kill('SIGKILL')));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
