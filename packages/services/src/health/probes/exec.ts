/**
 * Exec probe: run argv without a shell; exit 0 is healthy. The program runs in its own process
 * group (detached); when it exits, times out or the check is stopped, the whole group is killed
 * with SIGKILL, so a check that hangs or forks leaves nothing behind (a child that calls setsid()
 * leaves the group and escapes; containing that needs a cgroup). Only the last 4 KiB of stdout and
 * stderr (interleaved) are kept; the rest is read and discarded so the program never blocks on a
 * full pipe. Concurrency is bounded by the checker.
 */
import { spawn } from 'node:child_process';
import type { HealthSpec } from '../spec.js';
import { type HealthTarget, type ProbeResult, OUTPUT_LIMIT, result, targetPort } from './result.js';

/** How long pipes may stay open after the group was killed before they are closed from our side. */
const CLOSE_GRACE_MS = 500;

/** The last `limit` bytes written, in a fixed ring. */
export class OutputTail {
  private readonly buf: Buffer;
  private end = 0;
  private full = false;
  /** Every byte seen, kept or not. */
  total = 0;

  constructor(readonly limit = OUTPUT_LIMIT) {
    this.buf = Buffer.alloc(limit);
  }

  push(chunk: Buffer): void {
    const n = this.limit;
    this.total += chunk.length;
    if (chunk.length >= n) {
      chunk.copy(this.buf, 0, chunk.length - n);
      this.end = 0;
      this.full = true;
      return;
    }
    const first = Math.min(chunk.length, n - this.end);
    chunk.copy(this.buf, this.end, 0, first);
    const rest = chunk.length - first;
    if (rest > 0) {
      chunk.copy(this.buf, 0, first);
      this.end = rest;
      this.full = true;
    } else {
      this.end += first;
      if (this.end === n) {
        this.end = 0;
        this.full = true;
      }
    }
  }

  bytes(): Buffer {
    return this.full ? Buffer.concat([this.buf.subarray(this.end), this.buf.subarray(0, this.end)]) : Buffer.from(this.buf.subarray(0, this.end));
  }

  text(): string {
    return this.bytes().toString('utf8');
  }
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already empty.
  }
}

export function execProbe(target: HealthTarget, spec: HealthSpec, signal: AbortSignal): Promise<ProbeResult> {
  const started = Date.now();
  if (signal.aborted) return Promise.resolve(result('aborted', 'check stopped', started));
  const port = targetPort(target, spec);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    OVERLAY_INSTANCE_ID: target.id,
    OVERLAY_INSTANCE_ADDRESS: target.address,
    ...(port === undefined ? {} : { OVERLAY_INSTANCE_PORT: String(port) }),
    ...spec.env,
  };
  return new Promise<ProbeResult>((resolve) => {
    const tail = new OutputTail();
    let outcome: { why: ProbeResult['why']; detail: string } | undefined;
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;
    let child: ReturnType<typeof spawn>;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      signal.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      const o = outcome ?? { why: 'error' as const, detail: 'no exit status' };
      resolve(result(o.why, o.detail, started, tail.text()));
    };
    /** Decide the outcome once, kill the group, and finish when the pipes close (or after a grace). */
    const conclude = (why: ProbeResult['why'], detail: string): void => {
      outcome ??= { why, detail };
      killGroup(child.pid);
      graceTimer ??= setTimeout(finish, CLOSE_GRACE_MS);
    };
    const onAbort = (): void => conclude('aborted', 'check stopped');
    const timer = setTimeout(() => conclude('timeout', `killed after ${spec.timeoutMs} ms`), spec.timeoutMs);
    try {
      child = spawn(spec.argv[0], spec.argv.slice(1), {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env,
        cwd: '/',
        shell: false,
      });
    } catch (err) {
      clearTimeout(timer);
      settled = true;
      resolve(result('error', err instanceof Error ? err.message.slice(0, 200) : String(err), started));
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (c: Buffer) => tail.push(c));
    child.stderr?.on('data', (c: Buffer) => tail.push(c));
    child.once('error', (err: NodeJS.ErrnoException) => {
      // Spawn failed (ENOENT, EACCES): no process; nothing will close.
      outcome ??= { why: 'error', detail: `${err.code ?? 'error'}: ${spec.argv[0].slice(0, 200)}` };
      finish();
    });
    child.once('exit', (code, sig) => {
      if (code === 0) conclude('ok', '');
      else if (code !== null) conclude('exit', `exit ${code}`);
      else conclude('exit', `signal ${sig ?? 'unknown'}`);
    });
    child.once('close', () => {
      if (outcome !== undefined) finish();
    });
  });
}
