// RFC 6479 window: exact behaviour checked against a naive set-based reference model.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReplayWindow, REPLAY_WINDOW } from '../src/replay.js';

class Reference {
  private seen = new Set<number>();
  private last = -1;
  accept(c: number): boolean {
    if (c > this.last) {
      this.last = c;
      this.seen.add(c);
      return true;
    }
    if (this.last - c >= REPLAY_WINDOW || this.seen.has(c)) return false;
    this.seen.add(c);
    return true;
  }
}

describe('ReplayWindow', () => {
  it('is at least as wide as wireguard-go (8128)', () => {
    expect(REPLAY_WINDOW).toBeGreaterThanOrEqual(8128);
  });

  it('accepts each counter once, in any order within the window', () => {
    const w = new ReplayWindow();
    expect(w.accept(0)).toBe(true);
    expect(w.accept(0)).toBe(false);
    expect(w.accept(5)).toBe(true);
    expect(w.accept(3)).toBe(true);
    expect(w.accept(3)).toBe(false);
    expect(w.accept(5 + REPLAY_WINDOW)).toBe(true);
    expect(w.accept(5)).toBe(false); // fell out of the window
    expect(w.accept(6)).toBe(true); // just inside
  });

  it('survives jumps larger than the window', () => {
    const w = new ReplayWindow();
    w.accept(10);
    expect(w.accept(1_000_000)).toBe(true);
    expect(w.accept(1_000_000 - 1)).toBe(true);
    expect(w.accept(10)).toBe(false);
    expect(w.accept(2 ** 40)).toBe(true);
    expect(w.accept(2 ** 40 - 3)).toBe(true);
    expect(w.accept(2 ** 40 - 3)).toBe(false);
  });

  it('matches the reference model on random sequences', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.nat(20_000), fc.integer({ min: -40, max: 40 })), { maxLength: 400 }), (steps) => {
        const w = new ReplayWindow();
        const r = new Reference();
        let base = 0;
        for (const s of steps) {
          // Mix absolute counters and small moves around a drifting base.
          const c = s >= 0 && s > 40 ? s : Math.max(0, base + s);
          base = Math.max(base, c);
          if (w.accept(c) !== r.accept(c)) return false;
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});
