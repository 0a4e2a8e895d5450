/**
 * A large policy compiled in a worker (compile-off-thread.ts): the tables it hands back are the
 * ones a compile on the main thread builds, verdict for verdict, and the main thread is free
 * while the worker compiles.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { buildTables, type PolicyTables } from '../src/policy/compile-tables.js';
import { OFF_THREAD_MIN_RULES, type PreparedPolicy } from '../src/policy/compile-off-thread.js';
import { PolicyFilter, type FlowQuery } from '../src/policy/filter.js';
import { IdentityTable } from '../src/policy/identity.js';
import { PolicyError, type Policy, type PolicyRule } from '../src/policy/rules.js';

/** A seeded generator (mulberry32), so a failure names its case. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` rules over 40 groups, IPv4 and IPv6 CIDRs, TCP/UDP ports and ranges, ICMP types, any-protocol rules. */
function mixedPolicy(n: number, seed: number): Policy {
  const r = rng(seed);
  const pick = (k: number) => Math.floor(r() * k);
  const side = () => {
    const x = r();
    if (x < 0.05) return undefined;
    if (x < 0.55) return { groups: [`g${pick(40)}`, ...(r() < 0.3 ? [`g${pick(40)}`] : [])] };
    if (x < 0.85) {
      const len = 24 + pick(9);
      return { cidrs: [`198.19.${pick(8)}.${pick(256) & (0xff << (32 - len)) & 0xff}/${len}`] };
    }
    return { cidrs: [`2001:db8::${pick(16).toString(16)}00/${120 + pick(9)}`] };
  };
  const tiers: Record<'admin' | 'network' | 'service', PolicyRule[]> = { admin: [], network: [], service: [] };
  for (let i = 0; i < n; i++) {
    const x = r();
    const base = { id: `r${i}`, action: r() < 0.3 ? 'deny' : 'allow', from: side(), to: side() } as PolicyRule;
    const rule: PolicyRule =
      x < 0.6
        ? { ...base, proto: r() < 0.7 ? 'tcp' : 'udp', ports: [r() < 0.8 ? String(1 + pick(2000)) : `${1000 + pick(500)}-${1500 + pick(500)}`] }
        : x < 0.8
          ? { ...base, proto: 'icmp', icmpTypes: [[0, 3, 8, 11][pick(4)]] }
          : x < 0.9
            ? { ...base, proto: 'tcp' }
            : { ...base, from: { groups: [`g${pick(40)}`] }, to: { groups: [`g${pick(40)}`] } };
    tiers[i % 10 === 0 ? 'admin' : i % 10 < 8 ? 'network' : 'service'].push(rule);
  }
  return { defaultAction: 'deny', tiers };
}

function identity(): IdentityTable {
  const id = new IdentityTable();
  for (let i = 0; i < 200; i++) id.set(`198.19.${i % 8}.${i}`, [`g${i % 40}`, `g${(i * 7) % 40}`]);
  for (let i = 0; i < 50; i++) id.set(`2001:db8::${i.toString(16)}`, [`g${i % 40}`]);
  return id;
}

/** The compiled policy's tables as fields of the CompiledPolicy (the same names as PolicyTables). */
function tablesOf(f: PolicyFilter, keys: readonly string[]): Record<string, unknown> {
  const c = f.compiled as unknown as Record<string, unknown>;
  return Object.fromEntries(keys.map((k) => [k, c[k]]));
}

describe('a policy compiled off the event loop', () => {
  it('gives the tables and the verdicts of a compile on the main thread (3 000 mixed rules, 3 seeds)', async () => {
    for (const seed of [1, 2, 3]) {
      const policy = mixedPolicy(3000, seed);
      const id = identity();
      const inPlace = new PolicyFilter({ policy, identity: id, timers: false });
      const offThread = new PolicyFilter({ policy: { defaultAction: 'allow', tiers: {} }, identity: id, timers: false });
      const prepared = await offThread.preparePolicy(policy);
      expect(prepared.offThread).toBe(true);
      expect(prepared.built).toBeDefined();
      offThread.installPolicy(prepared);
      const keys = Object.keys(buildTables([], () => 0) as PolicyTables);
      expect(keys.length).toBeGreaterThan(20);
      expect(tablesOf(offThread, keys)).toEqual(tablesOf(inPlace, keys));
      expect(offThread.compiled.cellCount).toBeGreaterThan(100);

      const r = rng(seed + 100);
      const decided = new Set<string>();
      const actions = new Set<string>();
      for (let i = 0; i < 2000; i++) {
        const v6 = r() < 0.2;
        const addr = () => (v6 ? `2001:db8::${Math.floor(r() * 4096).toString(16)}` : `198.19.${Math.floor(r() * 8)}.${Math.floor(r() * 256)}`);
        const k = r();
        const q: FlowQuery = k < 0.7 ? { src: addr(), dst: addr(), proto: r() < 0.7 ? 'tcp' : 'udp', port: 1 + Math.floor(r() * 2100) } : k < 0.9 && !v6 ? { src: addr(), dst: addr(), proto: 'icmp', icmpType: [0, 3, 8, 11][Math.floor(r() * 4)] } : { src: addr(), dst: addr(), proto: 47 };
        const { generation: _g1, ...a } = inPlace.explain(q);
        const { generation: _g2, ...b } = offThread.explain(q);
        expect(b, `seed ${seed} query ${JSON.stringify(q)}`).toEqual(a);
        decided.add(a.ruleId ?? 'default');
        actions.add(a.action);
      }
      // The queries meet many rules and both actions (not one early rule or the default for all).
      expect(decided.size).toBeGreaterThan(50);
      expect([...actions].sort()).toEqual(['allow', 'deny']);
    }
  }, 120_000);

  it('a large bad policy is refused by the worker with the PolicyError and path validation gives', async () => {
    const bad = mixedPolicy(OFF_THREAD_MIN_RULES * 2, 5);
    bad.tiers.network![100] = { id: 'bad', action: 'allow', proto: 'tcp', ports: ['70000'] };
    const f = new PolicyFilter({ policy: { defaultAction: 'deny', tiers: {} }, timers: false });
    let inPlace: unknown;
    try {
      f.setPolicy(bad);
    } catch (e) {
      inPlace = e;
    }
    expect(inPlace).toBeInstanceOf(PolicyError);
    const e = await f.preparePolicy(bad).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(PolicyError);
    expect(e).toMatchObject({ code: 'OVL_ERR_POLICY', path: (inPlace as PolicyError).path, message: (inPlace as PolicyError).message });
    expect(f.compiled.size).toBe(0);
  }, 60_000);

  it('a small policy compiles in place; a bad one is refused before any worker starts', async () => {
    const f = new PolicyFilter({ policy: { defaultAction: 'deny', tiers: {} }, timers: false });
    const small = await f.preparePolicy(mixedPolicy(OFF_THREAD_MIN_RULES - 1, 9));
    expect(small.offThread).toBe(false);
    expect(small.built).toBeUndefined();
    f.installPolicy(small);
    expect(f.compiled.size).toBe(OFF_THREAD_MIN_RULES - 1);
    await expect(f.preparePolicy({ defaultAction: 'deny', tiers: { network: [{ id: 'bad', action: 'allow', proto: 'tcp', ports: ['70000'] }] } })).rejects.toMatchObject({ code: 'OVL_ERR_POLICY' });
    expect(f.compiled.size).toBe(OFF_THREAD_MIN_RULES - 1);
  });

  it('leaves the event loop free while 10 000 rules compile (its longest stall well under a compile in place)', async () => {
    const policy = mixedPolicy(10_000, 7);
    const f = new PolicyFilter({ policy: { defaultAction: 'deny', tiers: {} }, timers: false });
    f.setPolicy(policy); // warm: the in-place compile below runs optimized code, the harder comparison
    // A ticker every 2 ms records the longest gap between its runs: how long the loop (every
    // network's packets) was held in one stretch. A compile in place is one stretch as long as
    // the compile; off the loop, this thread only sends the policy and takes the rules and tables
    // back, in separate callbacks. The machine's load stretches both alike.
    const stalls = async (work: () => unknown): Promise<{ maxGap: number; ticks: number }> => {
      let last = performance.now();
      let maxGap = 0;
      let ticks = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
        ticks++;
      }, 2);
      await new Promise((r) => setTimeout(r, 20));
      await work();
      await new Promise((r) => setTimeout(r, 20));
      clearInterval(timer);
      return { maxGap: Math.max(maxGap, performance.now() - last), ticks };
    };
    const inPlace = await stalls(() => f.setPolicy(policy));
    let prepared: PreparedPolicy | undefined;
    const offThread = await stalls(async () => {
      prepared = await f.preparePolicy(policy);
    });
    f.installPolicy(prepared!);
    expect(prepared!.offThread).toBe(true);
    expect(f.compiled.size).toBe(10_000);
    const msg = `longest stall ${offThread.maxGap.toFixed(1)} ms off the loop (${offThread.ticks} ticks) vs ${inPlace.maxGap.toFixed(1)} ms in place`;
    console.log(msg);
    expect(offThread.ticks, msg).toBeGreaterThan(inPlace.ticks);
    expect(offThread.maxGap, msg).toBeLessThan(0.5 * inPlace.maxGap);
  }, 120_000);
});
