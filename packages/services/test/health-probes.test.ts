/**
 * Each probe against real loopback peers: TCP listeners and closed ports, node:http(s) servers
 * answering chosen statuses, hanging and streaming megabytes, real processes (exit codes, hangs,
 * megabytes of output, forks), ICMP echo to 127.0.0.1 and ::1 (tests run as root), and the
 * CAP_NET_RAW fallback with the permission error simulated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer, type AddressInfo } from 'node:net';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IcmpProber, OUTPUT_LIMIT, OutputTail, execProbe, httpProbe, parseHealthSpec, tcpProbe, type HealthTarget } from '@overlay/services';
import { matchV4, matchV6 } from '../src/health/probes/icmp.js';

const never = new AbortController().signal;
const execFileAsync = promisify(execFile);
const listening: { close(cb?: () => void): unknown }[] = [];

function listen<T extends TcpServer | Server>(server: T, host = '127.0.0.1'): Promise<number> {
  listening.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** A port nobody listens on: bind, read the port, close. */
async function closedPort(): Promise<number> {
  const s = createTcpServer();
  const port = await new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
  await new Promise((r) => s.close(r));
  return port;
}

/** True while a process exists and is not a zombie. */
function alive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    const s = readFileSync(stat, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

afterAll(async () => {
  await Promise.all(listening.map((s) => new Promise<void>((r) => s.close(() => r()))));
});

describe('tcp probe', () => {
  it('ok on a listener, refused on a closed port, aborted when stopped', async () => {
    const server = createTcpServer((c) => c.destroy());
    const port = await listen(server);
    const spec = parseHealthSpec({ kind: 'tcp', timeout: '1s' });
    const up = await tcpProbe({ id: 'a', address: '127.0.0.1', ports: [port] }, spec, never);
    expect(up).toMatchObject({ ok: true, why: 'ok', output: '' });
    const down = await tcpProbe({ id: 'a', address: '127.0.0.1', ports: [await closedPort()] }, spec, never);
    expect(down).toMatchObject({ ok: false, why: 'refused', detail: 'ECONNREFUSED' });
    const ac = new AbortController();
    ac.abort();
    expect(await tcpProbe({ id: 'a', address: '127.0.0.1', ports: [port] }, spec, ac.signal)).toMatchObject({ ok: false, why: 'aborted' });
    expect(await tcpProbe({ id: 'a', address: '127.0.0.1' }, spec, never)).toMatchObject({ ok: false, why: 'error' });
  });
});

describe('http probe', () => {
  let port: number;
  const hanging: import('node:http').ServerResponse[] = [];
  beforeAll(async () => {
    const server = createHttpServer((req, res) => {
      const url = req.url ?? '/';
      const m = /^\/status\/(\d{3})$/.exec(url);
      if (m !== null) {
        res.writeHead(Number(m[1]), { 'content-type': 'text/plain' });
        res.end(`answer ${m[1]}`);
      } else if (url === '/hang') {
        hanging.push(res); // never answers
      } else if (url === '/big') {
        // 5 MB body: the probe reads 4 KiB and hangs up.
        res.writeHead(200);
        let left = 5_000_000;
        const chunk = Buffer.alloc(65_536, 0x61);
        const pump = (): void => {
          while (left > 0) {
            left -= chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        pump();
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    server.on('clientError', () => {});
    port = await listen(server);
  });
  afterAll(() => {
    for (const r of hanging) r.destroy();
  });
  const target = (): HealthTarget => ({ id: 'web', address: '127.0.0.1', ports: [port] });

  it('judges the status against the accepted range and keeps the body', async () => {
    const spec = (path: string, status?: string) => parseHealthSpec({ kind: 'http', path, timeout: '2s', ...(status ? { status } : {}) });
    expect(await httpProbe(target(), spec('/status/200'), never)).toMatchObject({ ok: true, why: 'ok', detail: 'status 200', output: 'answer 200' });
    expect(await httpProbe(target(), spec('/status/302'), never)).toMatchObject({ ok: true, detail: 'status 302' });
    expect(await httpProbe(target(), spec('/status/503'), never)).toMatchObject({ ok: false, why: 'status', detail: 'status 503', output: 'answer 503' });
    expect(await httpProbe(target(), spec('/status/302', '200-299'), never)).toMatchObject({ ok: false, why: 'status', detail: 'status 302' });
    expect(await httpProbe(target(), spec('/status/418', '418'), never)).toMatchObject({ ok: true, detail: 'status 418' });
  });

  it('a server that never answers is a timeout, within the timeout', async () => {
    const r = await httpProbe(target(), parseHealthSpec({ kind: 'http', path: '/hang', timeout: '300ms' }), never);
    expect(r).toMatchObject({ ok: false, why: 'timeout' });
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(r.ms).toBeLessThan(2_000);
  });

  it('a body of megabytes is read to 4 KiB only', async () => {
    const r = await httpProbe(target(), parseHealthSpec({ kind: 'http', path: '/big', timeout: '5s' }), never);
    expect(r).toMatchObject({ ok: true, detail: 'status 200' });
    expect(r.output.length).toBe(OUTPUT_LIMIT);
  });

  it('IPv6: the request goes to [::1] with a bracketed Host header', async () => {
    let host: string | undefined;
    const server = createHttpServer((req, res) => {
      host = req.headers.host;
      res.end('v6');
    });
    const p6 = await listen(server, '::1');
    expect(await httpProbe({ id: 'v6', address: '::1', ports: [p6] }, parseHealthSpec({ kind: 'http' }), never)).toMatchObject({ ok: true, output: 'v6' });
    expect(host).toBe(`[::1]:${p6}`);
  });

  it('a closed port is refused; an abort is aborted', async () => {
    const closed = await closedPort();
    expect(await httpProbe({ id: 'x', address: '127.0.0.1', ports: [closed] }, parseHealthSpec({ kind: 'http' }), never)).toMatchObject({ ok: false, why: 'refused' });
    const ac = new AbortController();
    const p = httpProbe(target(), parseHealthSpec({ kind: 'http', path: '/hang', timeout: '10s' }), ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await p).toMatchObject({ ok: false, why: 'aborted' });
  });

  it('https: a self-signed certificate is refused unless tls_skip_verify', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'health-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => {
        res.writeHead(204);
        res.end();
      });
      server.on('tlsClientError', () => {});
      const tlsPort = await listen(server);
      const t: HealthTarget = { id: 's', address: '127.0.0.1', ports: [tlsPort] };
      expect(await httpProbe(t, parseHealthSpec({ kind: 'https', tls_skip_verify: true }), never)).toMatchObject({ ok: true, detail: 'status 204' });
      expect(await httpProbe(t, parseHealthSpec({ kind: 'https' }), never)).toMatchObject({ ok: false, why: 'error' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('exec probe', () => {
  const t: HealthTarget = { id: 'job-1', address: '198.19.0.7', ports: [8080] };
  const exec = (argv: string[], timeout = '2s') => execProbe(t, parseHealthSpec({ test: ['CMD', ...argv], timeout }), never);

  it('exit 0 is healthy, exit N is not, a missing program is an error', async () => {
    expect(await exec(['/bin/true'])).toMatchObject({ ok: true, why: 'ok', detail: '' });
    expect(await exec(['/bin/false'])).toMatchObject({ ok: false, why: 'exit', detail: 'exit 1' });
    expect(await exec(['/bin/sh', '-c', 'echo bad >&2; exit 7'])).toMatchObject({ ok: false, why: 'exit', detail: 'exit 7', output: 'bad\n' });
    expect(await exec(['/bin/sh', '-c', 'kill -TERM $$'])).toMatchObject({ ok: false, why: 'exit', detail: 'signal SIGTERM' });
    expect(await exec(['/nonexistent/check'])).toMatchObject({ ok: false, why: 'error', detail: 'ENOENT: /nonexistent/check' });
  });

  it('runs without a shell, with the instance in its environment', async () => {
    const r = await exec(['/bin/echo', '$OVERLAY_INSTANCE_ID', ';', 'x']);
    expect(r.output).toBe('$OVERLAY_INSTANCE_ID ; x\n');
    const env = await exec(['/usr/bin/env']);
    expect(env.output).toContain('OVERLAY_INSTANCE_ID=job-1\n');
    expect(env.output).toContain('OVERLAY_INSTANCE_ADDRESS=198.19.0.7\n');
    expect(env.output).toContain('OVERLAY_INSTANCE_PORT=8080\n');
  });

  it('a check that hangs times out and its whole process group is gone', async () => {
    const r = await exec(['/bin/sh', '-c', 'sleep 30 & echo $!; sleep 30'], '300ms');
    expect(r).toMatchObject({ ok: false, why: 'timeout', detail: 'killed after 300 ms' });
    expect(r.ms).toBeLessThan(3_000);
    const pid = Number(r.output.trim());
    expect(pid).toBeGreaterThan(1);
    expect(alive(pid)).toBe(false);
  });

  it('megabytes of output: the last 4 KiB are kept, the rest drained', async () => {
    const r = await exec(['/bin/sh', '-c', 'yes abcdefg | head -c 5000000; echo END'], '20s');
    expect(r).toMatchObject({ ok: true, why: 'ok' });
    expect(r.output.length).toBe(OUTPUT_LIMIT);
    expect(r.output.endsWith('abcdefg\nEND\n')).toBe(true);
    const endless = await exec(['/usr/bin/yes'], '300ms');
    expect(endless).toMatchObject({ ok: false, why: 'timeout' });
    expect(endless.output.length).toBe(OUTPUT_LIMIT);
  });

  it('children forked by a check die with it, even when the check exits at once', async () => {
    const r = await exec(['/bin/sh', '-c', 'for i in 1 2 3 4 5; do sleep 30 & done; jobs -p; exit 0']);
    expect(r).toMatchObject({ ok: true, why: 'ok' });
    const pids = r.output.trim().split(/\s+/).map(Number);
    expect(pids).toHaveLength(5);
    await new Promise((res) => setTimeout(res, 50));
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(r.ms).toBeLessThan(3_000);
  });

  it('an abort (the checker stopping) kills the whole group', async () => {
    const ac = new AbortController();
    const p = execProbe(t, parseHealthSpec({ test: ['CMD', '/bin/sh', '-c', 'sleep 30 & echo $!; sleep 30'], timeout: '20s' }), ac.signal);
    setTimeout(() => ac.abort(), 200);
    const r = await p;
    expect(r).toMatchObject({ ok: false, why: 'aborted' });
    expect(r.ms).toBeLessThan(3_000);
    expect(alive(Number(r.output.trim()))).toBe(false);
  });

  it('OutputTail keeps exactly the last bytes across chunk boundaries', () => {
    const tail = new OutputTail(8);
    let all = '';
    for (const piece of ['abc', 'defgh', 'ij', '', 'klmnopqrstuvwxyz', '01', '2345678']) {
      tail.push(Buffer.from(piece));
      all += piece;
      expect(tail.text()).toBe(all.slice(-8));
    }
    expect(tail.total).toBe(all.length);
  });
});

describe('icmp probe', () => {
  const spec = parseHealthSpec({ kind: 'icmp', timeout: '1s' });

  it('echo to 127.0.0.1 and ::1 is answered (root has CAP_NET_RAW)', async () => {
    const prober = new IcmpProber({ warn: () => expect.unreachable('no warning expected as root') });
    expect(await prober.probe({ id: 'v4', address: '127.0.0.1' }, spec, never)).toMatchObject({ ok: true, why: 'ok' });
    expect(await prober.probe({ id: 'v6', address: '::1' }, spec, never)).toMatchObject({ ok: true, why: 'ok' });
    expect(prober.available).toBe(true);
    // Several at once: each matches its own reply by sequence number.
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => prober.probe({ id: `m${i}`, address: '127.0.0.1' }, spec, never)));
    expect(many.every((r) => r.ok)).toBe(true);
  });

  it('without CAP_NET_RAW: warns once and falls back to TCP connect on the instance port', async () => {
    const warnings: string[] = [];
    let opened = 0;
    const prober = new IcmpProber({
      warn: (m) => warnings.push(m),
      createSocket: () => {
        opened++;
        throw new Error('Operation not permitted');
      },
    });
    const server = createTcpServer((c) => c.destroy());
    const port = await listen(server);
    const up = await prober.probe({ id: 'a', address: '127.0.0.1', ports: [port] }, spec, never);
    expect(up).toMatchObject({ ok: true, why: 'ok', detail: `tcp fallback (no CAP_NET_RAW): port ${port} open` });
    const down = await prober.probe({ id: 'b', address: '127.0.0.1', ports: [await closedPort()] }, spec, never);
    expect(down).toMatchObject({ ok: false, why: 'refused', detail: 'tcp fallback (no CAP_NET_RAW): ECONNREFUSED' });
    const noPort = await prober.probe({ id: 'c', address: '127.0.0.1' }, spec, never);
    expect(noPort).toMatchObject({ ok: false, why: 'error' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('CAP_NET_RAW');
    expect(opened).toBe(1); // the capability is probed once
    expect(prober.available).toBe(false);
    expect(prober.fallbacks).toBe(3);
  });

  it('a real process without CAP_NET_RAW gets EPERM, warns and falls back to TCP', async () => {
    const server = createTcpServer((c) => c.destroy());
    const port = await listen(server);
    const dir = mkdtempSync(join(tmpdir(), 'health-noraw-'));
    try {
      const script = join(dir, 'probe.mts');
      const icmpSource = fileURLToPath(new URL('../src/health/probes/icmp.ts', import.meta.url));
      writeFileSync(script, [
        `import { IcmpProber } from ${JSON.stringify(icmpSource)};`,
        `const warnings = [];`,
        `const p = new IcmpProber({ warn: (m) => warnings.push(m) });`,
        `const spec = { kind: 'icmp', timeoutMs: 2000 };`,
        `const r = await p.probe({ id: 'a', address: '127.0.0.1', ports: [${port}] }, spec, new AbortController().signal);`,
        `console.log(JSON.stringify({ r, warnings, available: p.available }));`,
      ].join('\n'));
      // Drop CAP_NET_RAW from the bounding set: root's exec then runs without it.
      const { stdout } = await execFileAsync('setpriv', ['--bounding-set', '-net_raw', '--inh-caps', '-net_raw', process.execPath, '--import', 'tsx', script], {
        cwd: fileURLToPath(new URL('../../..', import.meta.url)),
        timeout: 30_000,
      });
      const out = JSON.parse(stdout.trim().split('\n').at(-1)!);
      expect(out.available).toBe(false);
      expect(out.warnings).toHaveLength(1);
      expect(out.r).toMatchObject({ ok: true, why: 'ok', detail: `tcp fallback (no CAP_NET_RAW): port ${port} open` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no reply is a timeout; the socket is closed', async () => {
    let closed = 0;
    const prober = new IcmpProber({
      createSocket: () => {
        const s = new EventEmitter() as EventEmitter & { send: unknown; close: unknown };
        s.send = (_b: Buffer, _o: number, _l: number, _a: string, cb: (e: Error | null, n: number) => void) => setImmediate(() => cb(null, 24));
        s.close = () => closed++;
        return s as never;
      },
    });
    const r = await prober.probe({ id: 'q', address: '198.19.0.9' }, parseHealthSpec({ kind: 'icmp', timeout: '100ms' }), never);
    expect(r).toMatchObject({ ok: false, why: 'timeout' });
    expect(closed).toBe(1);
  });

  it('matches replies and destination-unreachable quotes by id and sequence only', () => {
    const echo = (type: number, id: number, seq: number) => {
      const b = Buffer.alloc(8);
      b[0] = type;
      b.writeUInt16BE(id, 4);
      b.writeUInt16BE(seq, 6);
      return b;
    };
    const ip4 = (payload: Buffer) => Buffer.concat([Buffer.from([0x45, ...new Array(19).fill(0)]), payload]);
    expect(matchV4(ip4(echo(0, 7, 9)), 7, 9)).toBe('reply');
    expect(matchV4(ip4(echo(0, 7, 10)), 7, 9)).toBeUndefined();
    expect(matchV4(ip4(echo(8, 7, 9)), 7, 9)).toBeUndefined(); // our own request seen on loopback
    expect(matchV4(ip4(Buffer.concat([Buffer.from([3, 1, 0, 0, 0, 0, 0, 0]), ip4(echo(8, 7, 9))])), 7, 9)).toBe('unreachable');
    expect(matchV4(Buffer.alloc(5), 7, 9)).toBeUndefined();
    expect(matchV6(echo(129, 7, 9), 7, 9)).toBe('reply');
    const ip6 = Buffer.alloc(40);
    ip6[0] = 0x60;
    expect(matchV6(Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), ip6, echo(128, 7, 9)]), 7, 9)).toBe('unreachable');
    expect(matchV6(echo(128, 7, 9), 7, 9)).toBeUndefined();
  });
});
