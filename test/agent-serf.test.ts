import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { SerfRace } from './lib/serf.js';

// kill -9 detection, our agent next to HashiCorp serf (Debian package), same 5 namespace hosts,
// both LAN profile, killed at the same instant, observed by the same four survivors. The test
// asserts that both detect it; the times are a benchmark (bash bench/run.sh serf) and this test
// writes nothing.
const N = 5;
const TRIALS = 3;

describe('kill -9 detection: our agent and serf side by side', () => {
  let tb: Testbed;
  let race: SerfRace;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: N, prefix: 'srf' });
    race = new SerfRace(tb);
    await race.start();
  }, 120_000);
  afterAll(async () => {
    await race?.stop();
    await tb?.destroy();
  });

  it('both detect the killed node within 2 minutes, trial after trial', async () => {
    for (let t = 0; t < TRIALS; t++) {
      expect(await race.converged()).toBe(true);
      await new Promise((r) => setTimeout(r, 3000)); // settle
      const r = await race.trial(N - 1);
      console.log(`trial ${t + 1}: ours ${r.oursMs} ms, serf ${r.serfMs} ms`);
      expect(r.oursMs).toBeGreaterThan(0);
      expect(r.serfMs).toBeGreaterThan(0);
    }
  }, 600_000);
});
