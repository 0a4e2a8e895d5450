import { describe, expect, it } from 'vitest';
import { RecordTable, SERVICES, SERVICE_KIND, type ServiceInstanceData, type SignedRecord } from '@overlay/agent';
import { encodeRecordBody } from '../src/wire.js';
import { CHUNK_BYTES } from '../src/record-slab.js';

const ctx = { self: 'me', stateOf: () => 'alive' as const, metaOf: () => undefined };

/** A service record's bytes as they arrive (a packet with other bytes around them), its signature made up (putOwn does not verify). */
function arriving(id: number, version: number): { body: Uint8Array; sig: Uint8Array } {
  const d: ServiceInstanceData = { service: 'web', ipv4: Uint8Array.of(198, 19, id >> 8, id & 255), ipv6: new Uint8Array(0), ports: [{ port: 80, proto: 0, name: 'http' }], health: 1, since: version, reason: '', mode: 0, vip: new Uint8Array(0), ttl: 5, endpoint: `ep-${id}` };
  const body = encodeRecordBody({ kind: SERVICE_KIND, network: 'blue', id: `i-${id}`, owner: 'x', version, deleted: false }, 'service', d);
  const packet = new Uint8Array(body.length + 64 + 20);
  packet.set(body, 10);
  packet.fill(version & 255, 10 + body.length, 10 + body.length + 64);
  return { body: packet.subarray(10, 10 + body.length), sig: packet.subarray(10 + body.length, 10 + body.length + 64) };
}

describe('record slab', () => {
  it('records replaced at random keep their bytes and data through compaction, and the slab stays within twice the live bytes', () => {
    const t = new RecordTable([SERVICES], () => undefined, () => 0, ctx);
    const N = 2000;
    const want = new Map<number, { body: Buffer; sig: Buffer; version: number }>();
    let rnd = 12345;
    const next = () => ((rnd = (rnd * 1103515245 + 12345) >>> 0) >>> 8) % N;
    let version = 0;
    let bytes = 0;
    const put = (id: number) => {
      const raw = arriving(id, ++version);
      const kept = { body: Buffer.from(raw.body), sig: Buffer.from(raw.sig), version };
      t.putOwn(t.open(raw)!);
      raw.body.fill(0); // the packet is reused: the table must not read it again
      raw.sig.fill(0);
      want.set(id, kept);
      bytes = kept.body.length + 64;
    };
    for (let i = 0; i < N; i++) put(i);
    const live = () => Math.ceil((N * bytes) / CHUNK_BYTES);
    expect(t.slabChunks).toBeLessThanOrEqual(live() + 1);
    for (let i = 0; i < 10 * N; i++) put(next());
    // Half-live chunks are compacted: at most twice the live bytes, plus the current chunk.
    expect(t.slabChunks).toBeLessThanOrEqual(2 * live() + 1);
    expect(t.count()).toBe(N);
    for (const [id, w] of want) {
      const r = t.get<ServiceInstanceData>(SERVICE_KIND, 'blue', `i-${id}`)!.rec;
      expect(r.version).toBe(w.version);
      expect(Buffer.compare(r.body, w.body)).toBe(0);
      expect(Buffer.compare(r.sig, w.sig)).toBe(0);
      const d = r.data!;
      expect([...d.ipv4]).toEqual([198, 19, id >> 8, id & 255]);
      expect(d.ipv4.buffer).toBe(r.body.buffer); // decoded again from the slab copy, not the old chunk
      expect(d.since).toBe(w.version);
    }
  });

  it('a view handed out before its record was replaced and compacted away still reads the same bytes', () => {
    const t = new RecordTable([SERVICES], () => undefined, () => 0, ctx);
    const first = t.open(arriving(1, 1))!;
    t.putOwn(first);
    const body = first.body;
    const copy = Buffer.from(body);
    let v = 1;
    for (let i = 0; i < 5000; i++) t.putOwn(t.open(arriving(1 + (i % 50), ++v))!);
    expect(Buffer.compare(body, copy)).toBe(0);
    expect(Buffer.compare(first.body, copy)).toBe(0);
    expect(t.slabChunks).toBeLessThanOrEqual(2);
  });

  it('reaping releases the bytes: a table emptied by reaping keeps one chunk', () => {
    const t = new RecordTable([SERVICES], () => undefined, () => 0, ctx);
    const recs: SignedRecord[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = t.open(arriving(i, i + 1))!;
      t.putOwn(r);
      recs.push(r);
    }
    expect(t.slabChunks).toBeGreaterThan(3);
    expect(t.reap(0, () => true)).toHaveLength(3000);
    expect(t.count()).toBe(0);
    expect(t.slabChunks).toBe(1);
    expect(Buffer.from(recs[0].body).length).toBeGreaterThan(0);
  });
});
