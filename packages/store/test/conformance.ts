/**
 * One conformance suite for every EndpointStore: memory (memory.test.ts), etcd (etcd.test.ts) and
 * gossip (packages/agent/test/store-gossip.test.ts). A backend supplies a Harness: keys it may write,
 * values for them, and the few things only it can do (drop history, let a lease lapse).
 */
import { describe, expect, it } from 'vitest';
import { type EndpointStore, type KeyValue, type WatchEvent, MAX_VALUE_BYTES, isStoreError } from '../src/index.js';

export interface Harness {
  store: EndpointStore;
  /** What another node sees (gossip: another agent); memory and etcd: `store` itself. */
  observer: EndpointStore;
  /** Every key below starts with it. */
  prefix: string;
  /** The i-th writable key (0..5). */
  key(i: number): string;
  /** A value for key(i), variant n (distinct n: distinct values). */
  value(i: number, n: number): Uint8Array;
  /** Same content (gossip re-signs what it publishes; the others store bytes). */
  same(a: Uint8Array, b: Uint8Array): boolean;
  /** The store replays changes after a past revision (false: a watch from the past resyncs). */
  history: boolean;
  /** Let the observer catch up (gossip: run the simulation). */
  settle(): Promise<void>;
  /** Drop the store's history up to now. */
  compact?(): Promise<void>;
  /** Make the writer's lease lapse (no keep-alive, time passes) and return when it should have. */
  lapse(ttlMs: number): Promise<void>;
  /** Lease TTL the backend can use in a test. */
  leaseTtlMs: number;
  close(): Promise<void>;
}

/** Read events until `pred` holds on the list or `ms` pass (then return what came). */
export async function readUntil(it: AsyncIterator<WatchEvent>, pred: (evs: WatchEvent[]) => boolean, ms: number, tick?: () => Promise<void>): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  const end = Date.now() + ms;
  let pending: Promise<IteratorResult<WatchEvent>> | undefined;
  while (!pred(out) && Date.now() < end) {
    pending ??= it.next();
    const r = await Promise.race([pending, new Promise<'t'>((res) => setTimeout(() => res('t'), 20))]);
    if (r === 't') {
      await tick?.();
      continue;
    }
    pending = undefined;
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** Apply events to a view, as a consumer does: a resync replaces it. */
export function applyEvents(view: Map<string, Uint8Array>, evs: readonly WatchEvent[]): Map<string, Uint8Array> {
  for (const ev of evs) {
    if (ev.type === 'resync') {
      view.clear();
      for (const kv of ev.entries) view.set(kv.key, kv.value);
    } else if (ev.type === 'put') view.set(ev.key, ev.value);
    else view.delete(ev.key);
  }
  return view;
}

const toView = (entries: readonly KeyValue[]) => new Map(entries.map((kv) => [kv.key, kv.value]));

async function code(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return isStoreError(e) ? e.code : `not a StoreError: ${String(e)}`;
  }
  return undefined;
}

export function conformance(name: string, make: () => Promise<Harness>): void {
  describe(`EndpointStore conformance: ${name}`, () => {
    const withH = (title: string, fn: (h: Harness) => Promise<void>, timeout?: number) =>
      it(
        title,
        async () => {
          const h = await make();
          try {
            await fn(h);
          } finally {
            await h.close();
          }
        },
        timeout,
      );

    withH('put/get/list: revisions grow, list is sorted and complete, an update keeps the create revision', async (h) => {
      const s = h.store;
      const r0 = await s.put(h.key(2), h.value(2, 1));
      const r1 = await s.put(h.key(0), h.value(0, 1));
      const r2 = await s.put(h.key(1), h.value(1, 1));
      expect(r1).toBeGreaterThan(r0);
      expect(r2).toBeGreaterThan(r1);
      const g = await s.get(h.key(0));
      expect(g && h.same(g.value, h.value(0, 1))).toBe(true);
      expect(g!.revision).toBe(r1);
      const l = await s.list(h.prefix);
      expect(l.entries.map((e) => e.key)).toEqual([h.key(0), h.key(1), h.key(2)].sort());
      expect(l.revision).toBeGreaterThanOrEqual(r2);
      const r3 = await s.put(h.key(0), h.value(0, 2));
      const g2 = (await s.get(h.key(0)))!;
      expect(h.same(g2.value, h.value(0, 2))).toBe(true);
      expect(g2.revision).toBe(r3);
      expect(g2.createRevision).toBe(g!.createRevision);
      expect(await s.get(h.key(5))).toBeUndefined();
    });

    withH('delete: true once, then false; the key is gone from get and list', async (h) => {
      const s = h.store;
      await s.put(h.key(0), h.value(0, 1));
      await s.put(h.key(1), h.value(1, 1));
      expect(await s.delete(h.key(0))).toBe(true);
      expect(await s.delete(h.key(0))).toBe(false);
      expect(await s.get(h.key(0))).toBeUndefined();
      expect((await s.list(h.prefix)).entries.map((e) => e.key)).toEqual([h.key(1)]);
    });

    withH('compare-and-set: absent and by revision; a failure returns what is there', async (h) => {
      const s = h.store;
      const a = await s.compareAndSet(h.key(0), 'absent', h.value(0, 1));
      expect(a.ok).toBe(true);
      const b = await s.compareAndSet(h.key(0), 'absent', h.value(0, 2));
      expect(b.ok).toBe(false);
      expect(b.current && h.same(b.current.value, h.value(0, 1))).toBe(true);
      expect(b.current!.revision).toBe(a.revision);
      const c = await s.compareAndSet(h.key(0), a.revision, h.value(0, 3));
      expect(c.ok).toBe(true);
      const d = await s.compareAndSet(h.key(0), a.revision, h.value(0, 4));
      expect(d.ok).toBe(false);
      expect(h.same((await s.get(h.key(0)))!.value, h.value(0, 3))).toBe(true);
      expect((await s.compareAndSet(h.key(1), 12345, h.value(1, 1))).ok).toBe(false);
      expect(await s.get(h.key(1))).toBeUndefined();
    });

    withH('watch from a list revision: every later put and delete, in order, once', async (h) => {
      const s = h.store;
      await s.put(h.key(0), h.value(0, 1));
      const l = await s.list(h.prefix);
      const w = s.watch(h.prefix, { fromRevision: l.revision });
      const revs = [await s.put(h.key(1), h.value(1, 1)), await s.put(h.key(0), h.value(0, 2))];
      await s.delete(h.key(1));
      const evs = await readUntil(w, (e) => e.length >= 3, 10_000, () => h.settle());
      await w.return?.();
      expect(evs.map((e) => [e.type, e.key])).toEqual([
        ['put', h.key(1)],
        ['put', h.key(0)],
        ['delete', h.key(1)],
      ]);
      expect(evs[0].revision).toBe(revs[0]);
      expect(evs[1].revision).toBe(revs[1]);
      expect(evs[2].revision).toBeGreaterThan(revs[1]);
      expect(h.same(evs[1].value!, h.value(0, 2))).toBe(true);
    });

    withH('watch from a past revision: replays history, or resyncs; the consumer view equals the store', async (h) => {
      const s = h.store;
      await s.put(h.key(0), h.value(0, 1));
      const r0 = (await s.list(h.prefix)).revision;
      await s.put(h.key(1), h.value(1, 1));
      await s.delete(h.key(0));
      await s.put(h.key(2), h.value(2, 1));
      const w = s.watch(h.prefix, { fromRevision: r0 });
      const evs = await readUntil(w, (e) => (h.history ? e.length >= 3 : e.length >= 1), 10_000, () => h.settle());
      if (h.history) expect(evs.map((e) => e.type)).toEqual(['put', 'delete', 'put']);
      else expect(evs[0]?.type).toBe('resync');
      await s.put(h.key(3), h.value(3, 1));
      const more = await readUntil(w, (e) => e.length >= 1, 10_000, () => h.settle());
      await w.return?.();
      expect(more.map((e) => [e.type, e.key])).toEqual([['put', h.key(3)]]);
      const view = applyEvents(toView((await s.list(h.prefix)).entries.filter(() => false)), [...evs, ...more]);
      const now = toView((await s.list(h.prefix)).entries);
      if (!h.history) expect([...view.keys()].sort()).toEqual([...now.keys()].sort());
      else expect([...view.keys()].sort()).toEqual([h.key(1), h.key(2), h.key(3)].sort());
    });

    withH('compaction turns a watch from before it into one resync, then live events', async (h) => {
      // A store without history resyncs every watch from the past (tested above).
      if (!h.compact) return expect(h.history).toBe(false);
      const s = h.store;
      await s.put(h.key(0), h.value(0, 1));
      const r0 = (await s.list(h.prefix)).revision;
      await s.put(h.key(1), h.value(1, 1));
      await s.put(h.key(0), h.value(0, 2));
      await s.delete(h.key(1));
      const last = await s.put(h.key(2), h.value(2, 1));
      await h.compact();
      const w = s.watch(h.prefix, { fromRevision: r0 });
      const evs = await readUntil(w, (e) => e.length >= 1, 10_000);
      expect(evs[0].type).toBe('resync');
      expect(evs[0].revision).toBeGreaterThanOrEqual(last);
      expect(evs[0].type === 'resync' && evs[0].entries.map((e) => e.key)).toEqual([h.key(0), h.key(2)].sort());
      const r = await s.put(h.key(3), h.value(3, 1));
      const more = await readUntil(w, (e) => e.length >= 1, 10_000);
      await w.return?.();
      expect(more.map((e) => [e.type, e.key, e.revision])).toEqual([['put', h.key(3), r]]);
    });

    withH('leases: keys under a lease go when it is revoked (each a delete event); keep-alive and revoke of an unknown lease say false', async (h) => {
      const s = h.store;
      const lease = await s.grantLease(h.leaseTtlMs);
      await s.put(h.key(0), h.value(0, 1), { lease: lease.id });
      await s.put(h.key(1), h.value(1, 1), { lease: lease.id });
      await s.put(h.key(2), h.value(2, 1));
      expect(await s.keepAlive(lease.id)).toBe(true);
      const w = s.watch(h.prefix, { fromRevision: (await s.list(h.prefix)).revision });
      expect(await s.revokeLease(lease.id)).toBe(true);
      const evs = await readUntil(w, (e) => e.length >= 2, 10_000, () => h.settle());
      await w.return?.();
      expect(evs.map((e) => [e.type, e.key]).sort()).toEqual([
        ['delete', h.key(0)],
        ['delete', h.key(1)],
      ]);
      expect((await s.list(h.prefix)).entries.map((e) => e.key)).toEqual([h.key(2)]);
      expect(await s.revokeLease(lease.id)).toBe(false);
      expect(await s.keepAlive(lease.id)).toBe(false);
      expect(await code(s.put(h.key(3), h.value(3, 1), { lease: lease.id }))).toBe('STORE_LEASE_NOT_FOUND');
    });

    withH(
      'a lapsed lease (no keep-alive) takes its keys with it, seen by another reader',
      async (h) => {
        const s = h.store;
        const lease = await s.grantLease(h.leaseTtlMs);
        await s.put(h.key(0), h.value(0, 1), { lease: lease.id });
        await h.settle();
        const seen = await h.observer.get(h.key(0));
        expect(seen && h.same(seen.value, h.value(0, 1))).toBe(true);
        const w = h.observer.watch(h.prefix, { fromRevision: (await h.observer.list(h.prefix)).revision });
        await h.lapse(lease.ttlMs);
        const evs = await readUntil(w, (e) => e.some((x) => x.type === 'delete'), 15_000, () => h.settle());
        await w.return?.();
        expect(evs.filter((e) => e.type === 'delete').map((e) => e.key)).toEqual([h.key(0)]);
        expect(await h.observer.get(h.key(0))).toBeUndefined();
      },
      30_000,
    );

    withH('bad input is a typed error with a stable code', async (h) => {
      const s = h.store;
      expect(await code(() => s.put('relative/key', h.value(0, 1)))).toBe('STORE_BAD_KEY');
      expect(await code(() => s.put(h.prefix + '/x//y', h.value(0, 1)))).toBe('STORE_BAD_KEY');
      expect(await code(() => s.get(''))).toBe('STORE_BAD_KEY');
      expect(await code(() => s.put(h.key(0), new Uint8Array(MAX_VALUE_BYTES + 1)))).toBe('STORE_VALUE_TOO_LARGE');
      expect(await code(() => s.put(h.key(0), h.value(0, 1), { lease: 'ffff0000' }))).toBe('STORE_LEASE_NOT_FOUND');
      expect(await s.get(h.key(0))).toBeUndefined();
    });

    withH('an aborted watch ends; close ends open watches and later calls fail with STORE_CLOSED', async (h) => {
      const s = h.store;
      const ac = new AbortController();
      const w1 = s.watch(h.prefix, { signal: ac.signal });
      const p1 = w1.next();
      ac.abort();
      expect((await p1).done).toBe(true);
      const w2 = s.watch(h.prefix);
      const p2 = w2.next();
      await s.close();
      expect((await p2).done).toBe(true);
      expect(await code(() => s.get(h.key(0)))).toBe('STORE_CLOSED');
    });
  });
}
