import { describe, expect, it } from 'vitest';
import { BroadcastQueue } from '../src/broadcast.js';
import { GossipQueues, MEMBERS_CLASS, RECORDS_CLASS } from '../src/gossip-queues.js';

const BUDGET = 1300;
const N = 1000;
const field = (size: number, tag: number) => new Uint8Array(size).fill(tag);

/**
 * Churn: every packet, `fresh` new membership items (never sent, so they go first in a queue
 * ordered by transmit count) arrive while a backlog of records waits.
 */
function churn(take: (out: Uint8Array[]) => void, queueMember: (k: string, b: Uint8Array) => void, packets: number, fresh: number): { m: number; r: number } {
  let m = 0;
  let r = 0;
  let k = 0;
  for (let p = 0; p < packets; p++) {
    for (let i = 0; i < fresh; i++) queueMember(`n:${k++}`, field(90, 1));
    const out: Uint8Array[] = [];
    take(out);
    for (const b of out) (b[0] === 1 ? (m += b.length) : (r += b.length));
  }
  return { m, r };
}

describe('GossipQueues: one packet budget shared by membership and records', () => {
  it('records keep their share under membership churn that starves them in one shared queue', () => {
    // One queue for both (memberlist's behaviour: the freshest membership news always first).
    const one = new BroadcastQueue(4);
    for (let i = 0; i < 500; i++) one.queue(`r:${i}`, field(200, 2));
    one.take(BUDGET * 100, N); // every record sent once: now behind any never-sent item
    const before = churn((out) => one.take(BUDGET, N, out), (k, b) => one.queue(k, b), 200, 20);
    expect(before.r / (before.m + before.r)).toBeLessThan(0.05);

    const q = new GossipQueues({ retransmitMult: 4 });
    for (let i = 0; i < 500; i++) q.queue(`r:${i}`, field(200, 2), 'blue');
    q.take(BUDGET * 100, N);
    const after = churn((out) => q.take(BUDGET, N, out), (k, b) => q.queue(k, b), 200, 20);
    const share = after.r / (after.m + after.r);
    expect(share).toBeGreaterThan(0.4);
    expect(share).toBeLessThan(0.6);
    expect(q.taken[RECORDS_CLASS]).toBeGreaterThan(0);
  });

  it('membership keeps its share under a flood of records', () => {
    const q = new GossipQueues({ retransmitMult: 4 });
    let m = 0;
    let r = 0;
    for (let p = 0; p < 200; p++) {
      for (let i = 0; i < 20; i++) q.queue(`r:${p}-${i}`, field(200, 2), 'blue');
      if (p % 2 === 0) q.queue(`n:${p}`, field(90, 1));
      for (let i = 0; i < 3; i++) q.queue(`n:churn-${p}-${i}`, field(90, 1));
      for (const b of q.take(BUDGET, N)) (b[0] === 1 ? (m += b.length) : (r += b.length));
    }
    expect(m / (m + r)).toBeGreaterThan(0.4);
  });

  it('never puts one item twice in a packet, and never exceeds the budget', () => {
    const q = new GossipQueues({ retransmitMult: 4 });
    for (let p = 0; p < 300; p++) {
      for (let i = 0; i < (p % 7); i++) q.queue(`n:${(p * 7 + i) % 50}`, field(30 + ((p * 13 + i) % 200), 1));
      for (let i = 0; i < (p % 5); i++) q.queue(`r:${(p * 5 + i) % 60}`, field(40 + ((p * 17 + i) % 500), 2), i % 2 ? 'blue' : 'red');
      const budget = 200 + ((p * 37) % 1200);
      const out = q.take(budget, 50);
      expect(new Set(out).size).toBe(out.length);
      expect(out.reduce((s, b) => s + b.length, 0)).toBeLessThanOrEqual(budget);
    }
  });

  it('weights set the split', () => {
    const q = new GossipQueues({ retransmitMult: 100, weights: [1, 3] });
    for (let i = 0; i < 400; i++) {
      q.queue(`n:${i}`, field(50, 1));
      q.queue(`r:${i}`, field(50, 2), 'blue');
    }
    for (let p = 0; p < 20; p++) q.take(1000, N);
    const share = q.taken[RECORDS_CLASS] / (q.taken[MEMBERS_CLASS] + q.taken[RECORDS_CLASS]);
    expect(share).toBeGreaterThan(0.7);
    expect(share).toBeLessThan(0.8);
  });

  it('an item larger than its class share goes out once credit has accumulated', () => {
    const q = new GossipQueues({ retransmitMult: 4 });
    q.queue('r:big', field(900, 2), 'blue'); // share is 650 of 1300
    let sentBig = -1;
    for (let p = 0; p < 10 && sentBig < 0; p++) {
      for (let i = 0; i < 20; i++) q.queue(`n:${p}-${i}`, field(90, 1));
      if (q.take(BUDGET, N).some((b) => b.length === 900)) sentBig = p;
    }
    expect(sentBig).toBeGreaterThanOrEqual(0);
    expect(sentBig).toBeLessThanOrEqual(2);
  });

  it('an idle class leaves the whole budget to the other', () => {
    const q = new GossipQueues({ retransmitMult: 4 });
    for (let i = 0; i < 20; i++) q.queue(`n:${i}`, field(100, 1));
    expect(q.take(1250, N).reduce((s, b) => s + b.length, 0)).toBe(1200); // 12 of 100 fit
    for (let i = 0; i < 20; i++) q.queue(`r:${i}`, field(100, 2), 'blue');
    expect(q.take(1250, N).reduce((s, b) => s + b.length, 0)).toBe(1200); // both classes: still full
  });

  it('a destination gets only records of networks it accepts; retransmits follow the network size', () => {
    const q = new GossipQueues({ retransmitMult: 1 });
    q.queue('r:a', field(40, 3), 'blue');
    q.queue('r:b', field(40, 4), 'red');
    const onlyRed = { accepts: (n: string) => n === 'red', sizeOf: () => 9 };
    expect(q.take(BUDGET, N, [], onlyRed).map((b) => b[0])).toEqual([4]);
    expect(q.recordsQueued('red')).toBe(0); // limit 1 × ceil(log10(10)) = 1 at network size 9
    expect(q.recordsQueued('blue')).toBe(1);
    expect(q.networksWithNews()).toEqual(['blue']);
    expect(q.take(BUDGET, N, [], onlyRed)).toEqual([]);
    expect(q.take(BUDGET, N).map((b) => b[0])).toEqual([3]);
  });
});
