/**
 * Health-check specs: what to probe and on which schedule, validated completely, every problem a
 * `HealthSpecError` naming the field.
 *
 * The timing fields are Docker's `healthcheck` block with the same names, so a Compose block maps
 * one to one (`test`, `interval`, `timeout`, `retries`, `start_period`, `start_interval`,
 * `disable`); durations are Compose strings (`'2s'`, `'1m30s'`, `'250ms'`) or numbers of
 * milliseconds. `retries` is our `fall` (consecutive counted failures to turn unhealthy); `rise`
 * (consecutive successes to turn healthy), `damp` (least time between two published changes) and
 * the probe kinds other than exec are ours.
 *
 * ```yaml
 * healthcheck: { test: ["CMD", "/usr/local/bin/ready"], interval: 5s, retries: 3 }     # exec, argv, no shell
 * healthcheck: { kind: tcp, port: 5432 }
 * healthcheck: { kind: http, port: 8080, path: /healthz, status: 200-299 }
 * healthcheck: { kind: icmp }                       # falls back to TCP without CAP_NET_RAW
 * ```
 */
import { OverlayError } from '@overlay/dataplane';

/** A health-check spec is malformed; `field` names the offending field (e.g. `interval`). */
export class HealthSpecError extends OverlayError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('OVL_ERR_HEALTH_SPEC', `healthcheck.${field}: ${message}`);
    this.field = field;
  }
}

export const HEALTH_KINDS = ['tcp', 'http', 'https', 'icmp', 'exec', 'none'] as const;
export type HealthKind = (typeof HEALTH_KINDS)[number];

/** A validated spec; every duration in milliseconds. */
export interface HealthSpec {
  kind: HealthKind;
  /** Port probed by tcp/http(s) (and by icmp's TCP fallback); default: the instance's first port. */
  port?: number;
  /** http(s): request path, default `/`. */
  path: string;
  /** http(s): accepted status range, inclusive; default 200–399. */
  statusMin: number;
  statusMax: number;
  /** https: accept any certificate (instances usually present self-signed ones). Default false. */
  tlsSkipVerify: boolean;
  /** exec: program and arguments, run without a shell. */
  argv: readonly string[];
  /** exec: extra environment (PATH and the OVERLAY_INSTANCE_* variables are always set). */
  env: Readonly<Record<string, string>>;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive counted failures to turn unhealthy (Docker's `retries`). */
  fall: number;
  /** Consecutive successes to turn healthy. */
  rise: number;
  startPeriodMs: number;
  /** Probe interval while the start period lasts. */
  startIntervalMs: number;
  /** Least time between two published state changes (flap damping). */
  dampMs: number;
}

export const HEALTH_DEFAULTS = {
  intervalMs: 2_000,
  timeoutMs: 1_000,
  fall: 3,
  rise: 2,
  startPeriodMs: 0,
  dampMs: 10_000,
  statusMin: 200,
  statusMax: 399,
} as const;

/** Shortest interval/timeout accepted: a check every few milliseconds is a mistake, not a check. */
export const MIN_INTERVAL_MS = 10;
/** Longest duration accepted anywhere (one day). */
export const MAX_DURATION_MS = 86_400_000;

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)/y;

/**
 * A duration as Compose writes it (Go's syntax: `1m30s`, `1.5s`, `250ms`) or a number of
 * milliseconds; rounded to whole milliseconds.
 */
export function parseDuration(field: string, value: unknown): number {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new HealthSpecError(field, `must be a non-negative number of milliseconds, got ${value}`);
    ms = value;
  } else if (typeof value === 'string') {
    const text = value.trim();
    if (text === '0') return 0;
    if (text.length === 0 || text.length > 64) throw new HealthSpecError(field, `not a duration: ${JSON.stringify(value.slice(0, 64))}`);
    ms = 0;
    DURATION_PART.lastIndex = 0;
    while (DURATION_PART.lastIndex < text.length) {
      const at = DURATION_PART.lastIndex;
      const m = DURATION_PART.exec(text);
      if (m === null || m.index !== at) {
        throw new HealthSpecError(field, `not a duration: ${JSON.stringify(text)} (write e.g. "2s", "1m30s", "250ms")`);
      }
      ms += Number(m[1]) * UNIT_MS[m[2]];
    }
  } else {
    throw new HealthSpecError(field, `must be a duration string like "2s" or a number of milliseconds`);
  }
  ms = Math.round(ms);
  if (ms > MAX_DURATION_MS) throw new HealthSpecError(field, `longer than one day (${ms} ms)`);
  return ms;
}

function positiveInt(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new HealthSpecError(field, `must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function port(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65_535) {
    throw new HealthSpecError(field, `must be a port from 1 to 65535, got ${JSON.stringify(value)}`);
  }
  return value;
}

function statusRange(value: unknown): [number, number] {
  let lo: unknown;
  let hi: unknown;
  if (typeof value === 'number') lo = hi = value;
  else if (typeof value === 'string') {
    const m = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(value);
    if (m === null) throw new HealthSpecError('status', `must be a status or a range like "200-399", got ${JSON.stringify(value.slice(0, 32))}`);
    lo = Number(m[1]);
    hi = m[2] === undefined ? lo : Number(m[2]);
  } else if (Array.isArray(value) && value.length === 2) [lo, hi] = value;
  else throw new HealthSpecError('status', 'must be a status, "lo-hi" or [lo, hi]');
  for (const v of [lo, hi]) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) throw new HealthSpecError('status', `${JSON.stringify(v)} is not an HTTP status (100-599)`);
  }
  if ((lo as number) > (hi as number)) throw new HealthSpecError('status', `range is empty (${lo} > ${hi})`);
  return [lo as number, hi as number];
}

/** Docker's `test`: `["CMD", argv…]` → exec; `["NONE"]` → disabled. The shell forms are refused (no shell). */
function dockerTest(value: unknown): { kind: 'exec' | 'none'; argv: string[] } {
  if (typeof value === 'string') throw new HealthSpecError('test', 'the shell form is not supported (checks run without a shell); write ["CMD", "program", "arg", …]');
  if (!Array.isArray(value) || value.length === 0) throw new HealthSpecError('test', 'must be ["CMD", "program", "arg", …] or ["NONE"]');
  const [head, ...rest] = value as unknown[];
  if (head === 'NONE') return { kind: 'none', argv: [] };
  if (head === 'CMD-SHELL') throw new HealthSpecError('test', 'CMD-SHELL is not supported (checks run without a shell); write ["CMD", "program", "arg", …]');
  if (head !== 'CMD') throw new HealthSpecError('test', `must start with "CMD" or "NONE", got ${JSON.stringify(head)}`);
  return { kind: 'exec', argv: argvOf('test', rest) };
}

function argvOf(field: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new HealthSpecError(field, 'must name a program');
  if (value.length > 256) throw new HealthSpecError(field, `too many arguments (${value.length} > 256)`);
  value.forEach((a, i) => {
    if (typeof a !== 'string' || a.includes('\0') || a.length > 4096) throw new HealthSpecError(`${field}[${i}]`, 'must be a string without NUL, at most 4096 characters');
  });
  if ((value[0] as string).length === 0) throw new HealthSpecError(field, 'program is empty');
  return value as string[];
}

const KNOWN_FIELDS = new Set([
  'kind', 'test', 'argv', 'env', 'port', 'path', 'status', 'tls_skip_verify',
  'interval', 'timeout', 'retries', 'fall', 'rise', 'start_period', 'start_interval', 'damp', 'disable',
]);

/** Validate a healthcheck block (Compose field names). Throws `HealthSpecError` naming the field. */
export function parseHealthSpec(input: unknown): HealthSpec {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new HealthSpecError('(root)', 'must be a mapping');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN_FIELDS.has(k)) throw new HealthSpecError(k, 'unknown field');

  let kind: HealthKind;
  let argv: string[] = [];
  if (o.disable === true) kind = 'none';
  else if (o.disable !== undefined && o.disable !== false) throw new HealthSpecError('disable', 'must be true or false');
  else if (o.test !== undefined) {
    if (o.kind !== undefined && o.kind !== 'exec') throw new HealthSpecError('test', `only goes with kind exec, not ${JSON.stringify(o.kind)}`);
    ({ kind, argv } = dockerTest(o.test));
  } else if (o.kind === undefined) throw new HealthSpecError('kind', `missing (one of ${HEALTH_KINDS.join(', ')}, or a Docker "test")`);
  else if (typeof o.kind !== 'string' || !(HEALTH_KINDS as readonly string[]).includes(o.kind)) {
    throw new HealthSpecError('kind', `must be one of ${HEALTH_KINDS.join(', ')}, got ${JSON.stringify(o.kind)}`);
  } else kind = o.kind as HealthKind;
  if (kind === 'exec' && o.test === undefined) argv = argvOf('argv', o.argv);
  else if (o.argv !== undefined && kind !== 'exec') throw new HealthSpecError('argv', `only goes with kind exec`);
  else if (o.argv !== undefined) throw new HealthSpecError('argv', 'give either test or argv, not both');

  const env: Record<string, string> = {};
  if (o.env !== undefined) {
    if (kind !== 'exec') throw new HealthSpecError('env', 'only goes with kind exec');
    if (typeof o.env !== 'object' || o.env === null || Array.isArray(o.env)) throw new HealthSpecError('env', 'must be a mapping of names to strings');
    for (const [k, v] of Object.entries(o.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new HealthSpecError(`env.${k}`, 'not a variable name');
      if (typeof v !== 'string' || v.includes('\0')) throw new HealthSpecError(`env.${k}`, 'must be a string without NUL');
      env[k] = v;
    }
  }

  const http = kind === 'http' || kind === 'https';
  for (const f of ['path', 'status', 'tls_skip_verify'] as const) {
    if (o[f] !== undefined && !http) throw new HealthSpecError(f, 'only goes with kind http or https');
  }
  if (o.tls_skip_verify !== undefined && kind !== 'https') throw new HealthSpecError('tls_skip_verify', 'only goes with kind https');
  let path = '/';
  if (o.path !== undefined) {
    if (typeof o.path !== 'string' || !o.path.startsWith('/') || o.path.length > 2048 || /[\s\0]/.test(o.path)) {
      throw new HealthSpecError('path', 'must start with "/" and contain no whitespace (at most 2048 characters)');
    }
    path = o.path;
  }
  const [statusMin, statusMax] = o.status === undefined ? [HEALTH_DEFAULTS.statusMin, HEALTH_DEFAULTS.statusMax] : statusRange(o.status);
  if (o.tls_skip_verify !== undefined && typeof o.tls_skip_verify !== 'boolean') throw new HealthSpecError('tls_skip_verify', 'must be true or false');

  if (o.port !== undefined && (kind === 'exec' || kind === 'none')) throw new HealthSpecError('port', `does not go with kind ${kind}`);
  if (o.retries !== undefined && o.fall !== undefined) throw new HealthSpecError('fall', 'give either retries (Docker) or fall, not both');

  const intervalMs = o.interval === undefined ? HEALTH_DEFAULTS.intervalMs : parseDuration('interval', o.interval);
  const timeoutMs = o.timeout === undefined ? HEALTH_DEFAULTS.timeoutMs : parseDuration('timeout', o.timeout);
  const startIntervalMs = o.start_interval === undefined ? intervalMs : parseDuration('start_interval', o.start_interval);
  for (const [f, v] of [['interval', intervalMs], ['timeout', timeoutMs], ['start_interval', startIntervalMs]] as const) {
    if (v < MIN_INTERVAL_MS) throw new HealthSpecError(f, `must be at least ${MIN_INTERVAL_MS} ms, got ${v} ms`);
  }
  return {
    kind,
    port: o.port === undefined ? undefined : port('port', o.port),
    path,
    statusMin,
    statusMax,
    tlsSkipVerify: o.tls_skip_verify === true,
    argv,
    env,
    intervalMs,
    timeoutMs,
    fall: o.retries !== undefined ? positiveInt('retries', o.retries, 100) : o.fall !== undefined ? positiveInt('fall', o.fall, 100) : HEALTH_DEFAULTS.fall,
    rise: o.rise === undefined ? HEALTH_DEFAULTS.rise : positiveInt('rise', o.rise, 100),
    startPeriodMs: o.start_period === undefined ? HEALTH_DEFAULTS.startPeriodMs : parseDuration('start_period', o.start_period),
    startIntervalMs,
    dampMs: o.damp === undefined ? HEALTH_DEFAULTS.dampMs : parseDuration('damp', o.damp),
  };
}
