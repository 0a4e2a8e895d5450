import { describe, expect, it } from 'vitest';
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
});
