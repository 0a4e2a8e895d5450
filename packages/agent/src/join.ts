/**
 * Joining through seeds: one push-pull with each; when none answered, retries with backoff
 * (JOIN_RETRY_BASE_MS doubling up to JOIN_RETRY_MAX_MS, each ±25 %) until another live member
 * is known — through a seed, or because someone reached us first. Callbacks, not promises, so
 * simulated time drives the retries like real time does.
 *
 * Single-threaded; owned by one agent.
 */
import type { Addr, Clock, TimerHandle } from './env.js';
import type { AgentCounters } from './counters.js';
import type { PushPull } from './pushpull.js';

/** First join retry after this, doubling per failed round up to JOIN_RETRY_MAX_MS (±25 % jitter). */
export const JOIN_RETRY_BASE_MS = 1000;
export const JOIN_RETRY_MAX_MS = 8000;

export interface JoinerOptions {
  self: Addr;
  clock: Clock;
  random: () => number;
  pushPull: PushPull;
  counters: AgentCounters;
  /** Whether we know another live member (joined). */
  joined(): boolean;
  running(): boolean;
}

export class Joiner {
  /** The seeds of the last join() (ourselves left out). */
  seeds: Addr[] = [];
  private timeoutMs = 5000;
  private timer: TimerHandle | null = null;

  constructor(private readonly o: JoinerOptions) {}

  /** Resolves with the number of seeds that answered; 0 leaves retries running. */
  join(seeds: Addr[], timeoutMs: number): Promise<number> {
    this.seeds = seeds.filter((s) => s.ip !== this.o.self.ip || s.port !== this.o.self.port);
    this.timeoutMs = timeoutMs;
    return new Promise((resolve) =>
      this.round((ok) => {
        if (ok === 0) this.retry(0);
        resolve(ok);
      }),
    );
  }

  stop(): void {
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** One push-pull with each seed in turn. */
  private round(done: (ok: number) => void, i = 0, ok = 0): void {
    const o = this.o;
    if (i >= this.seeds.length || !o.running()) return done(ok);
    o.counters.add(o.counters.at.join_attempts);
    o.pushPull.run(this.seeds[i], true, this.timeoutMs, (err) => {
      if (err) o.counters.add(o.counters.at.push_pull_failures);
      this.round(done, i + 1, err ? ok : ok + 1);
    });
  }

  private retry(n: number): void {
    const o = this.o;
    if (!o.running() || this.seeds.length === 0 || this.timer) return;
    const delay = Math.min(JOIN_RETRY_MAX_MS, JOIN_RETRY_BASE_MS * 2 ** n) * (0.75 + 0.5 * o.random());
    this.timer = o.clock.setTimeout(() => {
      this.timer = null;
      if (!o.running() || o.joined()) return;
      this.round((ok) => {
        if (ok === 0 && !o.joined()) this.retry(n + 1);
      });
    }, delay);
  }
}
