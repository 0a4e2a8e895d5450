/**
 * Handshake flood defences (WireGuard paper §5.3): "under load" detection, after which mac2
 * (a cookie) is required, and a per-source token bucket for handshake messages that carry one.
 */

/** 20 handshakes per second per source address, bursts of 5 (as wireguard-go). */
const RATE_PER_MS = 20 / 1000;
const RATE_BURST = 5;
/** Bound on tracked sources; the table is simply cleared when full. */
const RATE_TABLE_MAX = 4096;
/** Once under load, stay so for a second (wireguard-go: UnderLoadAfterTime). */
const UNDER_LOAD_FOR = 1000;

export class LoadGuard {
  private windowStart = 0;
  private windowCount = 0;
  private underLoadUntil = -Infinity;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** `threshold` handshake messages per second; 0 means always under load. */
  constructor(public threshold: number) {}

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

  /** Takes a token for `source` (address bytes); false when its bucket is empty. */
  allow(source: Buffer, now: number): boolean {
    const key = source.toString('hex');
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= RATE_TABLE_MAX) this.buckets.clear();
      b = { tokens: RATE_BURST, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(RATE_BURST, b.tokens + (now - b.at) * RATE_PER_MS);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
