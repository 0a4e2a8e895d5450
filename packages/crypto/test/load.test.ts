// The handshake rate limiter with a fake clock: per-source buckets survive a spoofed-source flood,
// idle ones expire one by one, and the table stays bounded with counted refusals.
import { describe, expect, it } from 'vitest';
import { LoadGuard, RATE_LIMITED, RATE_OK, RATE_TABLE_FULL, RATE_TABLE_MAX } from '../src/load.js';

const addr = (i: number) => Buffer.from([198, 18, (i >>> 8) & 255, i & 255]);
const LEGIT = Buffer.from([198, 18, 255, 1]);

describe('LoadGuard rate buckets', () => {
  it('keeps a limited source limited through a flood of new spoofed sources', () => {
    const g = new LoadGuard(0);
    const t = 1_000_000;
    // The legitimate (here: abusive but real) source spends its burst of 5.
    const first = Array.from({ length: 6 }, () => g.allow(LEGIT, t));
    expect(first).toEqual([RATE_OK, RATE_OK, RATE_OK, RATE_OK, RATE_OK, RATE_LIMITED]);
    // 3 × the table size of spoofed sources within the same millisecond.
    const verdicts = [0, 0, 0];
    for (let i = 0; i < 3 * RATE_TABLE_MAX; i++) verdicts[g.allow(addr(i), t)]++;
    expect(g.tracked).toBe(RATE_TABLE_MAX);
    expect(verdicts[RATE_OK]).toBe(RATE_TABLE_MAX - 1);
    expect(verdicts[RATE_TABLE_FULL]).toBe(2 * RATE_TABLE_MAX + 1);
    // Its bucket was not reset by the flood: still empty.
    expect(g.allow(LEGIT, t)).toBe(RATE_LIMITED);
    // It refills at 20 per second: one token after 50 ms.
    expect(g.allow(LEGIT, t + 50)).toBe(RATE_OK);
    expect(g.allow(LEGIT, t + 50)).toBe(RATE_LIMITED);
  });

  it('forgets buckets idle for a second one by one, not an active one', () => {
    const g = new LoadGuard(0);
    let t = 5_000;
    for (let i = 0; i < RATE_TABLE_MAX - 1; i++) expect(g.allow(addr(i), t)).toBe(RATE_OK);
    // The active source uses its bucket every 100 ms, emptying it.
    for (let k = 0; k < 5; k++) g.allow(LEGIT, t);
    expect(g.tracked).toBe(RATE_TABLE_MAX);
    expect(g.allow(addr(9999), t)).toBe(RATE_TABLE_FULL);
    for (let step = 0; step < 10; step++) {
      t += 100;
      g.allow(LEGIT, t);
    }
    // 1000 ms on: every spoofed bucket is idle for a second and is dropped, the active one stays.
    expect(g.allow(addr(9999), t)).toBe(RATE_OK);
    expect(g.tracked).toBe(2);
    // The active source earned 2 tokens per 100 ms and spent one each time: not reset to 5.
    let ok = 0;
    while (g.allow(LEGIT, t) === RATE_OK) ok++;
    expect(ok).toBeLessThan(5);
  });

  it('never tracks more than the table size, whatever the clock does', () => {
    const g = new LoadGuard(0, 64);
    let t = 0;
    for (let i = 0; i < 10_000; i++) {
      t += i % 7 === 0 ? 300 : 0;
      g.allow(addr(i % 5000), t);
      expect(g.tracked).toBeLessThanOrEqual(64);
    }
  });
});
