import { describe, expect, it } from 'vitest';
import { SimCluster } from '@overlay/agent';

describe('joining through a seed that is not there yet', () => {
  for (const appearAtMs of [2_000, 20_000]) {
    it(`retries with backoff from ~1 s: seed appearing after ${appearAtMs / 1000} s is joined within the backoff in effect`, async () => {
      const took: number[] = [];
      for (const seed of [1, 2, 3, 4]) {
        const c = new SimCluster({ n: 2, seed });
        c.kill(0); // the seed is not running yet
        const a = c.agents[1];
        a.start();
        const ok = a.join([c.addrs[0]], 1000);
        c.run(1100);
        expect(await ok).toBe(0);
        c.run(appearAtMs - 1100);
        await c.restart(0, 0); // the seed process starts (joins nobody)
        const t = c.clock.runUntilTrue(() => a.membership.aliveCount() === 2, 60_000, 50);
        expect(t).toBeGreaterThanOrEqual(0);
        took.push(t);
      }
      console.log(`seed up after ${appearAtMs} ms: joined ${took.join(', ')} ms later`);
      // Backoff 1 s doubling, capped at 8 s, ±25 % jitter, plus one 1 s attempt timeout.
      const bound = Math.min(8_000, appearAtMs) * 1.25 + 1000 + 500;
      for (const t of took) expect(t).toBeLessThanOrEqual(bound);
    });
  }
});
