/**
 * A testbed of N hosts on one machine: each host is a network namespace whose underlay
 * interface `ul0` is one end of a veth pair; the other ends are ports of a bridge that lives
 * in a namespace of its own. Nothing is created in the caller's namespace, so parallel runs
 * never collide on device names, and names of namespaces carry the pid and a random suffix.
 *
 * Underlay: host i (1-based) is 198.18.0.i/16 and, with `ipv6`, 2001:db8::i/64, MAC
 * `underlayMac(i)`. Every host holds every other host as a permanent neighbour (ARP and, with
 * `ipv6`, ND): the kernel's neighbour tables are shared by all namespaces of the machine and hold
 * at most net.ipv4.neigh.default.gc_thresh3 (1024 here) learned entries in all; N hosts that all
 * talk to each other learn N(N-1), so a 50-host testbed overflowed them (`sendmsg: No buffer space
 * available`, `EHOSTUNREACH`), for itself and for every other test on the machine. Permanent
 * entries are not counted against that limit (exempt from the neighbour GC since Linux 4.19),
 * need no machine-wide sysctl, and go with their namespace.
 *
 * Cleanup: `destroy()` kills every process still running in the namespaces and deletes them
 * (which deletes every device inside). It is also run synchronously on process exit and on
 * SIGINT/SIGTERM/SIGHUP, and namespaces left behind by dead processes are swept at creation.
 */
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestHost {
  /** Network namespace name. */
  readonly name: string;
  /** 1-based index. */
  readonly index: number;
  /** Underlay IPv4 address (no prefix length). */
  readonly underlay: string;
  /** Underlay IPv6 address when the testbed was created with `ipv6`. */
  readonly underlay6?: string;
  /** Underlay interface name inside the namespace. */
  readonly underlayDevice: string;
  /** Run a command in the namespace; rejects with stderr on non-zero exit or timeout. */
  exec(cmd: string, args?: string[], opts?: { timeoutMs?: number; input?: string }): Promise<string>;
  /** Run a command in the namespace; resolves with its exit code and output (never rejects on exit code). */
  run(cmd: string, args?: string[], opts?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** Start a long-running process in the namespace. It is killed by destroy(). */
  spawn(cmd: string, args?: string[], opts?: SpawnOptions): ChildProcess;
}

export interface Testbed {
  readonly id: string;
  readonly hosts: TestHost[];
  /** Namespace that holds the bridge `br0` and the host-side veth ends. */
  readonly bridgeNamespace: string;
  /** Underlay MTU of every host's `ul0`. */
  readonly mtu: number;
  /**
   * Impair a host's underlay egress with tc netem, e.g. `netem(h, 'loss 5%')`, replacing any
   * earlier impairment. Where the kernel has no netem, 'loss N%' is done with an nftables
   * random drop and anything else throws NetemUnsupportedError.
   */
  netem(host: TestHost, spec: string): Promise<void>;
  /** Remove a netem qdisc set by netem(). */
  clearNetem(host: TestHost): Promise<void>;
  /** Cut underlay traffic between every host of `a` and every host of `b` (both directions). */
  partition(a: TestHost[], b: TestHost[]): Promise<void>;
  /** Undo every partition. */
  heal(): Promise<void>;
  /** Make an extra namespace (e.g. an overlay endpoint) owned by this testbed; removed by destroy(). */
  addNamespace(suffix: string): Promise<string>;
  /** Kill processes, delete namespaces. Idempotent. */
  destroy(): Promise<void>;
}

export interface TestbedOptions {
  hosts: number;
  ipv6?: boolean;
  /** Namespace name prefix; default 'tb'. Names are `${prefix}-${pid}-${rand}-h${i}`. */
  prefix?: string;
  /** Underlay MTU; default 1500. */
  mtu?: number;
  /**
   * Permanent underlay neighbour entries for every other host (default true). false: hosts learn
   * each other by ARP/ND, which takes N(N-1) entries from the machine-wide neighbour table.
   */
  staticNeighbours?: boolean;
}

/** MAC of host `index`'s underlay `ul0` (locally administered; c6:12 for 198.18). */
export function underlayMac(index: number): string {
  return `0a:c6:12:00:00:${index.toString(16).padStart(2, '0')}`;
}

/**
 * This kernel has no netem qdisc and the spec asks for more than random loss (which falls back
 * to nftables). Delay, reordering and rate limits need sch_netem.
 */
export class NetemUnsupportedError extends Error {
  readonly code = 'TESTBED_NETEM_UNSUPPORTED';
  constructor(readonly spec: string) {
    super(`tc netem is not available in this kernel; only 'loss N%' is emulated (asked: ${spec})`);
  }
}

const live = new Set<TestbedImpl>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const tb of live) tb.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const tb of live) tb.destroySync();
      // Re-raise with the default disposition so the exit status tells the signal.
      process.kill(process.pid, sig);
    });
  }
}

/** Run a command in the caller's namespace. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        let code = 0;
        if (err) code = typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && code === -1 ? String(err.message) : '') });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Run a command in the caller's namespace; reject on failure. */
export async function exec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Namespaces whose creator (pid in the name) is gone. */
function sweepStale(prefix: string): void {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return;
  }
  const re = new RegExp(`^(${prefix}-(\\d+)-[0-9a-f]+-\\w+)`);
  for (const line of list.split('\n')) {
    const m = re.exec(line.trim());
    if (!m) continue;
    const pid = Number(m[2]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) killAndDeleteSync(m[1]);
  }
}

function killAndDeleteSync(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  } catch {
    /* namespace gone */
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    /* already deleted */
  }
}

class TestbedImpl implements Testbed {
  readonly hosts: TestHost[] = [];
  readonly bridgeNamespace: string;
  readonly namespaces: string[] = [];
  readonly children = new Set<ChildProcess>();
  private readonly blackholes: Array<{ ns: string; dst: string }> = [];
  private destroyed = false;

  constructor(
    readonly id: string,
    readonly prefix: string,
    readonly mtu: number,
  ) {
    this.bridgeNamespace = `${prefix}-${id}-br`;
  }

  makeHost(index: number, ipv6: boolean): TestHost {
    const ns = `${this.prefix}-${this.id}-h${index}`;
    const tb = this;
    const host: TestHost = {
      name: ns,
      index,
      underlay: `198.18.0.${index}`,
      underlay6: ipv6 ? `2001:db8::${index.toString(16)}` : undefined,
      underlayDevice: 'ul0',
      exec: (cmd, args = [], opts) => exec('ip', ['netns', 'exec', ns, cmd, ...args], opts),
      run: (cmd, args = [], opts) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts),
      spawn: (cmd, args = [], opts = {}) => tb.track(spawnChild('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe', ...opts })),
    };
    return host;
  }

  track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  async addNamespace(suffix: string): Promise<string> {
    const ns = `${this.prefix}-${this.id}-${suffix}`;
    await exec('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await exec('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  async netem(host: TestHost, spec: string): Promise<void> {
    const r = await run('ip', ['netns', 'exec', host.name, 'tc', 'qdisc', 'replace', 'dev', host.underlayDevice, 'root', 'netem', ...spec.trim().split(/\s+/)]);
    if (r.code === 0) return;
    if (!/unknown/i.test(r.stderr)) throw new Error(`netem ${spec}: ${r.stderr.trim()}`);
    // Kernels built without sch_netem: random loss is still possible with nftables.
    const m = /^loss\s+(\d+(?:\.\d+)?)%$/.exec(spec.trim());
    if (!m) throw new NetemUnsupportedError(spec);
    const perMillion = Math.round(Number(m[1]) * 10_000);
    await this.clearNetem(host);
    const rules = [
      'table inet tbnetem {',
      ' chain out {',
      '  type filter hook output priority 0; policy accept;',
      `  oifname "${host.underlayDevice}" numgen random mod 1000000 < ${perMillion} counter drop`,
      ' }',
      '}',
    ];
    await exec('ip', ['netns', 'exec', host.name, 'nft', '-f', '-'], { input: rules.join('\n') + '\n' });
  }

  async clearNetem(host: TestHost): Promise<void> {
    await run('ip', ['netns', 'exec', host.name, 'tc', 'qdisc', 'del', 'dev', host.underlayDevice, 'root']);
    await run('ip', ['netns', 'exec', host.name, 'nft', 'delete', 'table', 'inet', 'tbnetem']);
  }

  async partition(a: TestHost[], b: TestHost[]): Promise<void> {
    for (const x of a) {
      for (const y of b) {
        for (const [from, to] of [
          [x, y],
          [y, x],
        ] as const) {
          const dsts = [`${to.underlay}/32`];
          if (to.underlay6) dsts.push(`${to.underlay6}/128`);
          for (const dst of dsts) {
            const r = await run('ip', ['-n', from.name, 'route', 'add', 'blackhole', dst]);
            if (r.code === 0) this.blackholes.push({ ns: from.name, dst });
            else if (!/File exists/.test(r.stderr)) throw new Error(`partition: ${r.stderr.trim()}`);
          }
        }
      }
    }
  }

  async heal(): Promise<void> {
    const list = this.blackholes.splice(0);
    for (const { ns, dst } of list) await run('ip', ['-n', ns, 'route', 'del', 'blackhole', dst]);
  }

  private killChildren(): void {
    for (const c of this.children) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.children.clear();
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    const alive = [...this.children].filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of alive) c.kill('SIGTERM');
    // Give well-behaved children a moment to close their devices, then force.
    await Promise.race([
      Promise.all(alive.map((c) => new Promise((r) => c.once('exit', r)))),
      new Promise((r) => setTimeout(r, 2000)),
    ]);
    this.killChildren();
    for (const ns of [...this.namespaces].reverse()) {
      const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean);
      for (const p of pids) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await run('ip', ['netns', 'del', ns]);
    }
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    this.killChildren();
    for (const ns of [...this.namespaces].reverse()) killAndDeleteSync(ns);
  }
}

/** Create the hosts and the bridge. On failure, everything made so far is removed. */
export async function createTestbed(o: TestbedOptions): Promise<Testbed> {
  if (!Number.isInteger(o.hosts) || o.hosts < 1 || o.hosts > 250) throw new RangeError(`hosts must be 1..250, got ${o.hosts}`);
  const prefix = o.prefix ?? 'tb';
  if (!/^[a-z][a-z0-9]{0,7}$/.test(prefix)) throw new RangeError(`prefix must match [a-z][a-z0-9]{0,7}, got ${prefix}`);
  installExitHooks();
  sweepStale(prefix);
  const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const mtu = o.mtu ?? 1500;
  const tb = new TestbedImpl(id, prefix, mtu);
  live.add(tb);
  try {
    const br = tb.bridgeNamespace;
    await exec('ip', ['netns', 'add', br]);
    tb.namespaces.push(br);
    const batch: string[] = [
      'link set lo up',
      // STP off: ports forward at once. No multicast snooping: flood BUM like a dumb switch.
      'link add br0 type bridge stp_state 0 mcast_snooping 0',
      'link set br0 up',
    ];
    for (let i = 1; i <= o.hosts; i++) {
      const host = tb.makeHost(i, !!o.ipv6);
      await exec('ip', ['netns', 'add', host.name]);
      tb.namespaces.push(host.name);
      tb.hosts.push(host);
      batch.push(`link add vh${i} mtu ${mtu} type veth peer name ul0 mtu ${mtu} address ${underlayMac(i)} netns ${host.name}`);
      batch.push(`link set vh${i} master br0 up`);
    }
    await exec('ip', ['-n', br, '-batch', '-'], { input: batch.join('\n') + '\n' });
    for (const h of tb.hosts) {
      const hb = ['link set lo up', `addr add ${h.underlay}/16 dev ul0`];
      if (h.underlay6) hb.push(`addr add ${h.underlay6}/64 dev ul0 nodad`);
      hb.push('link set ul0 up');
      // After `up`: taking a device down flushes its neighbours, permanent ones included.
      if (o.staticNeighbours !== false) {
        for (const p of tb.hosts) {
          if (p === h) continue;
          hb.push(`neigh replace ${p.underlay} lladdr ${underlayMac(p.index)} dev ul0 nud permanent`);
          if (p.underlay6) hb.push(`neigh replace ${p.underlay6} lladdr ${underlayMac(p.index)} dev ul0 nud permanent`);
        }
      }
      await exec('ip', ['-n', h.name, '-batch', '-'], { input: hb.join('\n') + '\n' });
    }
    return tb;
  } catch (err) {
    await tb.destroy();
    throw err;
  }
}

/**
 * Resolve when `child` prints a line matching `re` on stdout; reject on exit or timeout.
 * Keeps collecting output so a failing test can show it.
 */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n')) {
        if (re.test(line)) {
          cleanup();
          resolve(line);
          return;
        }
      }
    };
    const onErr = (d: Buffer) => {
      err += d.toString();
    };
    const onExit = (code: number | null, sig: string | null) => {
      cleanup();
      reject(new Error(`process exited (${code ?? sig}) before ${re}: ${buf.slice(-2000)} ${err.slice(-2000)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timeout waiting for ${re}: ${buf.slice(-2000)} ${err.slice(-2000)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
