import { describe, expect, it } from 'vitest';
import { BufferPool, InvalidConfigError, PacketBatch } from '@overlay/dataplane';
import { createTestnet, seededRandom, type TestnetOptions } from '@overlay/dataplane/testing';

/** Send `n` numbered datagrams from A to B; return the sequence numbers B received, in order. */
async function run(o: TestnetOptions, n: number, poolCount = 4096): Promise<{ got: number[]; stats: ReturnType<typeof createTestnet>['stats'] }> {
  const net = createTestnet(o);
  const a = net.transport('198.18.0.1', 5000);
  const b = net.transport('198.18.0.2', 5000);
  const poolA = new BufferPool({ count: 64, frameCapacity: 64 });
  const poolB = new BufferPool({ count: poolCount, frameCapacity: 64 });
  const got: number[] = [];
  a.start(poolA, () => {});
  b.start(poolB, (batch) => {
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      got.push(poolB.data.readUInt32BE(poolB.off[s]));
      expect(poolB.family[s]).toBe(4);
      expect([...poolB.addr.subarray(s * 16, s * 16 + 4)]).toEqual([198, 18, 0, 1]);
      expect(poolB.port[s]).toBe(5000);
      poolB.release(s);
    }
  });
  const batch = new PacketBatch(1);
  for (let i = 0; i < n; i++) {
    const s = poolA.acquire();
    const p = Buffer.alloc(8);
    p.writeUInt32BE(i, 0);
    poolA.fill(s, p);
    poolA.setEndpoint(s, 4, Uint8Array.of(198, 18, 0, 2), 5000);
    batch.clear();
    batch.push(s);
    expect(a.send(poolA, batch)).toBe(1);
    poolA.release(s);
  }
  await net.idle();
  return { got, stats: net.stats };
}

describe('in-memory underlay (testnet)', () => {
  it('delivers everything in order without impairments', async () => {
    const { got, stats } = await run({}, 500);
    expect(got).toEqual([...Array(500).keys()]);
    expect(stats).toMatchObject({ sent: 500, delivered: 500, lost: 0 });
  });

  it('loses, duplicates and reorders at roughly the configured rates, reproducibly per seed', async () => {
    const o = { loss: 0.1, duplicate: 0.1, reorder: 0.2, seed: 42 };
    const r1 = await run(o, 2000);
    const r2 = await run(o, 2000);
    expect(r1.stats).toEqual(r2.stats);
    const { lost, duplicated, reordered } = r1.stats;
    expect(lost).toBeGreaterThan(120);
    expect(lost).toBeLessThan(280);
    expect(duplicated).toBeGreaterThan(100);
    expect(duplicated).toBeLessThan(260);
    expect(reordered).toBeGreaterThan(250);
    expect(r1.got.length).toBe(2000 - lost + duplicated);
    expect(new Set(r1.got).size).toBe(2000 - lost);
    const inversions = r1.got.filter((v, i) => i > 0 && v < r1.got[i - 1]).length;
    expect(inversions).toBeGreaterThan(0);
    const r3 = await run({ ...o, seed: 43 }, 2000);
    expect(r3.stats).not.toEqual(r1.stats);
  });

  it('delays delivery by delayMs', async () => {
    const t0 = Date.now();
    const { got } = await run({ delayMs: 30 }, 10);
    expect(got).toHaveLength(10);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(29);
  });

  it('counts unreachable, oversized and pool-exhausted datagrams', async () => {
    const net = createTestnet({ mtu: 100 });
    const a = net.transport('198.18.0.1');
    const pool = new BufferPool({ count: 4, frameCapacity: 200 });
    a.start(pool, () => {});
    a.sendRaw(Buffer.alloc(72), { address: '198.18.0.1', port: 4789 });
    a.sendRaw(Buffer.alloc(73), { address: '198.18.0.1', port: 4789 });
    a.sendRaw(Buffer.alloc(10), { address: '198.18.0.9', port: 4789 });
    await net.idle();
    expect(net.stats).toMatchObject({ sent: 3, delivered: 1, tooBig: 1, unreachable: 1, poolExhausted: 0 });
    // The receiver holds every slot it gets: the 5th datagram finds the pool exhausted.
    const b = createTestnet();
    const t = b.transport('198.18.0.1');
    const small = new BufferPool({ count: 4, frameCapacity: 64 });
    t.start(small, () => {});
    for (let i = 0; i < 5; i++) t.sendRaw(Buffer.alloc(8), { address: '198.18.0.1', port: 4789 });
    await b.idle();
    expect(b.stats).toMatchObject({ delivered: 4, poolExhausted: 1 });
  });

  it('rejects bad options and double binds with typed errors; the RNG is deterministic', () => {
    expect(() => createTestnet({ loss: 2 })).toThrow(InvalidConfigError);
    expect(() => createTestnet({ delayMs: -1 })).toThrow(InvalidConfigError);
    const net = createTestnet();
    net.transport('198.18.0.1');
    expect(() => net.transport('198.18.0.1')).toThrow(InvalidConfigError);
    const r1 = seededRandom(7);
    const r2 = seededRandom(7);
    const xs = Array.from({ length: 5 }, r1);
    expect(xs).toEqual(Array.from({ length: 5 }, r2));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});
