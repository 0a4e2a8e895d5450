/**
 * A hashed timer wheel over entry ids 0..capacity-1 (Varghese & Lauck): `slots` buckets of
 * `tickMs`, each an intrusive doubly linked list in typed arrays, so scheduling, moving and
 * cancelling an entry are O(1) and allocate nothing, and `advance` visits only the buckets whose
 * time has passed (O(1) per tick plus the entries in them), never the whole table.
 *
 * The owner keeps each entry's real deadline; the wheel only promises to hand every entry back
 * no later than the first `advance` whose tick is past the entry's bucket. Extending a deadline
 * needs no wheel work (the entry is looked at early and rescheduled: `onDue` returns the later
 * deadline); shortening one calls `schedule` again. Deadlines further out than the wheel's
 * horizon (`slots × tickMs`) park in the last bucket of the horizon and are rescheduled when it
 * comes round.
 *
 * Semantics the conntrack's reference model relies on: `advance(now)` hands `onDue` every entry
 * whose deadline is before `floor(now / tickMs) × tickMs`, and no other that is then removed.
 */
export class TimerWheel {
  readonly next: Int32Array;
  readonly prev: Int32Array;
  /** Tick the entry is filed under; -1 when not scheduled. */
  readonly sched: Float64Array;
  private readonly heads: Int32Array;
  /** Every tick before this one has been processed. */
  private cursor: number;

  constructor(
    capacity: number,
    readonly tickMs: number,
    readonly slots: number,
    startMs = 0,
  ) {
    this.next = new Int32Array(capacity).fill(-1);
    this.prev = new Int32Array(capacity).fill(-1);
    this.sched = new Float64Array(capacity).fill(-1);
    this.heads = new Int32Array(slots).fill(-1);
    this.cursor = Math.floor(startMs / tickMs);
  }

  /** File `e` so it is handed back by the first `advance` past `deadlineMs`'s tick (moving it if filed). */
  schedule(e: number, deadlineMs: number): void {
    let t = Math.floor(deadlineMs / this.tickMs);
    if (t < this.cursor) t = this.cursor;
    const last = this.cursor + this.slots - 1;
    if (t > last) t = last;
    if (this.sched[e] === t) return;
    if (this.sched[e] >= 0) this.unlink(e);
    const b = t % this.slots;
    const h = this.heads[b];
    this.next[e] = h;
    this.prev[e] = -1;
    if (h >= 0) this.prev[h] = e;
    this.heads[b] = e;
    this.sched[e] = t;
  }

  /** Reschedule only when `deadlineMs` falls before the tick `e` is filed under (a shortened deadline). */
  shorten(e: number, deadlineMs: number): void {
    if (Math.floor(deadlineMs / this.tickMs) < this.sched[e]) this.schedule(e, deadlineMs);
  }

  cancel(e: number): void {
    if (this.sched[e] >= 0) this.unlink(e);
  }

  private unlink(e: number): void {
    const n = this.next[e];
    const p = this.prev[e];
    if (p >= 0) this.next[p] = n;
    else this.heads[this.sched[e] % this.slots] = n;
    if (n >= 0) this.prev[n] = p;
    this.next[e] = this.prev[e] = -1;
    this.sched[e] = -1;
  }

  /**
   * Process every tick before `floor(nowMs / tickMs)`: each entry filed there is unlinked and
   * given to `onDue(e, boundaryMs)` (boundaryMs = that tick × tickMs). `onDue` returns the
   * entry's deadline when it is still alive at `boundaryMs` (it is rescheduled) or -1 when it
   * removed the entry. Returns how many were removed.
   */
  advance(nowMs: number, onDue: (e: number, boundaryMs: number) => number): number {
    const target = Math.floor(nowMs / this.tickMs);
    if (target - this.cursor > this.slots) this.cursor = target - this.slots; // every bucket once
    const boundary = target * this.tickMs;
    let removed = 0;
    while (this.cursor < target) {
      const b = this.cursor % this.slots;
      this.cursor++;
      let e = this.heads[b];
      this.heads[b] = -1;
      while (e >= 0) {
        const n = this.next[e];
        this.next[e] = this.prev[e] = -1;
        this.sched[e] = -1;
        const deadline = onDue(e, boundary);
        if (deadline < 0) removed++;
        else this.schedule(e, deadline);
        e = n;
      }
    }
    return removed;
  }
}
