/**
 * Piggyback broadcast queue with invalidation and a bounded retransmit budget.
 *
 * Each item is a pre-encoded message field with a key naming what it is about ("n:<node>" for
 * membership, "e:<network>/<endpoint>" for an endpoint record). Queueing an item replaces any item
 * with the same key: only the newest news about a thing is ever sent, so a stale update can never
 * overtake a fresh one in the queue. Each item is sent at most `limit(N)` = mult × ceil(log10(N+1))
 * times, fewest-sent first (newest first among equals), then dropped; anti-entropy (push-pull)
 * covers anything a lossy network lost.
 *
 * Single-threaded; owned by one agent.
 */
export interface QueuedBroadcast {
  readonly key: string;
  readonly bytes: Uint8Array;
  transmits: number;
  readonly order: number;
}

export class BroadcastQueue {
  private items = new Map<string, QueuedBroadcast>();
  private counter = 0;
  /** Items replaced by newer news about the same key before their budget ran out. */
  invalidated = 0;

  constructor(private readonly retransmitMult: number) {}

  get size(): number {
    return this.items.size;
  }

  /** Transmit budget for a cluster of `n` members. */
  limit(n: number): number {
    return this.retransmitMult * Math.ceil(Math.log10(n + 1));
  }

  queue(key: string, bytes: Uint8Array): void {
    if (this.items.delete(key)) this.invalidated++;
    this.items.set(key, { key, bytes, transmits: 0, order: this.counter++ });
  }

  /** Drop any item about `key` (e.g. a node we no longer gossip about). */
  drop(key: string): void {
    this.items.delete(key);
  }

  /**
   * Take broadcasts fitting `budget` bytes for one packet, counting one transmission each.
   * `n` is the current cluster size (for the budget). Returns the chosen byte arrays.
   */
  take(budget: number, n: number, out: Uint8Array[] = []): Uint8Array[] {
    if (this.items.size === 0) return out;
    const limit = this.limit(n);
    const sorted = [...this.items.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order);
    let used = 0;
    for (const it of sorted) {
      if (used + it.bytes.length > budget) continue;
      used += it.bytes.length;
      out.push(it.bytes);
      if (++it.transmits >= limit) this.items.delete(it.key);
      if (budget - used < 16) break;
    }
    return out;
  }
}
