/**
 * A throwaway etcd for tests: `etcd` (Debian etcd-server) as a child process on free loopback
 * ports with a data directory under the system temp dir. `stop()` kills it and removes the data;
 * a process 'exit' hook does the same if a test dies first, so nothing is left behind.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set<EtcdServer>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const s of live) s.killSync();
  });
}

export class EtcdServer {
  private child: ChildProcess | undefined;
  private constructor(
    readonly dir: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly name: string,
  ) {}

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  static async start(): Promise<EtcdServer> {
    hookExit();
    const dir = mkdtempSync(join(tmpdir(), 'overlay-etcd-'));
    const s = new EtcdServer(dir, await freePort(), await freePort(), `t${process.pid}`);
    live.add(s);
    try {
      await s.run();
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  }

  /** Start etcd (again) on the same ports and data, and wait until it answers. */
  async run(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const client = `http://127.0.0.1:${this.clientPort}`;
    const child = spawn(
      'etcd',
      ['--name', this.name, '--data-dir', join(this.dir, 'data'), '--listen-client-urls', client, '--advertise-client-urls', client, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${this.name}=${peer}`, '--log-level', 'error', '--logger', 'zap'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      if (child.exitCode !== null) throw new Error(`etcd exited ${child.exitCode}: ${err}`);
      try {
        execFileSync('etcdctl', ['--endpoints', client, '--dial-timeout', '1s', '--command-timeout', '1s', 'endpoint', 'health'], { stdio: 'ignore', env: { ...process.env, ETCDCTL_API: '3' } });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`etcd did not become healthy in 20 s: ${err}`);
  }

  /** Kill etcd (SIGKILL: as a crash; data stays for a restart). */
  async kill(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }

  /** Run etcdctl against this server; returns stdout. */
  ctl(args: string[], input?: Uint8Array): string {
    return execFileSync('etcdctl', ['--endpoints', `http://${this.endpoint}`, ...args], { input, env: { ...process.env, ETCDCTL_API: '3' } }).toString();
  }

  killSync(): void {
    try {
      this.child?.kill('SIGKILL');
    } catch {
      /* already gone */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kill and remove the data directory. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

/**
 * A TCP relay to an etcd that a test can cut (every connection dropped, new ones refused) and
 * open again: a client partitioned from the store while the rest of the cluster goes on.
 */
export class CuttableProxy {
  private readonly socks = new Set<Socket>();
  private cut_ = false;
  private constructor(
    private readonly srv: Server,
    readonly port: number,
  ) {}

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(target: number): Promise<CuttableProxy> {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const p = new CuttableProxy(srv, (srv.address() as { port: number }).port);
    srv.on('connection', (a) => {
      if (p.cut_) return void a.destroy();
      const b = connect(target, '127.0.0.1');
      p.socks.add(a).add(b);
      const drop = () => {
        a.destroy();
        b.destroy();
        p.socks.delete(a);
        p.socks.delete(b);
      };
      a.on('error', drop).on('close', drop).pipe(b);
      b.on('error', drop).on('close', drop).pipe(a);
    });
    return p;
  }

  cut(): void {
    this.cut_ = true;
    for (const s of this.socks) s.destroy();
    this.socks.clear();
  }
  open(): void {
    this.cut_ = false;
  }
  async close(): Promise<void> {
    this.cut();
    await new Promise((r) => this.srv.close(r));
  }
}
