import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PairTable, parseIpAddress } from '@overlay/dataplane';
import { Ipv6Neighbours } from '../src/neighbours.js';

/**
 * The hash tables against a slow reference (a Map keyed by strings): random operation
 * sequences with few distinct keys (so removes and re-inserts collide) and small capacities
 * (so tables grow and probe chains wrap around the end).
 */
type Op = { kind: 'insert' | 'remove' | 'find'; a: number; b: number; v: number };

const op = (keys: number) =>
  fc.record({
    kind: fc.constantFrom('insert', 'remove', 'find', 'insert') as fc.Arbitrary<Op['kind']>,
    a: fc.integer({ min: 0, max: keys }).map((x) => (x * 0x9e3779b1) | 0),
    b: fc.integer({ min: 0, max: keys }).map((x) => x - 2),
    v: fc.integer(),
  });

describe('PairTable', () => {
  it('behaves like a Map under random inserts, removes and lookups', () => {
    fc.assert(
      fc.property(fc.array(op(12), { maxLength: 400 }), fc.integer({ min: 1, max: 300 }), (ops, max) => {
        const t = new PairTable(max, 16);
        const ref = new Map<string, number>();
        for (const { kind, a, b, v } of ops) {
          const k = `${a}/${b}`;
          if (kind === 'insert') {
            const i = t.insert(a, b);
            if (!ref.has(k) && ref.size >= max) {
              expect(i).toBe(-1);
              continue;
            }
            expect(i).toBeGreaterThanOrEqual(0);
            t.va[i] = v;
            ref.set(k, v);
          } else if (kind === 'remove') {
            expect(t.remove(a, b)).toBe(ref.delete(k));
          } else {
            const i = t.find(a, b);
            expect(i >= 0 ? t.va[i] : undefined).toBe(ref.get(k));
          }
          expect(t.size).toBe(ref.size);
        }
        // Every entry is still reachable and nothing extra is stored.
        let used = 0;
        for (let i = 0; i < t.capacity; i++) if (t.used[i]) used++;
        expect(used).toBe(ref.size);
        for (const [k, v] of ref) {
          const [a, b] = k.split('/').map(Number);
          expect(t.va[t.find(a, b)]).toBe(v);
        }
      }),
      { numRuns: 500, seed: 0x7ab1e },
    );
  });

  it('keeps load at or below one half', () => {
    const t = new PairTable(10_000, 16);
    for (let i = 0; i < 5000; i++) t.insert(i, -i);
    expect(t.size).toBe(5000);
    expect(t.capacity).toBeGreaterThanOrEqual(10_000);
    for (let i = 0; i < 5000; i += 2) t.remove(i, -i);
    for (let i = 0; i < 5000; i++) expect(t.find(i, -i) >= 0).toBe(i % 2 === 1);
  });
});

describe('Ipv6Neighbours', () => {
  it('behaves like a Map keyed by address, including addresses that share an interface id', () => {
    const addr = fc
      .tuple(fc.constantFrom('2001:db8::', 'fe80::', '2001:db8:1::', 'fd00::'), fc.integer({ min: 1, max: 6 }))
      .map(([p, i]) => `${p}${i.toString(16)}`);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('set', 'delete', 'find'), addr, fc.integer({ min: 0, max: 0xffff })), { maxLength: 200 }), (ops) => {
        const t = new Ipv6Neighbours(1000);
        const ref = new Map<string, number>();
        for (const [kind, a, mac] of ops) {
          const ip = parseIpAddress(a);
          if (kind === 'set') {
            expect(t.set(ip, 0x0200, mac)).toBe(true);
            ref.set(a, mac);
          } else if (kind === 'delete') {
            expect(t.delete(ip)).toBe(ref.delete(a));
          } else {
            const e = t.find(ip.bytes, 0);
            expect(e >= 0 ? t.lo(e) : undefined).toBe(ref.get(a));
            if (e >= 0) expect(t.hi(e)).toBe(0x0200);
          }
          expect(t.size).toBe(ref.size);
        }
      }),
      { numRuns: 300, seed: 0x6 },
    );
  });
});
