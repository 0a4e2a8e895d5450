import { describe, expect, it } from 'vitest';
import { compareTai64n, tai64n, Tai64nStamper } from '../src/tai64n.js';

describe('TAI64N', () => {
  it('encodes 2^62 + 10 + seconds, then nanoseconds (big-endian)', () => {
    const t = tai64n(1_700_000_000_123.456);
    expect(t.readBigUInt64BE(0)).toBe(0x400000000000000an + 1_700_000_000n);
    expect(t.readUInt32BE(8)).toBe(123_456_000);
  });

  it('stamps strictly increase even when the clock stands still or steps back', () => {
    let ms = 1_700_000_000_000;
    const s = new Tai64nStamper(() => ms);
    let prev = s.next();
    for (let i = 0; i < 2000; i++) {
      if (i % 3 === 0) ms -= 5; // a clock step backwards
      const t = s.next();
      expect(compareTai64n(t, prev)).toBe(1);
      prev = t;
    }
  });
});
