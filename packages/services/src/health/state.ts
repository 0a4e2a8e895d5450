/**
 * The health state machine of one instance: pure, no timers, driven by `observe(ok, now)` (a probe
 * finished) and `tick(now)` (time passed); it says when the next probe is due (`nextProbeAt`) and
 * when a held change may be published (`holdUntil`). The checker owns the timers.
 *
 * Rules (docs/ARCHITECTURE.md, "Services"):
 * - the state starts `starting`; `rise` consecutive successes make it `healthy`, `fall` consecutive
 *   counted failures make it `unhealthy` (from any state);
 * - during the start period (`startPeriodMs` from creation) failures are not counted; the first
 *   success ends the start period early; probes run every `startIntervalMs` while it lasts, every
 *   `intervalMs` after; the first probe is due at creation;
 * - flap damping: the published state changes at most once per `dampMs`. A change of the raw state
 *   is published at once when the last published change is `dampMs` old (the first always is);
 *   otherwise it is held, and when the hold ends the raw state of that moment is published if it
 *   differs from the published one (the last state wins). Every raw change not published at once
 *   counts as damped.
 */
export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthTiming {
  rise: number;
  fall: number;
  intervalMs: number;
  startIntervalMs: number;
  startPeriodMs: number;
  dampMs: number;
}

/** What one event did to the published state. */
export interface HealthEvent {
  /** The published state changed to `status`. */
  changed: boolean;
  /** The raw state changed but publishing it is held by damping. */
  damped: boolean;
  status: HealthStatus;
}

export class HealthState {
  /** The state as the probes say (before damping). */
  raw: HealthStatus = 'starting';
  /** The state others see (after damping). */
  published: HealthStatus = 'starting';
  successes = 0;
  failures = 0;
  private startOver: boolean;
  private readonly startEnd: number;
  private lastPublishAt = -Infinity;
  private lastProbeAt: number | undefined;

  constructor(
    private readonly timing: HealthTiming,
    readonly createdAt: number,
  ) {
    this.startEnd = createdAt + timing.startPeriodMs;
    this.startOver = timing.startPeriodMs <= 0;
  }

  /** True while failures do not count: before the start period's end and before the first success. */
  inStartPeriod(now: number): boolean {
    return !this.startOver && now < this.startEnd;
  }

  /** When the next probe is due: at creation, then `interval` (or `start_interval`) after the last result. */
  get nextProbeAt(): number {
    const last = this.lastProbeAt;
    if (last === undefined) return this.createdAt;
    return last + (this.inStartPeriod(last) ? this.timing.startIntervalMs : this.timing.intervalMs);
  }

  /** When a held change may be published, or undefined when nothing is held. */
  get holdUntil(): number | undefined {
    return this.raw !== this.published ? this.lastPublishAt + this.timing.dampMs : undefined;
  }

  /** A probe finished at `now` with `ok`. */
  observe(ok: boolean, now: number): HealthEvent {
    this.lastProbeAt = now;
    const before = this.raw;
    if (ok) {
      this.startOver = true;
      this.failures = 0;
      this.successes++;
      if (this.successes >= this.timing.rise) this.raw = 'healthy';
    } else {
      this.successes = 0;
      if (!this.inStartPeriod(now)) {
        this.failures++;
        if (this.failures >= this.timing.fall) this.raw = 'unhealthy';
      }
    }
    return this.settle(now, this.raw !== before);
  }

  /** Time passed: publish a held change whose hold has ended. */
  tick(now: number): HealthEvent {
    return this.settle(now, false);
  }

  private settle(now: number, rawChanged: boolean): HealthEvent {
    if (this.raw !== this.published && now >= this.lastPublishAt + this.timing.dampMs) {
      this.published = this.raw;
      this.lastPublishAt = now;
      return { changed: true, damped: false, status: this.published };
    }
    return { changed: false, damped: rawChanged, status: this.published };
  }
}
