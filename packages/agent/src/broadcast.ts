/**
 * Piggyback broadcast queue with invalidation and a bounded retransmit budget.
 *
 * Each item is a pre-encoded message field with a key naming what it is about ("n:<node>" for
 * membership, "e:<network>/<endpoint>" for an endpoint record). Queueing an item replaces any item
 * with the same key: only the newest news about a thing is ever sent, so a stale update can never
 * overtake a fresh one in the queue. Each item is sent at most `limit(N)` = mult × ceil(log10(N+1))
 * times, fewest-sent first, then dropped; anti-entropy (push-pull) covers anything a lossy network
 * lost.
 *
 * No sort per packet: items sit in one bucket per transmit count (a doubly linked list each), so
 * `take` walks the buckets from 0 up, touches only the items it sends or skips for size, and stops
 * once the room left is below the smallest item queued. Within a bucket the items that reached it
 * last go first: news is queued at the head of bucket 0 (never-sent items go newest first, as in
 * memberlist), and the items one packet took move, in the order taken, to the head of the next
 * bucket after that packet. take() allocates nothing but the caller's `out` growth.
 *
 * Single-threaded; owned by one agent.
 */
export interface QueuedBroadcast {
  readonly key: string;
  readonly bytes: Uint8Array;
  /** Times sent so far; also the bucket the item is in. */
  readonly transmits: number;
  /** Queue order: larger is newer. */
  readonly order: number;
}

interface Item extends QueuedBroadcast {
  transmits: number;
  prev: Item | null;
  next: Item | null;
}

/** A doubly linked list of items; `head` goes first. */
interface Bucket {
  head: Item | null;
  tail: Item | null;
}

const SIZE_BINS = 2048;

export class BroadcastQueue {
  private readonly items = new Map<string, Item>();
  /** buckets[t]: items sent t times. */
  private readonly buckets: Bucket[] = [];
  /** pending[t]: items taken by the current `take`, to be put at the head of buckets[t]. */
  private readonly pending: Bucket[] = [];
  private counter = 0;
  /** Items per size (sizes ≥ SIZE_BINS-1 share the last bin), for the smallest size queued. */
  private readonly sizes = new Uint32Array(SIZE_BINS);
  /** A lower bound of every queued item's size: take() stops once nothing left can fit. */
  private minSize = SIZE_BINS;
  /** Items replaced by newer news about the same key before their budget ran out. */
  invalidated = 0;
  /** Bytes of every item queued. */
  bytes = 0;

  constructor(private readonly retransmitMult: number) {}

  get size(): number {
    return this.items.size;
  }

  /** Transmit budget for a cluster of `n` members. */
  limit(n: number): number {
    return this.retransmitMult * Math.ceil(Math.log10(n + 1));
  }

  queue(key: string, bytes: Uint8Array): void {
    const old = this.items.get(key);
    if (old) {
      this.remove(old);
      this.invalidated++;
    }
    const it: Item = { key, bytes, transmits: 0, order: this.counter++, prev: null, next: null };
    this.items.set(key, it);
    this.bytes += bytes.length;
    this.pushHead(this.bucket(0), it);
    const bin = Math.min(bytes.length, SIZE_BINS - 1);
    this.sizes[bin]++;
    if (bin < this.minSize) this.minSize = bin;
  }

  /** Drop any item about `key` (e.g. a node we no longer gossip about). */
  drop(key: string): void {
    const it = this.items.get(key);
    if (it) this.remove(it);
  }

  private remove(it: Item): void {
    this.items.delete(it.key);
    this.bytes -= it.bytes.length;
    this.unlink(this.buckets[it.transmits], it);
    const bin = Math.min(it.bytes.length, SIZE_BINS - 1);
    if (--this.sizes[bin] === 0 && bin === this.minSize) {
      while (this.minSize < SIZE_BINS && this.sizes[this.minSize] === 0) this.minSize++;
    }
  }

  /**
   * Take broadcasts fitting `budget` bytes for one packet, counting one transmission each.
   * `n` is the current cluster size (for the budget). Appends the chosen byte arrays to `out`.
   */
  take(budget: number, n: number, out: Uint8Array[] = []): Uint8Array[] {
    if (this.items.size === 0) return out;
    const limit = this.limit(n);
    const buckets = this.buckets;
    let used = 0;
    let full = false;
    for (let t = 0; t < buckets.length && !full; t++) {
      let it = buckets[t].head;
      while (it !== null) {
        const next = it.next;
        if (used + it.bytes.length <= budget) {
          used += it.bytes.length;
          out.push(it.bytes);
          if (it.transmits + 1 >= limit) this.remove(it);
          else {
            this.unlink(buckets[t], it);
            this.pushTail(this.pendingAt(++it.transmits), it);
          }
          if (budget - used < 16 || budget - used < this.minSize) {
            full = true;
            break;
          }
        }
        it = next;
      }
    }
    // Taken items go to the head of their next bucket, in the order they were taken.
    for (let t = 0; t < this.pending.length; t++) {
      const p = this.pending[t];
      if (p.head === null) continue;
      const b = this.bucket(t);
      p.tail!.next = b.head;
      if (b.head) b.head.prev = p.tail;
      else b.tail = p.tail;
      b.head = p.head;
      p.head = p.tail = null;
    }
    return out;
  }

  /** Snapshots of the items in sending order (for tests and status); allocates. */
  peek(): QueuedBroadcast[] {
    const out: QueuedBroadcast[] = [];
    for (const b of this.buckets) for (let it = b.head; it; it = it.next) out.push({ key: it.key, bytes: it.bytes, transmits: it.transmits, order: it.order });
    return out;
  }

  private bucket(t: number): Bucket {
    while (this.buckets.length <= t) this.buckets.push({ head: null, tail: null });
    return this.buckets[t];
  }

  private pendingAt(t: number): Bucket {
    this.bucket(t);
    while (this.pending.length <= t) this.pending.push({ head: null, tail: null });
    return this.pending[t];
  }

  private pushHead(b: Bucket, it: Item): void {
    it.prev = null;
    it.next = b.head;
    if (b.head) b.head.prev = it;
    else b.tail = it;
    b.head = it;
  }

  private pushTail(b: Bucket, it: Item): void {
    it.next = null;
    it.prev = b.tail;
    if (b.tail) b.tail.next = it;
    else b.head = it;
    b.tail = it;
  }

  private unlink(b: Bucket, it: Item): void {
    if (it.prev) it.prev.next = it.next;
    else b.head = it.next;
    if (it.next) it.next.prev = it.prev;
    else b.tail = it.prev;
    it.prev = it.next = null;
  }
}
