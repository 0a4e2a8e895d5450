import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidConfigError } from '@overlay/dataplane';
import { validateHostOptions, type HostStats } from '@overlay/host';
import { createTestbed, waitForLine, type Testbed, type TestHost } from './lib/testbed.js';
import { ping } from './lib/transfer.js';
import { endpointMac, meshConfig, repoRoot, startVtep, type HostConfig, type VtepProcess } from './lib/vtep.js';

// openHost with `workers: 2` (docs/multicore.md) on two namespace hosts: one TAP queue, pipeline
// and SO_REUSEPORT socket per worker thread. Many TCP flows at once arrive intact and spread over
// both workers of each host; a peer added through host.dataplane at run time reaches every worker.

const tsx = (script: string, args: string[]): [string, string[]] => [process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL(script, import.meta.url)), ...args]];
const plain = (script: string, args: string[]): [string, string[]] => [process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args]];

/** A workers-host.ts process: request/answer lines on stdio. */
class WorkersHost {
  private buf = '';
  private waiting: Array<{ prefix: string; done: (line: string) => void }> = [];
  err = '';
  constructor(readonly child: ChildProcess) {
    child.stderr?.on('data', (d: Buffer) => (this.err = (this.err + d.toString()).slice(-20_000)));
    child.stdout?.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const w = this.waiting.findIndex((x) => line.startsWith(x.prefix));
        if (w >= 0) this.waiting.splice(w, 1)[0].done(line);
      }
    });
  }
  static async start(h: TestHost, cfg: HostConfig): Promise<WorkersHost> {
    const child = h.spawn(...tsx('./lib/workers-host.ts', [JSON.stringify(cfg)]), { cwd: repoRoot });
    const w = new WorkersHost(child);
    await waitForLine(child, /^READY /, 40_000);
    return w;
  }
  private ask(cmd: string, prefix: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${prefix} answer to ${cmd}: ${this.err}`)), 15_000);
      this.waiting.push({ prefix, done: (l) => (clearTimeout(t), resolve(l)) });
      this.child.stdin?.write(`${cmd}\n`);
    });
  }
  async stats(): Promise<HostStats> {
    return JSON.parse((await this.ask('stats', 'STATS ')).slice(6)) as HostStats;
  }
  async fdb(vni: number): Promise<Array<Array<{ mac: string }>>> {
    return JSON.parse((await this.ask(`fdb ${vni}`, 'FDB ')).slice(4)) as Array<Array<{ mac: string }>>;
  }
  async peer(p: object): Promise<string> {
    return this.ask(`peer ${JSON.stringify(p)}`, '');
  }
  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      this.child.once('exit', () => (clearTimeout(t), resolve()));
      this.child.kill('SIGTERM');
    });
  }
}

/** `n` TCP connections at once from `from` to address:port, `bytes` each; the hashes of both ends per connection, sorted. */
async function manyFlows(from: TestHost, to: TestHost, address: string, port: number, n: number, bytes: number): Promise<{ sent: string[]; received: string[] }> {
  const sink = to.spawn(...plain('./lib/tcp-multi.mjs', ['sink', address, String(port), String(n)]), { cwd: repoRoot });
  const lines = (c: ChildProcess, prefix: string) =>
    new Promise<string[]>((resolve, reject) => {
      let buf = '';
      let err = '';
      c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      c.stdout?.on('data', (d: Buffer) => (buf += d.toString()));
      c.once('exit', () => {
        const got = buf.split('\n').filter((l) => l.startsWith(prefix));
        if (got.length === n) resolve(got.map((l) => l.slice(prefix.length)).sort());
        else reject(new Error(`${got.length}/${n} ${prefix.trim()} lines: ${err.slice(-2000)}`));
      });
    });
  let source: ChildProcess | undefined;
  const timer = setTimeout(() => (sink.kill('SIGKILL'), source?.kill('SIGKILL')), 25_000);
  try {
    const received = lines(sink, 'DONE ');
    await waitForLine(sink, /^LISTENING/, 15_000);
    source = from.spawn(...plain('./lib/tcp-multi.mjs', ['source', address, String(port), String(n), String(bytes)]), { cwd: repoRoot });
    const sent = lines(source, 'SENT ');
    return { sent: await sent, received: await received };
  } finally {
    clearTimeout(timer);
    sink.kill('SIGKILL');
    source?.kill('SIGKILL');
  }
}

const FLOWS = 16;
const BYTES = 1 << 20;

describe('openHost with two data-path workers per host', () => {
  let tb: Testbed;
  const hosts: WorkersHost[] = [];
  let third: VtepProcess | undefined;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 3, prefix: 'hw' });
  }, 30_000);
  afterAll(async () => {
    await Promise.all([...hosts.map((h) => h.stop()), third?.stop()]);
    await tb?.destroy();
  });

  it('carries many TCP flows intact, spread over both workers, and takes a new peer in every worker', async () => {
    const [h1, h2, h3] = tb.hosts;
    // Hosts 1 and 2 know each other only; host 3 (one thread) knows both.
    const cfg = meshConfig([h1, h2]).map((c) => ({ ...c, workers: 2 }));
    const started = [WorkersHost.start(h1, cfg[0]), WorkersHost.start(h2, cfg[1])];
    const startedThird = startVtep(h3, meshConfig([h1, h2, h3])[2]);
    // Every one that started is stopped by afterAll, even when another failed.
    for (const p of started) void p.then((w) => hosts.push(w), () => undefined);
    void startedThird.then((v) => (third = v), () => undefined);
    const [a, b] = await Promise.all(started);
    await startedThird;
    expect(await ping(h1, '198.19.0.2')).toBe(3);

    const r = await manyFlows(h1, h2, '198.19.0.2', 5001, FLOWS, BYTES);
    expect(r.received).toEqual(r.sent);
    expect(r.sent.every((l) => l.startsWith(`${BYTES} `))).toBe(true);

    const [sa, sb] = [await a.stats(), await b.stats()];
    for (const s of [sa, sb]) expect(s.workers).toHaveLength(2);
    // Host 2 received the data: over both workers' sockets, each a real share (≥ 1 %), and the
    // host's counters are the workers' sums under the same names.
    const rx = sb.workers!.map((w) => w.dataplane.outside.datagrams);
    const total = rx[0] + rx[1];
    expect(total).toBeGreaterThan((FLOWS * BYTES) / 9000);
    expect(sb.dataplane.outside.datagrams).toBe(total);
    for (const x of rx) expect(x).toBeGreaterThan(total / 100);
    expect(sb.transport.rxPackets).toBe(sb.workers![0].transport.rxPackets + sb.workers![1].transport.rxPackets);
    // Host 1 sent it: from both workers' TAP queues.
    const tx = sa.workers!.map((w) => w.dataplane.inside.sent);
    for (const x of tx) expect(x).toBeGreaterThan((tx[0] + tx[1]) / 100);
    expect(sa.dataplane.drops.transport_send_failed).toBe(0);

    // Host 1 does not know host 3 yet: its ARP goes to the flood list (host 2 only), unanswered.
    expect(await ping(h1, '198.19.0.3', 1)).toBe(0);
    const mac3 = endpointMac(3, 0);
    expect(await a.peer({ vni: 100, mac: mac3, ip: '198.19.0.3', vtep: h3.underlay })).toBe('OK');
    // Refused on the main thread with the dataplane's own error, before any worker sees it.
    expect(await a.peer({ vni: 100, mac: '01:00:5e:00:00:01', ip: '198.19.0.9', vtep: h3.underlay })).toBe('ERR OVL_ERR_INVALID_ADDRESS');
    const fdb = await a.fdb(100);
    expect(fdb).toHaveLength(2);
    for (const w of fdb) expect(w.map((e) => e.mac)).toContain(mac3);
    // Flows to host 3 start on both of host 1's queues; every one needs the new entries in its worker.
    const before = sa.workers!.map((w) => w.dataplane.inside.sent);
    const r3 = await manyFlows(h1, h3, '198.19.0.3', 5002, FLOWS, 1 << 20);
    expect(r3.received).toEqual(r3.sent);
    const after = (await a.stats()).workers!.map((w) => w.dataplane.inside.sent);
    for (let i = 0; i < 2; i++) expect(after[i]).toBeGreaterThan(before[i]);
  }, 60_000);

  it('fails with WorkerStartError on a TAP that is not multi-queue, leaving the TAP and port as they were', async () => {
    const h3 = tb.hosts[2];
    await h3.exec('ip', ['tuntap', 'add', 'dev', 'vxsq', 'mode', 'tap']);
    try {
      const cfg: HostConfig = { address: h3.underlay, port: 4790, workers: 2, networks: [{ vni: 7, tap: 'vxsq', addresses: ['198.19.7.3/24'] }] };
      const child = h3.spawn(...tsx('./lib/workers-host.ts', [JSON.stringify(cfg)]), { cwd: repoRoot });
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 40_000);
        child.once('exit', (c) => (clearTimeout(t), resolve(c)));
      });
      expect(code).toBe(1);
      expect(err).toMatch(/WorkerStartError: data-path worker 0 did not start: EINVAL/);
      // The persistent TAP is still there, single-queue, without the address; nothing holds the port.
      const link = await h3.exec('ip', ['-d', 'addr', 'show', 'dev', 'vxsq']);
      expect(link).not.toContain('multi_queue');
      expect(link).not.toContain('198.19.7.3');
      expect(await h3.exec('ss', ['-Huan', 'sport = :4790'])).toBe('');
    } finally {
      await h3.run('ip', ['link', 'del', 'vxsq']);
    }
  }, 50_000);

  it('refuses workers with encryption, by field, before opening anything', () => {
    const o = { underlay: { address: '198.18.0.1' }, networks: [], workers: 2, wireguard: { privateKey: 'x' } };
    expect(() => validateHostOptions(o)).toThrow(InvalidConfigError);
    expect(() => validateHostOptions(o)).toThrow(/workers/);
    expect(() => validateHostOptions({ ...o, wireguard: undefined, workers: 0 })).toThrow(/workers/);
    expect(() => validateHostOptions({ ...o, wireguard: undefined })).not.toThrow();
  });
});
