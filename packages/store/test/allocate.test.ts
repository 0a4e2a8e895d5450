import { describe, expect, it } from 'vitest';
import { Keys, LeaseKeeper, MemoryStore, allocate, probeOrder } from '../src/index.js';
import { allocateVips } from '../../agent/src/services-vip.js';

const keys = new Keys('alloc');
const enc = new TextEncoder();
const dec = new TextDecoder();

describe('compare-and-set allocation', () => {
  it('a name lands where the agent’s gossip rule puts it when nothing collides', () => {
    for (const name of ['web', 'db', 'cache', 'api', 'a-much-longer-service-name']) {
      for (const subnet of ['198.19.0.0/24', '198.19.8.0/22', '198.19.1.0/30']) {
        expect(probeOrder(subnet, name).next().value).toBe(allocateVips(subnet, [name]).get(name));
      }
    }
    expect([...probeOrder('198.19.1.0/30', 'x')].sort()).toEqual(['198.19.1.1', '198.19.1.2']);
    expect(() => probeOrder('198.19.1.0/31', 'x').next()).toThrow(expect.objectContaining({ code: 'STORE_UNSUPPORTED' }));
  });

  it('concurrent allocators never hand out one address twice; the loser probes on; a full range says undefined', async () => {
    const s = new MemoryStore({ sweepMs: 0 });
    // 6 usable addresses (the upper half of a /28 without broadcast is 7: .8-.14), 10 names from 3 "hosts" at once.
    const names = Array.from({ length: 10 }, (_, i) => `svc-${i}`);
    const got = await Promise.all(names.map((name, i) => allocate(s, { keys, network: 'net-a', subnet: '198.19.0.0/28', name, value: enc.encode(`host-${i % 3} ${name}`) })));
    const won = got.filter((g) => g !== undefined);
    // Everyone after the range filled probed past all 7 taken addresses.
    expect(won.length).toBe(7);
    expect(new Set(won.map((g) => g!.address)).size).toBe(7);
    expect(got.filter((g) => g === undefined).length).toBe(3);
    const stored = (await s.list(keys.prefix('vips', 'net-a'))).entries;
    expect(stored.map((e) => e.key).sort()).toEqual(won.map((g) => g!.key).sort());
    // Re-allocating a name that holds an address finds it again (isMine), taken addresses are skipped.
    const first = won[0]!;
    const owner = dec.decode((await s.get(first.key))!.value);
    const again = await allocate(s, { keys, network: 'net-a', subnet: '198.19.0.0/28', name: owner.split(' ')[1], value: enc.encode(owner), isMine: (v) => dec.decode(v) === owner });
    expect(again?.address).toBe(first.address);
    await s.close();
  });

  it('two names that hash to one address: both allocated at once, the loser of the CAS takes the next one', async () => {
    const s = new MemoryStore({ sweepMs: 0 });
    const start = (n: string) => probeOrder('198.19.0.0/24', n).next().value;
    const seen = new Map<string, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const n = `svc-${i}`;
      const other = seen.get(start(n)!);
      if (other) pair = [other, n];
      seen.set(start(n)!, n);
    }
    const [a, b] = await Promise.all(pair.map((name) => allocate(s, { keys, network: 'net-a', subnet: '198.19.0.0/24', name, value: enc.encode(name) })));
    expect(a!.address).toBe(start(pair[0]));
    expect(a!.collisions).toBe(0);
    expect(b!.collisions).toBe(1);
    expect(b!.address).toBe([...probeOrder('198.19.0.0/24', pair[1])][1]);
    await s.close();
  });
});

describe('lease keeper', () => {
  it('refreshes, and when the lease is lost grants a new one and has the owner write again', async () => {
    let t = 0;
    const s = new MemoryStore({ now: () => t, sweepMs: 0 });
    let writes = 0;
    const k = new LeaseKeeper(s, {
      ttlMs: 10_000,
      intervalMs: 20,
      onLease: async (l) => {
        writes++;
        await s.put(keys.endpoint('net-a', 'n1', 'e1'), enc.encode('x'), { lease: l.id });
      },
    });
    const first = await k.start();
    const wait = (pred: () => boolean) => new Promise<void>((res, rej) => {
      const end = Date.now() + 5000;
      const poll = () => (pred() ? res() : Date.now() > end ? rej(new Error('timeout')) : setTimeout(poll, 10));
      poll();
    });
    await wait(() => k.counters.refreshes >= 2);
    t = 9_000;
    await wait(() => k.counters.refreshes >= 4);
    t = 18_000; // refreshed at 9 000: not expired
    expect(await s.get(keys.endpoint('net-a', 'n1', 'e1'))).toBeDefined();
    await s.revokeLease(first.id); // lost (as after a long partition): the keeper must notice
    expect(await s.get(keys.endpoint('net-a', 'n1', 'e1'))).toBeUndefined();
    await wait(() => k.counters.lost === 1 && writes === 2);
    expect(k.lease!.id).not.toBe(first.id);
    expect((await s.get(keys.endpoint('net-a', 'n1', 'e1')))!.lease).toBe(k.lease!.id);
    await k.stop(true);
    expect(await s.get(keys.endpoint('net-a', 'n1', 'e1'))).toBeUndefined();
    await s.close();
  });
});
