/**
 * The async iterator behind every backend's watch: the backend pushes, one reader pulls. Bounded:
 * when the reader falls `limit` events behind, the queued events are dropped and the backend is
 * asked for a resync (a re-list) instead, so a stalled reader costs one snapshot, not unbounded
 * memory. `overflows` counts those.
 */
import type { WatchEvent } from './store.js';

export const WATCH_QUEUE_LIMIT = 10_000;

export class WatchQueue implements AsyncIterableIterator<WatchEvent> {
  private readonly q: WatchEvent[] = [];
  private head = 0;
  private waiter: ((r: IteratorResult<WatchEvent>) => void) | undefined;
  private done = false;
  overflows = 0;

  constructor(
    /** Called when the reader stops (return()/break, abort) — the backend releases its watch. */
    private readonly onClose: () => void,
    /** Called on overflow, after the queue was emptied: push a resync. */
    private readonly onOverflow: () => void,
    private readonly limit = WATCH_QUEUE_LIMIT,
    signal?: AbortSignal,
  ) {
    if (signal) {
      if (signal.aborted) this.end();
      else signal.addEventListener('abort', () => this.end(), { once: true });
    }
  }

  get closed(): boolean {
    return this.done;
  }
  /** Events waiting for the reader. */
  get pending(): number {
    return this.q.length - this.head;
  }

  push(ev: WatchEvent): void {
    if (this.done) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: ev, done: false });
      return;
    }
    if (this.pending >= this.limit) {
      this.q.length = 0;
      this.head = 0;
      this.overflows++;
      this.onOverflow();
      return;
    }
    this.q.push(ev);
  }

  /** End the iteration (backend closed, reader gone). */
  end(): void {
    if (this.done) return;
    this.done = true;
    this.q.length = 0;
    this.head = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ value: undefined, done: true });
    this.onClose();
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.head < this.q.length) {
      const value = this.q[this.head++];
      if (this.head > 1024 && this.head * 2 > this.q.length) {
        this.q.splice(0, this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiter = resolve));
  }

  return(): Promise<IteratorResult<WatchEvent>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
