/**
 * The checker on a fake clock with scripted probes (schedule, rise/fall, damping, bounded
 * concurrency, stuck probes, stop), then on the real clock against a real loopback listener.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import {
  type Clock, DuplicateInstanceError, HEALTH_CHANNEL, HealthChecker, HealthSpecError, type HealthStatus, type Probe, type ProbeResult, parseHealthSpec,
} from '@overlay/services';

class FakeClock implements Clock {
  t = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  get pending(): number {
    return this.timers.size;
  }
  /** Run every timer due up to now + ms in time order, letting promises settle between timers. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (next === undefined || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

const res = (ok: boolean): ProbeResult => ({ ok, why: ok ? 'ok' : 'refused', detail: ok ? '' : 'ECONNREFUSED', output: '', ms: 0 });

/** A probe answering from a script per instance (last entry repeats), recording the times it ran. */
function scripted(clock: FakeClock, script: Record<string, boolean[] | ((n: number) => boolean)>) {
  const runs: Record<string, number[]> = {};
  const probe: Probe = async (target) => {
    const n = (runs[target.id] ??= []).push(clock.now()) - 1;
    const s = script[target.id];
    return res(typeof s === 'function' ? s(n) : s[Math.min(n, s.length - 1)]);
  };
  return { probe, runs };
}

const checkers: { c: HealthChecker; clock?: FakeClock }[] = [];
afterEach(async () => {
  for (const { c, clock } of checkers.splice(0)) {
    const stopped = c.stop();
    await clock?.advance(60_000);
    await stopped;
  }
});

function checker(clock: FakeClock, probe: Probe, extra: Partial<ConstructorParameters<typeof HealthChecker>[0]> = {}) {
  const changes: { t: number; id: string; status: HealthStatus; why: string | undefined }[] = [];
  const c = new HealthChecker({
    clock,
    probes: { tcp: probe, exec: probe, http: probe, icmp: probe },
    onChange: (id, status, r) => changes.push({ t: clock.now(), id, status, why: r?.why }),
    ...extra,
  });
  checkers.push({ c, clock });
  return { c, changes };
}

describe('health checker (fake clock)', () => {
  it('probes at creation, every interval after; rise then fall publish changes', async () => {
    const clock = new FakeClock();
    const { probe, runs } = scripted(clock, { a: [true, true, true, false, false, false, false] });
    const { c, changes } = checker(clock, probe);
    c.add({ id: 'a', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', damp: 0 }));
    expect(c.status('a')).toBe('starting');
    await clock.advance(12_000);
    expect(runs.a).toEqual([0, 2_000, 4_000, 6_000, 8_000, 10_000, 12_000]);
    expect(changes).toEqual([
      { t: 2_000, id: 'a', status: 'healthy', why: 'ok' },
      { t: 10_000, id: 'a', status: 'unhealthy', why: 'refused' },
    ]);
    expect(c.counters.get('probes_run')).toBe(7);
    expect(c.counters.get('probe_ok')).toBe(3);
    expect(c.counters.get('probe_refused')).toBe(4);
    expect(c.counters.get('changes_published')).toBe(2);
  });

  it('start_interval during start_period; failures there do not count', async () => {
    const clock = new FakeClock();
    const { probe, runs } = scripted(clock, { a: (n) => n >= 6 });
    const { c, changes } = checker(clock, probe);
    c.add({ id: 'a', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', start_period: '3s', start_interval: '500ms', interval: '2s', retries: 2, rise: 1 }));
    await clock.advance(3_000);
    expect(runs.a).toEqual([0, 500, 1_000, 1_500, 2_000, 2_500, 3_000]);
    expect(changes).toEqual([{ t: 3_000, id: 'a', status: 'healthy', why: 'ok' }]);
    await clock.advance(4_000);
    expect(runs.a.slice(7)).toEqual([5_000, 7_000]);
  });

  it('flapping every 2 s publishes at most one change per 10 s and counts the rest as damped', async () => {
    const clock = new FakeClock();
    const { probe } = scripted(clock, { f: (n) => n % 2 === 0 });
    const { c, changes } = checker(clock, probe);
    c.add({ id: 'f', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', rise: 1, retries: 1 }));
    await clock.advance(120_000);
    expect(changes.length).toBeGreaterThanOrEqual(2);
    for (let k = 1; k < changes.length; k++) expect(changes[k].t - changes[k - 1].t).toBeGreaterThanOrEqual(10_000);
    expect(changes.length).toBeLessThanOrEqual(13);
    expect(c.counters.get('changes_damped')).toBeGreaterThan(40);
    expect(c.counters.get('changes_published')).toBe(changes.length);
  });

  it('a held change is published when the hold ends, by the hold timer', async () => {
    const clock = new FakeClock();
    // healthy at 0, fails at 2 s and stays down: unhealthy is due at once but held until 10 s.
    const { probe } = scripted(clock, { h: [true, false] });
    const { c, changes } = checker(clock, probe);
    c.add({ id: 'h', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', rise: 1, retries: 1, interval: '7s' }));
    await clock.advance(9_999);
    expect(changes.map((x) => [x.t, x.status])).toEqual([[0, 'healthy']]);
    expect(c.get('h')).toMatchObject({ status: 'healthy', raw: 'unhealthy' });
    await clock.advance(1);
    expect(changes.map((x) => [x.t, x.status])).toEqual([[0, 'healthy'], [10_000, 'unhealthy']]);
  });

  it('bounds the probes in flight; the others wait their turn', async () => {
    const clock = new FakeClock();
    let inFlight = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    const probe: Probe = () => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      return new Promise((resolve) => release.push(() => (inFlight--, resolve(res(true)))));
    };
    const { c } = checker(clock, probe, { maxConcurrent: 3 });
    for (let i = 0; i < 20; i++) c.add({ id: `i${i}`, address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', timeout: '10s' }));
    await clock.advance(0);
    expect(c.inFlight).toBe(3);
    expect(c.counters.get('probes_waited')).toBe(17);
    while (release.length > 0) {
      release.shift()!();
      await flush();
    }
    expect(peak).toBe(3);
    expect(c.counters.get('probes_run')).toBe(20);
  });

  it('a probe that never returns is given up after timeout + grace and frees its slot', async () => {
    const clock = new FakeClock();
    const signals: AbortSignal[] = [];
    const probe: Probe = (_t, _s, signal) => (signals.push(signal), new Promise(() => {}));
    const { c } = checker(clock, probe, { maxConcurrent: 1, stuckGraceMs: 1_000 });
    c.add({ id: 's', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', timeout: '1s', retries: 1 }));
    await clock.advance(1_999);
    expect(c.counters.get('probe_stuck')).toBe(0);
    await clock.advance(1);
    expect(c.counters.get('probe_stuck')).toBe(1);
    expect(signals[0].aborted).toBe(true);
    expect(c.inFlight).toBe(0);
    expect(c.get('s')).toMatchObject({ status: 'unhealthy', last: { why: 'timeout', detail: 'probe did not return' } });
    await clock.advance(2_000);
    expect(signals).toHaveLength(2); // scheduled again
    // stop() waits stuckGraceMs for a probe that ignores the abort, then gives up on it.
    let stopped = false;
    const p = c.stop().then(() => (stopped = true));
    await clock.advance(999);
    expect(stopped).toBe(false);
    await clock.advance(1);
    await p;
    expect(c.counters.get('probe_stuck')).toBe(2);
    expect(c.inFlight).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('a probe that throws, and an onChange that throws, are counted, not crashes', async () => {
    const clock = new FakeClock();
    const probe: Probe = async () => {
      throw new Error('boom');
    };
    const { c } = checker(clock, probe, { onChange: () => { throw new Error('listener'); } });
    c.add({ id: 't', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', retries: 1 }));
    await clock.advance(4_000);
    expect(c.get('t')).toMatchObject({ status: 'unhealthy', last: { why: 'error', detail: 'probe threw: boom' } });
    expect(c.counters.get('probe_error')).toBe(3);
    expect(c.counters.get('listener_errors')).toBe(1);
  });

  it('stop() aborts in-flight probes and leaves no timer; remove() stops one instance', async () => {
    const clock = new FakeClock();
    const signals = new Map<string, AbortSignal>();
    const probe: Probe = (t, _s, signal) =>
      new Promise((resolve) => {
        signals.set(t.id, signal);
        signal.addEventListener('abort', () => resolve({ ...res(false), why: 'aborted' }));
      });
    const { c, changes } = checker(clock, probe);
    c.add({ id: 'x', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp' }));
    c.add({ id: 'y', address: '198.19.0.2', ports: [80] }, parseHealthSpec({ kind: 'tcp' }));
    await clock.advance(0);
    expect(c.remove('x')).toBe(true);
    expect(signals.get('x')!.aborted).toBe(true);
    expect(c.status('x')).toBeUndefined();
    await c.stop();
    expect(signals.get('y')!.aborted).toBe(true);
    expect(c.inFlight).toBe(0);
    expect(clock.pending).toBe(0);
    expect(changes).toEqual([]);
    expect(() => c.add({ id: 'z', address: '198.19.0.3', ports: [80] }, parseHealthSpec({ kind: 'tcp' }))).toThrow(/closed/);
  });

  it('refuses a duplicate instance and a tcp check without a port; kind none is healthy without probes', async () => {
    const clock = new FakeClock();
    const { probe, runs } = scripted(clock, {});
    const { c } = checker(clock, probe);
    c.add({ id: 'a', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp' }));
    expect(() => c.add({ id: 'a', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp' }))).toThrow(DuplicateInstanceError);
    const err = (() => { try { c.add({ id: 'b', address: '198.19.0.1' }, parseHealthSpec({ kind: 'tcp' })); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(HealthSpecError);
    expect(err).toMatchObject({ code: 'OVL_ERR_HEALTH_SPEC', field: 'port' });
    c.add({ id: 'n', address: '198.19.0.1' }, parseHealthSpec({ test: ['NONE'] }));
    await clock.advance(5_000);
    expect(c.status('n')).toBe('healthy');
    expect(runs.n).toBeUndefined();
  });

  it('an onChange listener may remove the instance it is told about', async () => {
    const clock = new FakeClock();
    const { probe, runs } = scripted(clock, { r: [true] });
    let c!: HealthChecker;
    ({ c } = checker(clock, probe, { onChange: (id) => c.remove(id) }));
    c.add({ id: 'r', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp', rise: 1 }));
    await clock.advance(10_000);
    expect(runs.r).toEqual([0]);
    expect(c.status('r')).toBeUndefined();
    expect(clock.pending).toBe(0);
  });

  it('publishes its counters on overlay.services.health', async () => {
    const clock = new FakeClock();
    const { probe } = scripted(clock, { a: [true] });
    const seen: string[] = [];
    const listener = (m: unknown): void => void seen.push((m as { reason: string }).reason);
    subscribe(HEALTH_CHANNEL, listener);
    try {
      const { c } = checker(clock, probe);
      c.add({ id: 'a', address: '198.19.0.1', ports: [80] }, parseHealthSpec({ kind: 'tcp' }));
      await clock.advance(2_000);
    } finally {
      unsubscribe(HEALTH_CHANNEL, listener);
    }
    expect(seen).toEqual(['probes_run', 'probe_ok', 'probes_run', 'probe_ok', 'changes_published']);
  });
});

describe('health checker (real clock, real listener)', () => {
  let server: Server | undefined;
  afterEach(async () => {
    if (server?.listening) await new Promise((r) => server!.close(r));
  });

  it('a TCP check turns healthy while the listener is up and unhealthy after it closes', async () => {
    server = createServer((s) => s.destroy());
    const port = await new Promise<number>((r) => server!.listen(0, '127.0.0.1', () => r((server!.address() as AddressInfo).port)));
    const changes: HealthStatus[] = [];
    let resolveChange: (() => void) | undefined;
    const c = new HealthChecker({
      onChange: (_id, s) => {
        changes.push(s);
        resolveChange?.();
      },
    });
    checkers.push({ c });
    const waitFor = (status: HealthStatus) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${status} in 10 s; changes: ${changes.join()}`)), 10_000);
        resolveChange = () => {
          if (changes.at(-1) === status) {
            clearTimeout(t);
            resolve();
          }
        };
      });
    const healthy = waitFor('healthy');
    c.add({ id: 'l', address: '127.0.0.1', ports: [port] }, parseHealthSpec({ kind: 'tcp', interval: '50ms', timeout: '500ms', damp: '200ms' }));
    await healthy;
    const unhealthy = waitFor('unhealthy');
    await new Promise((r) => server!.close(r));
    await unhealthy;
    expect(changes).toEqual(['healthy', 'unhealthy']);
    expect(c.counters.get('probe_refused')).toBeGreaterThanOrEqual(3);
  });
});

describe('health checker (real clock, hostile exec checks)', () => {
  /** True while a process exists and is not a zombie. */
  const alive = (pid: number): boolean => {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false; // no such process
    }
  };

  it('checks that hang, flood output or fork give bounded results; the loop stays responsive; stop leaves no process', async () => {
    const c = new HealthChecker({ maxConcurrent: 2 });
    checkers.push({ c });
    const spec = (argv: string[]) => parseHealthSpec({ test: ['CMD', ...argv], interval: '100ms', timeout: '300ms', retries: 1, damp: 0 });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    c.add({ id: 'hang', address: '127.0.0.1' }, spec(['/bin/sh', '-c', 'sleep 30 & echo $!; sleep 30']));
    c.add({ id: 'flood', address: '127.0.0.1' }, spec(['/usr/bin/yes', 'flood']));
    c.add({ id: 'fork', address: '127.0.0.1' }, spec(['/bin/sh', '-c', 'for i in 1 2 3; do sleep 30 & done; jobs -p; exit 3']));
    c.add({ id: 'fine', address: '127.0.0.1' }, spec(['/bin/true']));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && c.list().some((h) => h.last === undefined || h.status === 'starting')) await new Promise((r) => setTimeout(r, 100));
    const pids: number[] = [];
    for (const h of c.list()) if (h.id !== 'flood' && h.last !== undefined) pids.push(...h.last.output.trim().split(/\s+/).filter(Boolean).map(Number));
    await c.stop();
    delay.disable();
    expect(c.list()).toEqual([]); // stopped: nothing checked any more
    expect(c.counters.get('probe_timeout')).toBeGreaterThanOrEqual(2); // hang and flood
    expect(c.counters.get('probe_exit')).toBeGreaterThanOrEqual(1); // fork: exit 3
    expect(c.counters.get('probe_ok')).toBeGreaterThanOrEqual(1);
    expect(c.counters.get('probe_stuck')).toBe(0);
    expect(c.counters.get('changes_published')).toBeGreaterThanOrEqual(4);
    expect(pids.length).toBeGreaterThanOrEqual(4); // the hang's background sleep and the fork's three
    await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
    // Draining megabytes from `yes` must not starve the event loop (2 cores shared with other tests: generous bound).
    expect(delay.max / 1e6).toBeLessThan(1_000);
  }, 60_000);
});
