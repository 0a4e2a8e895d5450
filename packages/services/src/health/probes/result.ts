/**
 * What every probe returns. Probes never throw: every failure is a result with a reason (`why`),
 * a detail (`status 503`, `exit 1`, `ECONNRESET`) and at most the last 4 KiB of output.
 */
import type { HealthSpec } from '../spec.js';

export const PROBE_WHYS = ['ok', 'timeout', 'refused', 'unreachable', 'status', 'exit', 'error', 'aborted'] as const;
export type ProbeWhy = (typeof PROBE_WHYS)[number];

export interface ProbeResult {
  ok: boolean;
  why: ProbeWhy;
  /** `status N`, `exit N`, `signal SIGKILL`, an errno code, or '' when ok. */
  detail: string;
  /** The last 4 KiB of the check's output (exec: stdout and stderr interleaved; http: the body's first 4 KiB). */
  output: string;
  /** Wall time the probe took. */
  ms: number;
}

/** The instance a probe targets: an overlay address and the ports the instance serves. */
export interface HealthTarget {
  id: string;
  address: string;
  ports?: readonly number[];
}

export type Probe = (target: HealthTarget, spec: HealthSpec, signal: AbortSignal) => Promise<ProbeResult>;

/** Output kept per result. */
export const OUTPUT_LIMIT = 4096;

export function result(why: ProbeWhy, detail: string, started: number, output = ''): ProbeResult {
  return { ok: why === 'ok', why, detail, output, ms: Math.max(0, Date.now() - started) };
}

/** The port a tcp/http probe (or icmp's fallback) dials: the spec's, else the instance's first. */
export function targetPort(target: HealthTarget, spec: HealthSpec): number | undefined {
  return spec.port ?? target.ports?.[0];
}

/** Classify a socket-level error. `timedOut` wins: an abort caused by our own timeout is a timeout. */
export function socketFailure(err: unknown, timedOut: boolean, aborted: boolean): { why: ProbeWhy; detail: string } {
  if (timedOut) return { why: 'timeout', detail: 'no answer in time' };
  if (aborted) return { why: 'aborted', detail: 'check stopped' };
  const code = (err as { code?: unknown } | null)?.code;
  const text = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'ECONNREFUSED':
    case 'ECONNRESET':
      return { why: 'refused', detail: text };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
      return { why: 'unreachable', detail: text };
    case 'ETIMEDOUT':
      return { why: 'timeout', detail: text };
    default:
      return { why: 'error', detail: text.slice(0, 200) };
  }
}

/**
 * Combine the caller's signal with the probe's timeout; `timedOut()` tells which fired. The timer
 * is cleared by `done()` so a finished probe leaves nothing behind.
 */
export function deadline(signal: AbortSignal, timeoutMs: number): { signal: AbortSignal; timedOut: () => boolean; done: () => void } {
  const ac = new AbortController();
  let timedOut = false;
  const onAbort = (): void => ac.abort(signal.reason);
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(new Error('timeout'));
  }, timeoutMs);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    timedOut: () => timedOut,
    done: () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    },
  };
}
