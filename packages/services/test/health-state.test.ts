/**
 * The health state machine against a reference model written from the rules in
 * docs/ARCHITECTURE.md ("Services"), driven by a fake clock: random timings and random sequences
 * of probe results and clock ticks (≥ 10^4 sequences), several instances at once for panic mode.
 *
 * The model computes everything from the whole history at each step (no counters): the raw state is
 * the state of the latest result that ends a run of `rise` successes or a failure run holding `fall`
 * counted failures; publication is re-derived from the list of earlier publications.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HealthState, type HealthStatus, type HealthTiming, createHealthCounters, selectForAnswer } from '@overlay/services';

class Model {
  readonly results: { t: number; ok: boolean }[] = [];
  readonly publications: { t: number; status: HealthStatus }[] = [];
  constructor(
    readonly timing: HealthTiming,
    readonly createdAt: number,
  ) {}

  private counted(i: number): boolean {
    const r = this.results[i];
    if (r.t >= this.createdAt + this.timing.startPeriodMs) return true;
    return this.results.slice(0, i).some((x) => x.ok);
  }

  /** The state of the latest result that completes `rise` successes or `fall` counted failures in a row. */
  raw(): HealthStatus {
    for (let i = this.results.length - 1; i >= 0; i--) {
      if (this.results[i].ok) {
        let run = 0;
        for (let j = i; j >= 0 && this.results[j].ok; j--) run++;
        if (run >= this.timing.rise) return 'healthy';
      } else {
        let counted = 0;
        for (let j = i; j >= 0 && !this.results[j].ok; j--) if (this.counted(j)) counted++;
        if (counted >= this.timing.fall) return 'unhealthy';
      }
    }
    return 'starting';
  }

  published(): HealthStatus {
    return this.publications.length === 0 ? 'starting' : this.publications[this.publications.length - 1].status;
  }

  /** At an evaluation point: publish the raw state if it differs and the last publication is old enough. */
  evaluate(t: number): boolean {
    const raw = this.raw();
    const last = this.publications[this.publications.length - 1];
    if (raw !== this.published() && (last === undefined || t - last.t >= this.timing.dampMs)) {
      this.publications.push({ t, status: raw });
      return true;
    }
    return false;
  }

  nextProbeAt(): number {
    if (this.results.length === 0) return this.createdAt;
    const last = this.results[this.results.length - 1];
    const starting = last.t < this.createdAt + this.timing.startPeriodMs && !this.results.some((r) => r.ok);
    return last.t + (starting ? this.timing.startIntervalMs : this.timing.intervalMs);
  }

  holdUntil(): number | undefined {
    if (this.raw() === this.published()) return undefined;
    const last = this.publications[this.publications.length - 1];
    return (last?.t ?? -Infinity) + this.timing.dampMs;
  }
}

const timingArb = fc.record({
  rise: fc.integer({ min: 1, max: 4 }),
  fall: fc.integer({ min: 1, max: 4 }),
  intervalMs: fc.integer({ min: 10, max: 3_000 }),
  startIntervalMs: fc.integer({ min: 10, max: 3_000 }),
  startPeriodMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20_000 })),
  dampMs: fc.oneof(fc.constant(0), fc.constant(10_000), fc.integer({ min: 1, max: 15_000 })),
});

/** Raw steps: a time gap, an instance, and what happens (a result, a tick, or a tick exactly when the hold ends). */
const stepArb = fc.record({
  gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 0, max: 15_000 })),
  instance: fc.nat(5),
  what: fc.constantFrom('ok', 'ok', 'fail', 'fail', 'tick', 'hold'),
});

describe('health state machine vs reference model', () => {
  it('agrees on raw and published state, changes, damping, due times and panic selection (10^4 sequences)', () => {
    fc.assert(
      fc.property(timingArb, fc.integer({ min: 1, max: 6 }), fc.array(stepArb, { minLength: 1, maxLength: 60 }), (timing, n, steps) => {
        const created = 1_000_000;
        const impl = Array.from({ length: n }, () => new HealthState(timing, created));
        const model = Array.from({ length: n }, () => new Model(timing, created));
        const counters = createHealthCounters();
        let now = created;
        const times = new Array<number>(n).fill(created);
        for (const s of steps) {
          const i = s.instance % n;
          now += s.gap;
          let t = now;
          if (s.what === 'hold') {
            const h = impl[i].holdUntil;
            // Ticks exactly when the hold ends (as the checker's timer does), never back in time.
            t = h === undefined ? now : Math.max(h, times[i]);
          }
          t = Math.max(t, times[i]);
          times[i] = t;
          let ev;
          let published: boolean;
          let damped = false;
          if (s.what === 'ok' || s.what === 'fail') {
            const ok = s.what === 'ok';
            const rawBefore = model[i].raw();
            model[i].results.push({ t, ok });
            const rawChanged = model[i].raw() !== rawBefore;
            published = model[i].evaluate(t);
            damped = rawChanged && !published;
            ev = impl[i].observe(ok, t);
          } else {
            published = model[i].evaluate(t);
            ev = impl[i].tick(t);
          }
          // Plain comparisons in the loop (expect() per step is slow at 10^4 runs); expect() on a mismatch.
          const got = [ev.changed, ev.damped, ev.status, impl[i].raw, impl[i].published, impl[i].nextProbeAt, impl[i].holdUntil];
          const want = [published, damped, model[i].published(), model[i].raw(), model[i].published(), model[i].nextProbeAt(), model[i].holdUntil()];
          if (got.some((g, k) => g !== want[k])) expect({ step: s, t, got }).toEqual({ step: s, t, got: want });

          // Panic: the healthy ones, or everyone when fewer than half are healthy.
          const healthy = model.filter((m) => m.published() === 'healthy').length;
          const sel = selectForAnswer(impl.map((x, k) => ({ k, x })), (y) => y.x.published === 'healthy', counters);
          const panic = healthy < n / 2;
          const answer = sel.answer.map((y) => y.k).join();
          const wantAnswer = model.map((m, k) => ({ m, k })).filter((y) => panic || y.m.published() === 'healthy').map((y) => y.k).join();
          if (sel.panic !== panic || answer !== wantAnswer) expect({ panic: sel.panic, answer }).toEqual({ panic, answer: wantAnswer });
        }
        // Publications of one instance are at least dampMs apart, and none repeats the previous state.
        for (const m of model) {
          for (let k = 1; k < m.publications.length; k++) {
            expect(m.publications[k].t - m.publications[k - 1].t).toBeGreaterThanOrEqual(timing.dampMs);
            expect(m.publications[k].status).not.toBe(m.publications[k - 1].status);
          }
        }
        expect(counters.get('selections')).toBe(steps.length);
      }),
      { numRuns: 10_000 },
    );
  });
});

describe('health state machine: the rules by example', () => {
  const timing: HealthTiming = { rise: 2, fall: 3, intervalMs: 2_000, startIntervalMs: 500, startPeriodMs: 5_000, dampMs: 10_000 };

  it('failures in the start period do not count; the first success ends it', () => {
    const s = new HealthState(timing, 0);
    expect(s.nextProbeAt).toBe(0);
    for (const t of [0, 500, 1_000, 1_500]) s.observe(false, t);
    expect(s.raw).toBe('starting');
    expect(s.nextProbeAt).toBe(2_000); // start_interval while the start period lasts
    s.observe(true, 2_000);
    expect(s.nextProbeAt).toBe(4_000); // success ended the start period: interval
    for (const t of [4_000, 4_500, 4_900]) s.observe(false, t);
    expect(s.raw).toBe('unhealthy');
  });

  it('after the start period, fall failures make it unhealthy', () => {
    const s = new HealthState(timing, 0);
    s.observe(false, 5_000);
    s.observe(false, 7_000);
    expect(s.raw).toBe('starting');
    expect(s.observe(false, 9_000)).toEqual({ changed: true, damped: false, status: 'unhealthy' });
  });

  it('a check flapping every 2 s publishes at most one change per 10 s, and the last state wins', () => {
    const t1: HealthTiming = { ...timing, rise: 1, fall: 1, startPeriodMs: 0 };
    const s = new HealthState(t1, 0);
    const changes: number[] = [];
    let damped = 0;
    for (let t = 0; t <= 60_000; t += 2_000) {
      const ev = s.observe(t % 4_000 === 0, t);
      if (ev.changed) changes.push(t);
      if (ev.damped) damped++;
    }
    expect(changes.length).toBeGreaterThan(1);
    for (let k = 1; k < changes.length; k++) expect(changes[k] - changes[k - 1]).toBeGreaterThanOrEqual(10_000);
    expect(changes.length).toBeLessThanOrEqual(1 + 60_000 / 10_000);
    expect(damped).toBeGreaterThan(20);
    // Stop flapping on unhealthy: the hold ends and the last state is published then.
    s.observe(false, 61_000);
    const until = s.holdUntil;
    if (s.raw !== s.published) {
      expect(until).toBeDefined();
      expect(s.tick(until! - 1).changed).toBe(false);
      expect(s.tick(until!)).toEqual({ changed: true, damped: false, status: 'unhealthy' });
    }
    expect(s.published).toBe('unhealthy');
  });

  it('a change undone before the hold ends is never published', () => {
    const t1: HealthTiming = { ...timing, rise: 1, fall: 1, startPeriodMs: 0 };
    const s = new HealthState(t1, 0);
    expect(s.observe(true, 0).changed).toBe(true); // first change: at once
    expect(s.observe(false, 1_000)).toEqual({ changed: false, damped: true, status: 'healthy' });
    expect(s.holdUntil).toBe(10_000);
    expect(s.observe(true, 2_000)).toEqual({ changed: false, damped: true, status: 'healthy' });
    expect(s.holdUntil).toBeUndefined();
    expect(s.tick(10_000).changed).toBe(false);
  });

  it('panic: answer with everyone when fewer than half are healthy, and count it', () => {
    const counters = createHealthCounters();
    const all = ['a', 'b', 'c', 'd'];
    const up = (set: string[]) => (x: string) => set.includes(x);
    expect(selectForAnswer(all, up(['a', 'b']), counters)).toEqual({ answer: ['a', 'b'], panic: false, healthy: 2 });
    expect(selectForAnswer(all, up(['a']), counters)).toEqual({ answer: all, panic: true, healthy: 1 });
    expect(selectForAnswer(all, up([]), counters)).toEqual({ answer: all, panic: true, healthy: 0 });
    expect(selectForAnswer([], up([]), counters)).toEqual({ answer: [], panic: false, healthy: 0 });
    expect(counters.get('panic_answers')).toBe(2);
    expect(counters.get('selections')).toBe(4);
  });
});
