import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_MEMBERS, Membership } from '../src/membership.js';
import { LAN } from '../src/presets.js';
import type { Clock } from '../src/env.js';
import type { AliveMsg, NodeMeta } from '../src/wire.js';

/** A clock that only moves when told; timers never fire on their own. */
function fakeClock(): Clock & { t: number } {
  const c = { t: 1_000_000, now: () => c.t, setTimeout: () => null, clearTimeout: () => {} };
  return c;
}
const meta = (i: number): NodeMeta => ({ signKey: new Uint8Array(32).fill(i & 0xff), vtep: '198.18.0.1', vtepPort: 4789, wgKey: '', wgPort: 0, pmin: 1, pmax: 2 });
const alive = (i: number, incarnation = 0): AliveMsg => ({ name: `n${i}`, incarnation, ip: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, port: 7946, meta: meta(i) });

function membership(maxMembers?: number) {
  const clock = fakeClock();
  const pinned: string[] = [];
  const m = new Membership({
    self: { name: 'self', ip: '198.18.0.1', port: 7946, meta: meta(0) },
    config: LAN,
    clock,
    random: () => 0.5,
    send: () => {},
    broadcast: () => {},
    acceptMeta: (name) => (pinned.push(name), true),
    maxMembers,
  });
  return { m, clock, pinned };
}

describe('membership cap', () => {
  it('refuses new names beyond the cap, counted, without pinning their keys; known members still update', () => {
    const { m, pinned } = membership(5);
    for (let i = 1; i <= 10; i++) m.handle({ ip: '198.18.0.9', port: 7946 }, { alive: alive(i) });
    expect(m.all().length).toBe(5); // self + n1..n4
    expect(m.counters.get('members_refused')).toBe(6);
    expect(pinned).toEqual(['n1', 'n2', 'n3', 'n4']);
    expect(m.get('n5')).toBeUndefined();
    // A known member's newer incarnation is applied as always.
    m.handle({ ip: '198.18.0.9', port: 7946 }, { alive: { ...alive(2, 3), ip: '198.18.0.42' } });
    expect(m.get('n2')).toMatchObject({ incarnation: 3, ip: '198.18.0.42', state: 'alive' });
    expect(m.counters.get('members_refused')).toBe(6);
  });

  it('holds for push-pull merges of every state, and reaping makes room again', () => {
    const { m, clock } = membership(4);
    m.merge(alive(1), 0);
    m.merge(alive(2), 1); // unknown suspect: learnt alive
    m.merge(alive(3), 2); // unknown dead: remembered as dead
    m.merge(alive(4), 3); // beyond the cap, as left
    m.merge(alive(5), 0);
    expect(m.all().map((x) => `${x.name}:${x.state}`).sort()).toEqual(['n1:alive', 'n2:alive', 'n3:dead', 'self:alive']);
    expect(m.counters.get('members_refused')).toBe(2);
    clock.t += 10_000;
    expect(m.reap(5_000)).toEqual(['n3']);
    m.merge(alive(5), 0);
    expect(m.get('n5')?.state).toBe('alive');
    expect(m.counters.get('members_refused')).toBe(2);
  });

  it('defaults to 10 000 members', () => {
    expect(DEFAULT_MAX_MEMBERS).toBe(10_000);
    const { m } = membership();
    for (let i = 1; i <= 10_050; i++) m.merge(alive(i), 0);
    expect(m.all().length).toBe(10_000);
    expect(m.counters.get('members_refused')).toBe(51);
  });
});

describe('membership cap through the agent', () => {
  it('AgentOptions.maxMembers reaches membership: a 6-node cluster capped at 4 keeps 4 per agent and counts the rest', async () => {
    const { SimCluster } = await import('../src/simcluster.js');
    const c = new SimCluster({ n: 6, seed: 3, extra: { maxMembers: 4 } });
    c.bootstrapAll();
    c.run(2000);
    for (const a of c.agents) {
      expect(a.membership.all().length).toBe(4);
      expect(a.membership.counters.get('members_refused')).toBeGreaterThan(0);
    }
  });
});

describe('probe bookkeeping', () => {
  it('an acked probe leaves nothing behind: pending acks stay bounded over 30 simulated minutes', async () => {
    const { SimCluster } = await import('../src/simcluster.js');
    const c = new SimCluster({ n: 3, seed: 9 });
    c.bootstrapAll();
    const pending = () => Math.max(...c.agents.map((a) => a.membership['prober'].acks.size));
    c.run(60_000);
    const early = pending();
    c.run(30 * 60_000);
    // About one probe a second each: a leak would hold ~1800 waits per agent by now.
    expect(pending()).toBeLessThanOrEqual(Math.max(early, 4));
    expect(c.agents.every((a) => a.membership.all().every((m) => m.state === 'alive'))).toBe(true);
  });
});
