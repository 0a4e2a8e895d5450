import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BroadcastQueue } from '@overlay/agent';

describe('BroadcastQueue', () => {
  it('a newer broadcast about the same key replaces the older one', () => {
    const q = new BroadcastQueue(4);
    q.queue('e:a', Uint8Array.of(1));
    q.queue('e:b', Uint8Array.of(2));
    q.queue('e:a', Uint8Array.of(3));
    expect(q.size).toBe(2);
    expect(q.invalidated).toBe(1);
    const got = q.take(1000, 10).map((b) => b[0]);
    expect(got.sort()).toEqual([2, 3]);
  });

  it('sends each item at most mult × ceil(log10(N+1)) times', () => {
    const q = new BroadcastQueue(4);
    q.queue('x', Uint8Array.of(1));
    const n = 999; // limit = 4 × 3 = 12
    expect(q.limit(n)).toBe(12);
    let sent = 0;
    for (let i = 0; i < 50; i++) sent += q.take(100, n).length;
    expect(sent).toBe(12);
    expect(q.size).toBe(0);
  });

  it('respects the byte budget and prefers least-sent items', () => {
    const q = new BroadcastQueue(4);
    q.queue('a', new Uint8Array(600));
    q.queue('b', new Uint8Array(600));
    q.queue('c', new Uint8Array(600));
    const first = q.take(1300, 10);
    expect(first.length).toBe(2);
    const second = q.take(700, 10);
    expect(second.length).toBe(1);
    expect(first).not.toContain(second[0]);
  });

  it('sends never-sent items newest first, then moves them behind nothing older-sent', () => {
    const q = new BroadcastQueue(4);
    for (const k of ['a', 'b', 'c', 'd']) q.queue(k, new TextEncoder().encode(k));
    const dec = (bs: Uint8Array[]) => bs.map((b) => new TextDecoder().decode(b)).join('');
    expect(dec(q.take(2 + 15, 10))).toBe('dc'); // 2 bytes fit, 15 left over < 16: the packet is full
    q.queue('e', new TextEncoder().encode('e'));
    expect(dec(q.take(3 + 15, 10))).toBe('eba'); // every never-sent one before any sent once
    expect(q.peek().map((x) => `${x.key}${x.transmits}`).join(' ')).toBe('e1 b1 a1 d1 c1');
  });

  it('a dropped key is never sent; a dropped then requeued key is sent afresh', () => {
    const q = new BroadcastQueue(1);
    q.queue('a', Uint8Array.of(1));
    q.queue('b', Uint8Array.of(2));
    q.drop('a');
    q.drop('nope');
    expect(q.take(100, 9).map((b) => b[0])).toEqual([2]);
    q.queue('a', Uint8Array.of(3));
    expect(q.take(100, 9).map((b) => b[0])).toEqual([3]);
    expect(q.size).toBe(0);
  });

  // Random queue/drop/take sequences against a model of what may be sent.
  const op = fc.oneof(
    fc.record({ k: fc.constant('queue' as const), key: fc.integer({ min: 0, max: 12 }), size: fc.integer({ min: 1, max: 700 }) }),
    fc.record({ k: fc.constant('drop' as const), key: fc.integer({ min: 0, max: 12 }) }),
    fc.record({ k: fc.constant('take' as const), budget: fc.integer({ min: 0, max: 1400 }), n: fc.integer({ min: 1, max: 2000 }) }),
  );

  it('only sends current news, within the byte budget and the retransmit budget, and fills what fits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 200 }), (mult, ops) => {
        const q = new BroadcastQueue(mult);
        let version = 0;
        const current = new Map<number, Uint8Array>(); // key → bytes that may be sent
        const sends = new Map<Uint8Array, number>();
        let maxLimit = 0;
        for (const o of ops) {
          if (o.k === 'queue') {
            const b = new Uint8Array(o.size);
            b[0] = version++ & 0xff;
            current.set(o.key, b);
            q.queue(`k${o.key}`, b);
          } else if (o.k === 'drop') {
            current.delete(o.key);
            q.drop(`k${o.key}`);
          } else {
            const before = q.peek().map((x) => ({ bytes: x.bytes, transmits: x.transmits }));
            maxLimit = Math.max(maxLimit, q.limit(o.n));
            const got = q.take(o.budget, o.n);
            const used = got.reduce((s, b) => s + b.length, 0);
            expect(used).toBeLessThanOrEqual(o.budget);
            const live = new Set(current.values());
            for (const b of got) {
              expect(live.has(b)).toBe(true);
              sends.set(b, (sends.get(b) ?? 0) + 1);
              expect(sends.get(b)).toBeLessThanOrEqual(maxLimit);
            }
            // Greedy fill: unless the packet was full, nothing left out would have fit.
            if (o.budget - used >= 16) for (const x of before) if (!got.includes(x.bytes)) expect(x.bytes.length).toBeGreaterThan(o.budget - used);
            // Fewest-sent first: a left-out item that fit the whole budget was sent no fewer times than any taken one.
            const takenMax = Math.max(-1, ...before.filter((x) => got.includes(x.bytes)).map((x) => x.transmits));
            for (const x of before) if (!got.includes(x.bytes) && x.bytes.length + used <= o.budget) expect(x.transmits).toBeGreaterThanOrEqual(takenMax);
          }
          expect(q.size).toBeLessThanOrEqual(current.size);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('with equal sizes every packet carries the least-sent items, and each item goes out exactly its budget', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 500 }), (items, perPacket, n) => {
        const q = new BroadcastQueue(3);
        const limit = q.limit(n);
        for (let i = 0; i < items; i++) q.queue(`k${i}`, new Uint8Array(100).fill(i));
        const sent = new Map<number, number>();
        for (let round = 0; round < items * limit + 1 && q.size > 0; round++) {
          const before = q.peek();
          const got = q.take(perPacket * 100 + 15, n);
          expect(got.length).toBe(Math.min(perPacket, before.length));
          const taken = new Set(got.map((b) => b[0]));
          const tx = (x: (typeof before)[number]) => x.transmits;
          const takenMax = Math.max(...before.filter((x) => taken.has(x.bytes[0])).map(tx));
          const leftMin = Math.min(Infinity, ...before.filter((x) => !taken.has(x.bytes[0])).map(tx));
          expect(takenMax).toBeLessThanOrEqual(leftMin);
          for (const b of got) sent.set(b[0], (sent.get(b[0]) ?? 0) + 1);
        }
        expect(q.size).toBe(0);
        expect([...sent.values()]).toEqual(Array(items).fill(limit));
      }),
      { numRuns: 200 },
    );
  });
});
