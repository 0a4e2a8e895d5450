import { describe, expect, it } from 'vitest';
import { SimCluster } from '../src/simcluster.js';
import { recordKey } from '../src/records.js';
import { ENDPOINT_KIND } from '../src/endpoints.js';

const blue = { name: 'blue', vni: 100 };

/**
 * Node 2 publishes before it joins and its broadcast is lost (dropped from its queue), so the
 * record reaches the seed only through the join's push-pull. Fresh news is gossiped on by the
 * seed; an old record learned the same way is not (a join must not re-spread a whole table).
 */
async function joinLate(ageMs: number) {
  const c = new SimCluster({ n: 3, seed: 4, networks: [blue] });
  const [a0, a1, a2] = c.agents;
  for (const a of c.agents) a.start();
  const j1 = a1.join([c.addrs[0]]);
  c.run(2000);
  await j1;
  a2.publish(blue, { id: 'late', mac: Uint8Array.of(2, 0, 0, 0, 0, 9) });
  a2.queue.drop(`r:${recordKey(ENDPOINT_KIND, 'blue', 'late')}`);
  c.run(ageMs);
  const j2 = a2.join([c.addrs[0]]);
  c.run(200);
  await j2;
  const queuedAtSeed = a0.queue.peek().some((b) => b.key === `r:${recordKey(ENDPOINT_KIND, 'blue', 'late')}`);
  const t = c.clock.runUntilTrue(() => a1.endpoint('blue', 'late') !== undefined, 10_000, 50);
  return { seedHas: a0.endpoint('blue', 'late') !== undefined, queuedAtSeed, t };
}

describe('records learned by push-pull', () => {
  it('fresh news that reached the seed only through a join is gossiped on at once', async () => {
    const r = await joinLate(0);
    expect(r.seedHas).toBe(true);
    expect(r.queuedAtSeed).toBe(true);
    expect(r.t).not.toBeNull();
    expect(r.t!).toBeLessThan(2_000);
  });

  it('a record signed long ago, learned by push-pull, is stored but not re-gossiped', async () => {
    const r = await joinLate(40_000);
    expect(r.seedHas).toBe(true);
    expect(r.queuedAtSeed).toBe(false);
  });
});
