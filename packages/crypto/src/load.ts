/**
 * Handshake flood defences (WireGuard paper §5.3): "under load" detection, after which mac2
 * (a cookie) is required, and a per-source token bucket for handshake messages that carry one.
 */

/** 20 handshakes per second per source address, bursts of 5 (as wireguard-go). */
const RATE_PER_MS = 20 / 1000;
const RATE_BURST = 5;
/**
 * A bucket idle this long is forgotten (wireguard-go's ratelimiter collects entries older than a
 * second). Nothing is lost: after BURST / RATE = 250 ms of idleness a bucket is full again, the
 * same as a new one.
 */
const RATE_IDLE_MS = 1000;
/** Bound on tracked sources: a new source beyond it is refused (counted) until buckets expire. */
export const RATE_TABLE_MAX = 4096;
/** Once under load, stay so for a second (wireguard-go: UnderLoadAfterTime). */
const UNDER_LOAD_FOR = 1000;

/** What allow() decided. */
export const RATE_OK = 0;
/** The source's bucket is empty. */
export const RATE_LIMITED = 1;
/** A source without a bucket while the table is full of recently active ones. */
export const RATE_TABLE_FULL = 2;
export type RateVerdict = typeof RATE_OK | typeof RATE_LIMITED | typeof RATE_TABLE_FULL;

interface Bucket {
  tokens: number;
  at: number;
}

export class LoadGuard {
  private windowStart = 0;
  private windowCount = 0;
  private underLoadUntil = -Infinity;
  /** In order of last use (a used bucket moves to the end), so the idle ones are at the front. */
  private readonly buckets = new Map<string, Bucket>();

  /** `threshold` handshake messages per second; 0 means always under load. */
  constructor(
    public threshold: number,
    private readonly tableMax = RATE_TABLE_MAX,
  ) {}

  /** Counts one handshake message and tells whether the device is under load. */
  underLoad(now: number): boolean {
    if (this.threshold === 0) return true;
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (++this.windowCount > this.threshold) this.underLoadUntil = now + UNDER_LOAD_FOR;
    return now < this.underLoadUntil;
  }

  /**
   * Takes a token for `source` (address bytes). Buckets idle for RATE_IDLE_MS are dropped one by
   * one first, so a flood of new (spoofed) sources never resets the buckets of the sources
   * already tracked; while the table is full of active ones a new source is refused.
   */
  allow(source: Buffer, now: number): RateVerdict {
    this.expire(now);
    const key = source.toString('hex');
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key);
    } else {
      if (this.buckets.size >= this.tableMax) return RATE_TABLE_FULL;
      b = { tokens: RATE_BURST, at: now };
    }
    this.buckets.set(key, b);
    b.tokens = Math.min(RATE_BURST, b.tokens + Math.max(0, now - b.at) * RATE_PER_MS);
    b.at = now;
    if (b.tokens < 1) return RATE_LIMITED;
    b.tokens -= 1;
    return RATE_OK;
  }

  /** Sources tracked now. */
  get tracked(): number {
    return this.buckets.size;
  }

  /** Forget buckets idle for RATE_IDLE_MS, oldest first; stops at the first recent one. */
  private expire(now: number): void {
    for (const [key, b] of this.buckets) {
      if (now - b.at < RATE_IDLE_MS) return;
      this.buckets.delete(key);
    }
  }
}
