import { describe, expect, it } from 'vitest';
import { MAGLEV_SIZE, flowHash, maglevTable } from '../src/vip/maglev.js';

const ids = (n: number, prefix = 'backend-') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** 10 000 fixed client 5-tuples (proto, client IP in 198.19/16, client port, VIP port). */
const FLOWS = Array.from({ length: 10_000 }, (_, i) => flowHash(i % 3 === 0 ? 17 : 6, (198 << 24) | (19 << 16) | ((i * 7919) & 0xffff), 1024 + ((i * 104729) % 60000), 80 + (i % 4)));

function owners(table: Int32Array, list: readonly string[]): string[] {
  return FLOWS.map((h) => list[table[h % MAGLEV_SIZE]]);
}

describe('maglev table', () => {
  it('is full and fair: every backend owns ⌊M/N⌋ or ⌈M/N⌉ entries (max − min ≤ 1 over 65537 slots)', () => {
    for (const n of [1, 2, 3, 7, 10, 50, 100]) {
      const t = maglevTable(ids(n));
      const counts = new Array<number>(n).fill(0);
      for (const b of t) counts[b]++;
      expect(counts.reduce((a, b) => a + b, 0)).toBe(MAGLEV_SIZE);
      const max = Math.max(...counts);
      const min = Math.min(...counts);
      // Maglev's population gives each backend ⌈M/N⌉ or ⌊M/N⌋ turns; the last round is partial.
      expect(max - min, `n=${n}`).toBeLessThanOrEqual(1);
    }
  });

  it('depends on the set of ids, not their order', () => {
    const a = ids(9);
    const b = [...a].reverse();
    const ta = maglevTable(a);
    const tb = maglevTable(b);
    for (let k = 0; k < MAGLEV_SIZE; k += 97) expect(b[tb[k]]).toBe(a[ta[k]]);
  });

  it('an empty set gives -1 everywhere', () => {
    expect(maglevTable([]).every((x) => x === -1)).toBe(true);
  });

  it('removing 1 of N backends remaps at most 1/N + 2 % of 10 000 fixed flows (N = 2..40)', () => {
    for (const n of [2, 3, 5, 8, 13, 20, 40]) {
      const all = ids(n, 'svc-a/');
      const before = owners(maglevTable(all), all);
      for (const gone of [0, Math.floor(n / 2), n - 1]) {
        const rest = all.filter((_, i) => i !== gone);
        const after = owners(maglevTable(rest), rest);
        let moved = 0;
        for (let i = 0; i < FLOWS.length; i++) if (before[i] !== after[i]) moved++;
        // Flows of the removed backend must move (≈ 1/N); the rest should almost all stay.
        const own = before.filter((o) => o === all[gone]).length;
        expect(moved).toBeGreaterThanOrEqual(own);
        expect(moved / FLOWS.length, `n=${n} gone=${gone}`).toBeLessThanOrEqual(1 / n + 0.02);
      }
    }
  });

  it('adding a backend back restores the original table', () => {
    const all = ids(6);
    const t1 = maglevTable(all);
    maglevTable(all.slice(1));
    expect(Buffer.from(maglevTable(all).buffer).equals(Buffer.from(t1.buffer))).toBe(true);
  });
});
