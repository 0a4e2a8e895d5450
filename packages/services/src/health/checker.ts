/**
 * Runs the health checks of this host's own instances (each agent checks only its own: O(local
 * instances), Consul's model) on a clock, at most `maxConcurrent` probes at a time, and reports
 * every published state change through `onChange` (the agent signs it into the instance's record).
 *
 * One timer per instance for its next probe, one for a held (damped) change; one probe in flight
 * per instance at most, so the wait queue is bounded by the number of instances. A probe that does
 * not return within its timeout plus `stuckGraceMs` is aborted and counted as stuck, so a broken
 * probe can never hold a slot. The clock is injectable (tests drive it by hand).
 */
import { ClosedError, type CounterSet, InvalidConfigError, OverlayError } from '@overlay/dataplane';
import { type HealthCounter, createHealthCounters } from './counters.js';
import { execProbe } from './probes/exec.js';
import { httpProbe } from './probes/http.js';
import { IcmpProber } from './probes/icmp.js';
import { type HealthTarget, type Probe, type ProbeResult, targetPort } from './probes/result.js';
import { tcpProbe } from './probes/tcp.js';
import { type HealthKind, type HealthSpec, HealthSpecError } from './spec.js';
import { type HealthStatus, HealthState } from './state.js';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** An instance id given to `add` is already checked. */
export class DuplicateInstanceError extends OverlayError {
  constructor(readonly id: string) {
    super('OVL_ERR_HEALTH_DUPLICATE_INSTANCE', `instance ${JSON.stringify(id.slice(0, 64))} is already checked`);
  }
}

export interface HealthCheckerOptions {
  clock?: Clock;
  /** Probes in flight at once, over all instances. Default 8. */
  maxConcurrent?: number;
  /** Replace probe kinds (tests). */
  probes?: Partial<Record<Exclude<HealthKind, 'none'>, Probe>>;
  /** Time past a probe's timeout after which it counts as stuck. Default 2000 ms. */
  stuckGraceMs?: number;
  /** Published state changes. `result` is the probe result that caused (or last preceded) it. */
  onChange?: (id: string, status: HealthStatus, result: ProbeResult | undefined) => void;
  /** Warnings (ICMP unavailable). Default: process.emitWarning. */
  warn?: (message: string) => void;
}

export interface InstanceHealth {
  id: string;
  /** Published (damped) state; `healthy` for instances without a check (kind none). */
  status: HealthStatus;
  /** Undamped state. */
  raw: HealthStatus;
  last: ProbeResult | undefined;
}

interface Entry {
  target: HealthTarget;
  spec: HealthSpec;
  state: HealthState | undefined; // undefined: kind none, always healthy
  probeTimer: unknown;
  holdTimer: unknown;
  inFlight: AbortController | undefined;
  last: ProbeResult | undefined;
  removed: boolean;
}

export class HealthChecker {
  readonly counters: CounterSet<HealthCounter> = createHealthCounters();
  readonly icmp: IcmpProber;
  private readonly clock: Clock;
  private readonly maxConcurrent: number;
  private readonly stuckGraceMs: number;
  private readonly probes: Record<Exclude<HealthKind, 'none'>, Probe>;
  private readonly entries = new Map<string, Entry>();
  private readonly waiting: Entry[] = [];
  /** Probes in flight, each with the function that gives up on it. */
  private readonly running = new Map<Promise<void>, () => void>();
  private stopped = false;

  constructor(private readonly options: HealthCheckerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    const max = options.maxConcurrent ?? 8;
    if (!Number.isInteger(max) || max < 1 || max > 1024) throw new InvalidConfigError('maxConcurrent', `must be an integer from 1 to 1024, got ${max}`);
    this.maxConcurrent = max;
    this.stuckGraceMs = options.stuckGraceMs ?? 2_000;
    this.icmp = new IcmpProber({ warn: options.warn, onFallback: () => this.counters.add(this.counters.at.icmp_fallbacks) });
    this.probes = { tcp: tcpProbe, http: httpProbe, https: httpProbe, icmp: this.icmp.probe, exec: execProbe, ...options.probes };
  }

  /** Start checking an instance; its state is `starting` until the probes decide. */
  add(target: HealthTarget, spec: HealthSpec): void {
    if (this.stopped) throw new ClosedError('health checker');
    if (this.entries.has(target.id)) throw new DuplicateInstanceError(target.id);
    if ((spec.kind === 'tcp' || spec.kind === 'http' || spec.kind === 'https') && targetPort(target, spec) === undefined) {
      throw new HealthSpecError('port', `kind ${spec.kind} needs a port and instance ${JSON.stringify(target.id.slice(0, 64))} has none`);
    }
    const entry: Entry = {
      target: { ...target, ports: target.ports === undefined ? undefined : [...target.ports] },
      spec,
      state: spec.kind === 'none' ? undefined : new HealthState(spec, this.clock.now()),
      probeTimer: undefined,
      holdTimer: undefined,
      inFlight: undefined,
      last: undefined,
      removed: false,
    };
    this.entries.set(target.id, entry);
    this.schedule(entry);
  }

  /** Stop checking an instance; aborts its probe in flight. */
  remove(id: string): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined) return false;
    this.entries.delete(id);
    this.retire(entry);
    const w = this.waiting.indexOf(entry);
    if (w >= 0) this.waiting.splice(w, 1);
    return true;
  }

  status(id: string): HealthStatus | undefined {
    const e = this.entries.get(id);
    return e === undefined ? undefined : (e.state?.published ?? 'healthy');
  }

  get(id: string): InstanceHealth | undefined {
    const e = this.entries.get(id);
    return e === undefined ? undefined : { id, status: e.state?.published ?? 'healthy', raw: e.state?.raw ?? 'healthy', last: e.last };
  }

  list(): InstanceHealth[] {
    return [...this.entries.keys()].map((id) => this.get(id)!);
  }

  /** Probes in flight now. */
  get inFlight(): number {
    return this.running.size;
  }

  /**
   * Stop every check and abort the probes in flight; resolves when they have returned (an exec
   * check's process group is then killed and reaped), or after `stuckGraceMs` for probes that
   * ignore the abort (given up and counted as stuck).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const e of this.entries.values()) this.retire(e);
    this.entries.clear();
    this.waiting.length = 0;
    if (this.running.size === 0) return;
    let timer: unknown;
    const grace = new Promise<void>((resolve) => (timer = this.clock.setTimeout(resolve, this.stuckGraceMs)));
    await Promise.race([Promise.all(this.running.keys()), grace]);
    this.clock.clearTimeout(timer);
    for (const giveUp of [...this.running.values()]) giveUp();
    await Promise.all(this.running.keys());
  }

  private retire(entry: Entry): void {
    entry.removed = true;
    this.clock.clearTimeout(entry.probeTimer);
    this.clock.clearTimeout(entry.holdTimer);
    entry.inFlight?.abort();
  }

  private schedule(entry: Entry): void {
    const state = entry.state;
    if (state === undefined || entry.removed) return;
    this.clock.clearTimeout(entry.probeTimer);
    const delay = Math.max(0, state.nextProbeAt - this.clock.now());
    entry.probeTimer = this.clock.setTimeout(() => this.enqueue(entry), delay);
  }

  private enqueue(entry: Entry): void {
    if (entry.removed) return;
    if (this.running.size < this.maxConcurrent) this.run(entry);
    else {
      this.counters.add(this.counters.at.probes_waited);
      this.waiting.push(entry);
    }
  }

  private run(entry: Entry): void {
    const ac = new AbortController();
    entry.inFlight = ac;
    this.counters.add(this.counters.at.probes_run);
    const probe = this.probes[entry.spec.kind as Exclude<HealthKind, 'none'>];
    let settled = false;
    let settle!: (r: ProbeResult) => void;
    const outcome = new Promise<ProbeResult>((resolve) => (settle = (r) => {
      settled = true;
      resolve(r);
    }));
    const started = this.clock.now();
    const giveUp = (): void => {
      if (settled) return;
      this.counters.add(this.counters.at.probe_stuck);
      ac.abort();
      settle({ ok: false, why: 'timeout', detail: 'probe did not return', output: '', ms: this.clock.now() - started });
    };
    const watchdog = this.clock.setTimeout(giveUp, entry.spec.timeoutMs + this.stuckGraceMs);
    Promise.resolve()
      .then(() => probe(entry.target, entry.spec, ac.signal))
      .then(
        (r) => (settled ? undefined : settle(r)),
        (err: unknown) => (settled ? undefined : settle({ ok: false, why: 'error', detail: `probe threw: ${err instanceof Error ? err.message.slice(0, 200) : String(err)}`, output: '', ms: this.clock.now() - started })),
      );
    const done = outcome.then((r) => {
      this.clock.clearTimeout(watchdog);
      this.running.delete(done);
      entry.inFlight = undefined;
      this.finished(entry, r);
      this.drain();
    });
    this.running.set(done, () => {
      this.clock.clearTimeout(watchdog);
      giveUp();
    });
  }

  private drain(): void {
    while (!this.stopped && this.running.size < this.maxConcurrent && this.waiting.length > 0) this.run(this.waiting.shift()!);
  }

  private finished(entry: Entry, r: ProbeResult): void {
    if (entry.removed || this.stopped || entry.state === undefined) return;
    this.counters.count(`probe_${r.why}`);
    entry.last = r;
    this.apply(entry, entry.state.observe(r.ok, this.clock.now()));
    this.schedule(entry);
  }

  private apply(entry: Entry, ev: { changed: boolean; damped: boolean; status: HealthStatus }): void {
    if (ev.damped) this.counters.add(this.counters.at.changes_damped);
    if (ev.changed) {
      this.counters.add(this.counters.at.changes_published);
      try {
        this.options.onChange?.(entry.target.id, ev.status, entry.last);
      } catch {
        this.counters.add(this.counters.at.listener_errors);
      }
      if (entry.removed) return; // the listener removed it or stopped the checker
    }
    this.clock.clearTimeout(entry.holdTimer);
    entry.holdTimer = undefined;
    const until = entry.state?.holdUntil;
    if (until !== undefined) {
      entry.holdTimer = this.clock.setTimeout(() => {
        entry.holdTimer = undefined;
        if (!entry.removed && entry.state !== undefined) this.apply(entry, entry.state.tick(this.clock.now()));
      }, Math.max(0, until - this.clock.now()));
    }
  }
}
