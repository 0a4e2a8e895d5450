/**
 * The VIP load topology shared by test/vip-load.test.ts and the VIP benchmarks: three namespace
 * hosts on one overlay network (VNI 100, 198.19.0.0/24, the plain path: no TSO/GRO on the TAPs).
 *
 *   host 1 (client)   vip-runner.ts: openHost + ServiceVips with VIP 198.19.0.100:80 over the four
 *                     backends; clients run here (tcp-client.ts). Port range 1024..65000 and
 *                     tcp_tw_reuse, so a client can open many short connections in a row.
 *   host 2            vtep-host.ts; backends be1 198.19.0.2 and be2 198.19.0.12 (two addresses on
 *   host 3            its TAP) and be3 198.19.0.3, be4 198.19.0.13: one vip-server.ts process each.
 *
 * The backends of one host share its TAP's MAC, the translator rewrites to (address, MAC), and
 * every host knows every backend address as a static neighbour. `pin` puts clients and servers
 * on fixed CPUs with taskset (the benchmark pins; the dataplanes are left to the scheduler).
 */
import type { ChildProcess } from 'node:child_process';
import type { VipNetworkStats, VipTranslatorOptions } from '@overlay/services';
import { createTestbed, waitForLine, type TestHost, type Testbed } from './testbed.js';
import { endpointMac, meshConfig, repoRoot, startVtep, type HostConfig, type VtepProcess } from './vtep.js';
import { collectLines, until } from './wait.js';

export const VIP = '198.19.0.100';
export const VIP_PORT = 80;
export const VIP_VNI = 100;

export type BackendState = 'healthy' | 'draining' | 'down';

export interface TopologyBackend {
  readonly id: string;
  readonly ip: string;
  readonly mac: string;
  readonly host: TestHost;
  /** The server process; replaced by restartBackend. */
  child: ChildProcess;
}

export interface VipTopologyOptions {
  /** Namespace prefix (names also carry the pid and a random suffix). */
  prefix: string;
  /** ServiceVips options of the client host (timeouts, drainMs, capacity). */
  translator?: VipTranslatorOptions;
  /** CPUs for taskset: clients on `client`, backend servers on `server`. */
  pin?: { client: number; server: number };
}

const tsx = ['--conditions=source', '--import', 'tsx'];

/** [host index (1-based), backend address] of be1..be4. */
const LAYOUT: Array<[number, string]> = [
  [2, '198.19.0.2'],
  [2, '198.19.0.12'],
  [3, '198.19.0.3'],
  [3, '198.19.0.13'],
];

export class VipTopology {
  readonly vip = VIP;
  readonly port = VIP_PORT;
  private readonly vteps: VtepProcess[] = [];
  private runner: ChildProcess | undefined;
  private runnerOut: string[] = [];
  readonly backends: TopologyBackend[] = [];
  readonly configs: HostConfig[];

  private constructor(
    readonly tb: Testbed,
    private readonly o: VipTopologyOptions,
  ) {
    const cfg = meshConfig(tb.hosts, [VIP_VNI]).map((c) => ({ ...c, gro: false, tso: false }));
    for (const c of cfg) {
      const net = c.networks[0];
      const own = Number(net.addresses![0].split('/')[0].split('.')[3]);
      net.addresses = [...net.addresses!, ...LAYOUT.filter(([h, ip]) => h === own && !net.addresses![0].startsWith(`${ip}/`)).map(([, ip]) => `${ip}/24`)];
      const known = new Set(net.neighbours!.map((n) => n.ip));
      for (const [h, ip] of LAYOUT) if (h !== own && !known.has(ip)) net.neighbours!.push({ ip, mac: endpointMac(h, 0) });
    }
    this.configs = cfg;
  }

  /** Build the testbed, start the hosts, servers and the client host's VIP. Destroys what it made if any step fails. */
  static async open(o: VipTopologyOptions): Promise<VipTopology> {
    const tb = await createTestbed({ hosts: 3, prefix: o.prefix });
    const t = new VipTopology(tb, o);
    try {
      await t.start();
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  get clientHost(): TestHost {
    return this.tb.hosts[0];
  }

  private pinned(cpu: number | undefined, args: string[]): [string, string[]] {
    return cpu === undefined ? [process.execPath, args] : ['taskset', ['-c', String(cpu), process.execPath, ...args]];
  }

  private async start(): Promise<void> {
    const h1 = this.tb.hosts[0];
    await h1.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1']);
    for (let k = 1; k < 3; k++) this.vteps.push(await startVtep(this.tb.hosts[k], this.configs[k]));
    LAYOUT.forEach(([h, ip], i) => this.backends.push({ id: `be${i + 1}`, ip, mac: endpointMac(h, 0), host: this.tb.hosts[h - 1], child: undefined as unknown as ChildProcess }));
    for (const b of this.backends) await this.startBackend(b);
    const spec = { vip: VIP, ports: [VIP_PORT], backends: this.backends.map((b) => ({ id: b.id, ip: b.ip, mac: b.mac, state: 'healthy' })) };
    const runner = h1.spawn(process.execPath, [...tsx, `${repoRoot}/test/lib/vip-runner.ts`, JSON.stringify(this.configs[0]), String(VIP_VNI), JSON.stringify(spec), JSON.stringify(this.o.translator ?? {})], { cwd: repoRoot });
    this.runner = runner;
    this.runnerOut = collectLines(runner);
    let err = '';
    runner.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    await until(`vip-runner READY (${err})`, () => (this.runnerOut.includes('READY') ? true : runner.exitCode !== null ? fail(`vip-runner exited: ${err}`) : undefined), 30_000);
  }

  private async startBackend(b: TopologyBackend): Promise<void> {
    const [cmd, args] = this.pinned(this.o.pin?.server, [...tsx, `${repoRoot}/test/lib/vip-server.ts`, b.id, b.ip, String(VIP_PORT)]);
    b.child = b.host.spawn(cmd, args, { cwd: repoRoot });
    await waitForLine(b.child, /^LISTEN/, 30_000);
  }

  /** kill -9 a backend's server; resolves with Date.now() right after the signal was sent and the exit seen. */
  async killBackend(id: string): Promise<{ killedAt: number; exitedAt: number }> {
    const b = this.backend(id);
    const exited = new Promise<number>((r) => b.child.once('exit', () => r(Date.now())));
    const killedAt = Date.now();
    b.child.kill('SIGKILL');
    return { killedAt, exitedAt: await exited };
  }

  async restartBackend(id: string): Promise<void> {
    await this.startBackend(this.backend(id));
  }

  backend(id: string): TopologyBackend {
    const b = this.backends.find((x) => x.id === id);
    if (!b) throw new Error(`no backend ${id}`);
    return b;
  }

  /** One command to the client host's runner; resolves with its answer line. */
  private async ask(cmd: string, answer: string): Promise<string> {
    const from = this.runnerOut.length;
    this.runner!.stdin!.write(`${cmd}\n`);
    const line = await until(`runner answer to ${cmd}`, () => this.runnerOut.slice(from).find((l) => l.startsWith(answer) || l.startsWith('FAIL ')), 10_000);
    if (line.startsWith('FAIL ')) throw new Error(`runner: ${line}`);
    return line;
  }

  /** Set a backend's state on the client host (what the agent does when a record changes it); resolves with Date.now() after setVip. */
  async setState(id: string, state: BackendState): Promise<number> {
    return Number((await this.ask(`state ${id} ${state}`, 'SET ')).split(' ')[1]);
  }

  /** Recreate the VIP with other translator options (its flows are reset). */
  async setOptions(o: VipTranslatorOptions): Promise<void> {
    await this.ask(`options ${JSON.stringify(o)}`, 'OPTIONS');
  }

  async stats(): Promise<VipNetworkStats> {
    return (JSON.parse((await this.ask('stats', 'STATS ')).slice(6)) as VipNetworkStats[])[0];
  }

  /** Start tcp-client.ts on the client host (pinned if asked); lines collected as they come. */
  spawnClient(args: string[]): { child: ChildProcess; out: string[] } {
    const [cmd, a] = this.pinned(this.o.pin?.client, [...tsx, `${repoRoot}/test/lib/tcp-client.ts`, ...args]);
    const child = this.clientHost.spawn(cmd, a, { cwd: repoRoot });
    return { child, out: collectLines(child) };
  }

  async close(): Promise<void> {
    for (const b of this.backends) if (b.child && b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGTERM');
    if (this.runner && this.runner.exitCode === null) this.runner.kill('SIGTERM');
    await Promise.all(this.vteps.map((v) => v.stop()));
    await this.tb.destroy();
  }
}

function fail(msg: string): never {
  throw new Error(msg);
}

/** What `tcp-client.ts short` prints last. */
export interface ShortResult {
  ok: number;
  errors: number;
  ms: number;
  perSecond: number;
  share: Record<string, number>;
  shareAfter?: Record<string, number>;
  connectUs: [number, number];
  greetUs: [number, number];
  firstErr: number;
  lastErr: number;
  /** With several addresses: the times per address. */
  byAddress: Record<string, { n: number; connectUs: [number, number]; greetUs: [number, number] }>;
}

/** Run `tcp-client.ts short` to the end; resolves with its RESULT and every ERR line's time. */
export async function shortConnections(
  c: { child: ChildProcess; out: string[] },
  timeoutMs: number,
): Promise<{ result: ShortResult; errAt: number[]; errCodes: string[] }> {
  const line = await until('client RESULT', () => c.out.find((l) => l.startsWith('RESULT ')), timeoutMs);
  const errs = c.out.filter((l) => l.startsWith('ERR ')).map((l) => l.split(' '));
  return { result: JSON.parse(line.slice(7)) as ShortResult, errAt: errs.map((e) => Number(e[1])), errCodes: errs.map((e) => e[2]) };
}

/** max/min of the per-backend counts (Infinity when a backend got none). */
export function shareRatio(share: Record<string, number>, ids: string[]): number {
  const n = ids.map((id) => share[id] ?? 0);
  return Math.max(...n) / Math.min(...n);
}
