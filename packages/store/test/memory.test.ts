import { describe, expect, it } from 'vitest';
import { Keys, MemoryStore, StoreError, parseKey } from '../src/index.js';
import { type Harness, conformance, readUntil } from './conformance.js';

const keys = new Keys('mem');
const enc = new TextEncoder();
const dec = new TextDecoder();

function harness(): Harness {
  let t = 1_000_000;
  const store = new MemoryStore({ now: () => t, sweepMs: 0 });
  return {
    store,
    observer: store,
    prefix: keys.prefix('endpoints', 'net-a'),
    key: (i) => keys.endpoint('net-a', `node-${i % 3}`, `ep-${i}`),
    value: (i, n) => enc.encode(`value ${i}.${n}`),
    same: (a, b) => dec.decode(a) === dec.decode(b),
    history: true,
    settle: async () => {},
    compact: async () => store.compact(),
    lapse: async (ttl) => {
      t += ttl + 1;
      store.expireLeases();
    },
    leaseTtlMs: 10_000,
    close: () => store.close(),
  };
}

conformance('memory', async () => harness());

describe('memory store', () => {
  it('a lease lapses by the injected clock: not before its TTL, at it', async () => {
    let t = 0;
    const s = new MemoryStore({ now: () => t, sweepMs: 0 });
    const l = await s.grantLease(10_000);
    await s.put(keys.node('a'), enc.encode('x'), { lease: l.id });
    t = 6_000;
    expect(await s.keepAlive(l.id)).toBe(true);
    t = 15_999;
    expect(await s.get(keys.node('a'))).toBeDefined();
    t = 16_000;
    expect(await s.get(keys.node('a'))).toBeUndefined();
    await s.close();
  });

  it('a reader that falls behind the queue bound gets one resync instead of unbounded events', async () => {
    const s = new MemoryStore({ sweepMs: 0, watchQueueLimit: 50 });
    const w = s.watch(keys.root);
    for (let i = 0; i < 200; i++) await s.put(keys.node(`n${i % 20}`), enc.encode(String(i)));
    const evs = await readUntil(w, (e) => e.some((x) => x.type === 'resync'), 5_000);
    const rs = evs.find((e) => e.type === 'resync')!;
    expect(rs.type === 'resync' && rs.entries.length).toBe(20);
    expect(evs.length).toBeLessThanOrEqual(51);
    await s.close();
  });

  it('keys: builders validate, parse finds owner and network', () => {
    expect(keys.endpoint('net-a', 'node-1', 'ep')).toBe('/mem/v1/endpoints/net-a/node-1/ep');
    expect(parseKey('/mem/v1/endpoints/net-a/node-1/ep')).toMatchObject({ cluster: 'mem', area: 'endpoints', owner: 'node-1', network: 'net-a' });
    expect(parseKey('/mem/v1/vips/net-a/198.19.0.200')).toMatchObject({ area: 'vips', network: 'net-a' });
    expect(parseKey('/mem/v1/vips/net-a/198.19.0.200')!.owner).toBeUndefined();
    for (const bad of ['/mem/v2/nodes/a', '/mem/v1/nodes', '/mem/v1/endpoints/a/b', '/mem/v1/other/a', 'mem/v1/nodes/a', '/mem/v1/nodes/a b']) expect(parseKey(bad)).toBeUndefined();
    expect(() => keys.endpoint('net/a', 'n', 'e')).toThrow(StoreError);
    expect(() => keys.node('')).toThrow(expect.objectContaining({ code: 'STORE_BAD_KEY' }));
    expect(() => keys.prefix('endpoints', 'a', 'b', 'c')).toThrow(expect.objectContaining({ code: 'STORE_BAD_KEY' }));
    expect(Keys.fromPrefix('/overlay/').node('n')).toBe('/overlay/v1/nodes/n');
    expect(() => Keys.fromPrefix('/a/b/')).toThrow(expect.objectContaining({ code: 'STORE_BAD_KEY' }));
  });
});
