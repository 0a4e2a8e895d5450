/**
 * The etcd store against a real etcd-server 3.4 started by the test (etcd-server.ts): the
 * conformance suite, an owner process killed (its keys go within lease + 1 s), etcd killed,
 * restarted and compacted during churn (watchers lose and repeat nothing, checked revision by
 * revision against the writer's log), and a forged record written with etcdctl (ignored, counted).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore, Keys, VerifyingStore, type KeyValue, type WatchEvent, allocate, sealSigned } from '../src/index.js';
import { type Harness, conformance, readUntil } from './conformance.js';
import { CuttableProxy, EtcdServer } from './etcd-server.js';
import { ENDPOINTS } from '../../agent/src/endpoints.js';
import { generateSigningKey, signRecord } from '../../agent/src/records.js';
import { agentRecordCodec } from '../../agent/src/store-gossip.js';

let srv: EtcdServer;
beforeAll(async () => {
  srv = await EtcdServer.start();
}, 30_000);
afterAll(async () => {
  await srv?.stop();
});

const enc = new TextEncoder();
const dec = new TextDecoder();
let harnesses = 0;

conformance('etcd', async () => {
  const keys = new Keys(`conf${harnesses++}`);
  const store = await EtcdStore.connect({ hosts: srv.endpoint });
  return {
    store,
    observer: store,
    prefix: keys.prefix('endpoints', 'net-a'),
    key: (i) => keys.endpoint('net-a', `node-${i % 3}`, `ep-${i}`),
    value: (i, n) => enc.encode(`value ${i}.${n}`),
    same: (a, b) => dec.decode(a) === dec.decode(b),
    history: true,
    settle: async () => {},
    compact: async () => store.compact((await store.list('/')).revision),
    // No keep-alive was sent: the lease expires TTL after its grant.
    lapse: (ttl) => new Promise((r) => setTimeout(r, ttl + 300)),
    leaseTtlMs: 2_000,
    close: () => store.close(),
  } satisfies Harness;
});

describe('etcd store', () => {
  it('an owner process killed with SIGKILL: its keys are gone within lease (10 s) + 1 s', async () => {
    const keys = new Keys('kill');
    const store = await EtcdStore.connect({ hosts: srv.endpoint });
    const owner = spawn('node', ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL('./etcd-owner.ts', import.meta.url)), srv.endpoint, 'kill', 'node-x', '5'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('owner not ready in 30 s')), 30_000);
        owner.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && (clearTimeout(t), resolve()));
        owner.once('exit', (c) => reject(new Error(`owner exited ${c}`)));
      });
      const before = await store.list(keys.prefix('endpoints'));
      expect(before.entries.length).toBe(5);
      expect(before.entries.every((e) => e.lease !== undefined)).toBe(true);
      const w = store.watch(keys.prefix('endpoints'), { fromRevision: before.revision });
      const killedAt = Date.now();
      owner.kill('SIGKILL');
      const evs = await readUntil(w, (e) => e.filter((x) => x.type === 'delete').length >= 5, 15_000);
      const goneMs = Date.now() - killedAt;
      await w.return!();
      console.log(`etcd: owner killed → its 5 keys deleted after ${goneMs} ms (lease 10 s, keep-alive 3 s)`);
      expect(evs.filter((e) => e.type === 'delete').map((e) => e.key).sort()).toEqual(before.entries.map((e) => e.key));
      expect(goneMs).toBeLessThanOrEqual(11_000);
      expect((await store.list(keys.prefix('endpoints'))).entries).toEqual([]);
    } finally {
      owner.kill('SIGKILL');
      await store.close();
    }
  }, 45_000);

  it('etcd killed, restarted and compacted during churn: watchers resume with 0 lost and 0 duplicated events', async () => {
    const keys = new Keys('churn');
    const prefix = keys.prefix('endpoints');
    const key = (i: number) => keys.endpoint('net-a', `node-${i % 4}`, `ep-${i}`);
    const writer = await EtcdStore.connect({ hosts: srv.endpoint, callTimeoutMs: 1000 });
    // The writer's log: revision → what it did (only acknowledged writes are logged).
    const log = new Map<number, { type: 'put' | 'delete'; key: string; value?: string }>();
    const start = (await writer.list(prefix)).revision;
    // Reader 0 talks to etcd directly; reader 1 through a relay the test cuts while etcd is
    // restarted and compacted, so it comes back to a revision that is gone and must resync.
    const proxy = await CuttableProxy.start(srv.clientPort);
    const readers = await Promise.all([srv.endpoint, proxy.endpoint].map((hosts) => EtcdStore.connect({ hosts, reconnectMs: [200, 1000] })));
    const got: WatchEvent[][] = [[], []];
    const pumps = readers.map(async (r, i) => {
      for await (const ev of r.watch(prefix, { fromRevision: start })) got[i].push(ev);
    });
    let stop = false;
    let n = 0;
    let failed = 0;
    // After a failed call (etcd went down), find out whether it took effect: we are the only
    // writer, so once etcd answers again the store's revision is that of our last write.
    const recover = async (op: { type: 'put' | 'delete'; key: string; value?: string }) => {
      for (let t = 0; t < 300; t++) {
        try {
          const kv = await writer.get(op.key);
          const rev = (await writer.list(op.key)).revision;
          if (op.type === 'put' && kv && dec.decode(kv.value) === op.value) log.set(kv.revision, op);
          if (op.type === 'delete' && !kv) log.set(rev, op);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const churn = (async () => {
      while (!stop && n < 5000) {
        const i = n++ % 12;
        if (n % 5 === 0) {
          let existed;
          try {
            existed = await writer.get(key(i));
          } catch {
            failed++;
            continue;
          }
          if (!existed) continue;
          const op = { type: 'delete' as const, key: key(i) };
          try {
            if (await writer.delete(key(i))) log.set((await writer.list(key(i))).revision, op);
          } catch {
            failed++;
            await recover(op);
          }
        } else {
          const op = { type: 'put' as const, key: key(i), value: `v${n}` };
          try {
            log.set(await writer.put(key(i), enc.encode(op.value)), op);
          } catch {
            failed++;
            await recover(op);
          }
        }
      }
    })();
    try {
      const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
      await pause(800);
      proxy.cut();
      await pause(300);
      await srv.kill();
      await pause(500);
      await srv.run();
      await pause(300);
      const compactedAt = (await writer.list('/')).revision;
      await writer.compact(compactedAt);
      await pause(300);
      proxy.open();
      await pause(800);
      await writer.compact((await writer.list('/')).revision);
      await pause(500);
      stop = true;
      await churn;
      const final = await writer.list(prefix);
      // Wait until both readers reached the final revision.
      const end = Date.now() + 15_000;
      while (Date.now() < end && got.some((g) => (g.at(-1)?.revision ?? 0) < final.revision)) await new Promise((r) => setTimeout(r, 50));
      for (const r of readers) await r.close();
      await Promise.all(pumps);
      const deletes = [...log.values()].filter((e) => e.type === 'delete').length;
      console.log(`etcd churn: ${log.size} acknowledged writes (${deletes} deletes, ${failed} failed while etcd was down), compacted at ${compactedAt}, final revision ${final.revision}; reader (direct/cut) resyncs ${readers.map((r) => r.counters.watch_resyncs).join('/')}, reconnects ${readers.map((r) => r.counters.watch_reconnects).join('/')}`);
      expect(log.size).toBeGreaterThan(20);
      expect(readers[0].counters.watch_reconnects).toBeGreaterThanOrEqual(1);
      expect(readers[1].counters.watch_resyncs).toBeGreaterThanOrEqual(1);
      expect(deletes).toBeGreaterThan(0);
      for (const evs of got) checkAgainstLog(evs, log, start, final.entries);
    } finally {
      stop = true;
      await churn;
      await writer.close();
      for (const r of readers) await r.close();
      await proxy.close();
    }
  }, 60_000);

  it('a read whose connection drops is tried again until its deadline; a write fails at once', async () => {
    const proxy = await CuttableProxy.start(srv.clientPort);
    const store = await EtcdStore.connect({ hosts: proxy.endpoint, callTimeoutMs: 4000 });
    const key = new Keys('retry').endpoint('net-a', 'node-r', 'ep-1');
    try {
      await store.put(key, enc.encode('one'));
      proxy.cut();
      const t0 = Date.now();
      await expect(store.put(key, enc.encode('two'))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      const writeMs = Date.now() - t0;
      setTimeout(() => proxy.open(), 500);
      const t1 = Date.now();
      const kv = await store.get(key);
      console.log(`etcd read retry: write refused after ${writeMs} ms; read answered ${Date.now() - t1} ms after the cut began, ${store.counters.read_retries} retries`);
      expect(kv && dec.decode(kv.value)).toBe('one');
      expect(store.counters.read_retries).toBeGreaterThanOrEqual(1);
      expect(writeMs).toBeLessThan(1000);
      // Closed for good: the read gives up at its deadline with the same typed error.
      proxy.cut();
      const short = await EtcdStore.connect({ hosts: proxy.endpoint, callTimeoutMs: 600 });
      await expect(short.list('/retry/')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await short.close();
    } finally {
      await store.close();
      await proxy.close();
    }
  }, 20_000);

  it('allocation by compare-and-set from two clients at once: every address once, the rest refused', async () => {
    const keys = new Keys('alloc');
    const clients = await Promise.all([0, 1].map(() => EtcdStore.connect({ hosts: srv.endpoint })));
    try {
      const names = Array.from({ length: 12 }, (_, i) => `svc-${i}`);
      const got = await Promise.all(names.map((name, i) => allocate(clients[i % 2], { keys, network: 'net-a', subnet: '198.19.0.0/28', name, value: enc.encode(name) })));
      const won = got.filter((g) => g !== undefined);
      expect(won.length).toBe(7);
      expect(new Set(won.map((g) => g!.address)).size).toBe(7);
      const stored = (await clients[0].list(keys.prefix('vips'))).entries;
      expect(stored.length).toBe(7);
      // What is stored names the winner of each address.
      for (const g of won) expect(dec.decode(stored.find((e) => e.key === g!.key)!.value)).toBe(names[got.indexOf(g)]);
    } finally {
      for (const c of clients) await c.close();
    }
  });

  it('a record written with etcdctl under another node’s name with a bad signature is ignored and counted by the verifying reader', async () => {
    const keys = new Keys('forge');
    const kB = generateSigningKey();
    const kC = generateSigningKey();
    const pubs = new Map([
      ['node-b', kB.subarray(32)],
      ['node-c', kC.subarray(32)],
    ]);
    const rec = (owner: string, id: string, sk: Uint8Array) => signRecord(ENDPOINTS, { network: 'net-a', id, owner, version: 1, deleted: false }, { vni: 7, mac: Uint8Array.of(2, 0, 0, 0, 0, 1), ipv4: Uint8Array.of(198, 19, 0, 1), ipv6: new Uint8Array(0), vtep: '' }, sk);
    const good = sealSigned(rec('node-b', 'ep-1', kB));
    // node-c signs a record that claims node-b owns it: the signature does not verify with node-b's key.
    const forged = sealSigned(rec('node-b', 'ep-2', kC));
    // node-c's own valid record, put under node-b's key.
    const misplaced = sealSigned(rec('node-c', 'ep-3', kC));
    const raw = await EtcdStore.connect({ hosts: srv.endpoint });
    const drops: string[] = [];
    const store = new VerifyingStore(raw, { codec: agentRecordCodec, keyOf: (o) => pubs.get(o), onDrop: (k, why) => drops.push(`${k} ${why}`) });
    try {
      await raw.put(keys.endpoint('net-a', 'node-b', 'ep-1'), good);
      const from = (await raw.list('/forge/')).revision;
      const w = store.watch(keys.prefix('endpoints'), { fromRevision: from });
      // etcdctl reads the value from stdin when none is given: the exact bytes.
      srv.ctl(['put', keys.endpoint('net-a', 'node-b', 'ep-2')], forged);
      expect(Buffer.from((await raw.get(keys.endpoint('net-a', 'node-b', 'ep-2')))!.value).equals(Buffer.from(forged))).toBe(true);
      srv.ctl(['put', keys.endpoint('net-a', 'node-b', 'ep-3')], misplaced);
      await raw.put(keys.endpoint('net-a', 'node-b', 'ep-4'), sealSigned(rec('node-b', 'ep-4', kB)));
      const evs = await readUntil(w, (e) => e.length >= 1, 10_000);
      await w.return!();
      expect(evs.map((e) => [e.type, e.key])).toEqual([['put', keys.endpoint('net-a', 'node-b', 'ep-4')]]);
      expect((await store.list(keys.prefix('endpoints'))).entries.map((e) => e.key)).toEqual([keys.endpoint('net-a', 'node-b', 'ep-1'), keys.endpoint('net-a', 'node-b', 'ep-4')]);
      expect(await store.get(keys.endpoint('net-a', 'node-b', 'ep-2'))).toBeUndefined();
      expect((await raw.list(keys.prefix('endpoints'))).entries.length).toBe(4);
      expect(store.drops.bad_signature).toBeGreaterThanOrEqual(2);
      expect(store.drops.owner_mismatch).toBeGreaterThanOrEqual(2);
      expect(drops.every((d) => !d.includes('ep-1') && !d.includes('ep-4'))).toBe(true);
    } finally {
      await store.close();
    }
  }, 30_000);
});

/**
 * Check a watcher's events against the writer's log: revisions strictly increase (nothing twice);
 * each put/delete is exactly the logged write at its revision; every logged write is either
 * delivered or covered by a resync whose entries equal the state the log implies at its revision;
 * and the view at the end equals the store's.
 */
function checkAgainstLog(evs: WatchEvent[], log: Map<number, { type: 'put' | 'delete'; key: string; value?: string }>, start: number, final: KeyValue[]): void {
  const state = new Map<string, string>();
  const view = new Map<string, string>();
  const revs = [...log.keys()].sort((a, b) => a - b);
  let li = 0;
  let prev = start;
  let lost = 0;
  let duplicated = 0;
  for (const ev of evs) {
    if (ev.revision <= prev && ev.type !== 'resync') duplicated++;
    if (ev.type === 'resync') {
      // Everything the log did up to the resync's revision is in its entries.
      while (li < revs.length && revs[li] <= ev.revision) apply(state, log.get(revs[li++])!);
      view.clear();
      for (const kv of ev.entries) view.set(kv.key, dec.decode(kv.value));
      expect(new Map([...view].sort())).toEqual(new Map([...state].sort()));
    } else {
      // Logged writes between the previous event and this one were lost.
      while (li < revs.length && revs[li] < ev.revision) {
        apply(state, log.get(revs[li++])!);
        lost++;
      }
      const want = log.get(ev.revision);
      expect(want, `event at revision ${ev.revision} not in the writer's log`).toBeDefined();
      expect([ev.type, ev.key, ev.type === 'put' ? dec.decode(ev.value) : undefined]).toEqual([want!.type, want!.key, want!.value]);
      apply(state, want!);
      li++;
      if (ev.type === 'put') view.set(ev.key, dec.decode(ev.value));
      else view.delete(ev.key);
    }
    prev = ev.revision;
  }
  lost += revs.length - li;
  expect({ lost, duplicated }).toEqual({ lost: 0, duplicated: 0 });
  expect(new Map([...view].sort())).toEqual(new Map(final.map((kv) => [kv.key, dec.decode(kv.value)] as [string, string]).sort()));
}

function apply(state: Map<string, string>, e: { type: 'put' | 'delete'; key: string; value?: string }): void {
  if (e.type === 'put') state.set(e.key, e.value!);
  else state.delete(e.key);
}
