import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferPool, DROP_REASONS, PacketBatch, createDataplane, encodeVxlan, type BatchSink } from '@overlay/dataplane';
// Synchronous doubles, so thousands of random batches run fast, without timers.
import { CountingDevice, CountingTransport, buildArpRequest, buildFrame, buildNeighborSolicitation } from '@overlay/dataplane/testing';

function hand(pool: BufferPool, sink: BatchSink, items: Uint8Array[], from?: boolean): number {
  const b = new PacketBatch(items.length || 1);
  let n = 0;
  for (const it of items) {
    const s = pool.acquire();
    if (s < 0 || !pool.fill(s, it)) {
      if (s >= 0) pool.release(s);
      continue;
    }
    if (from) pool.setEndpoint(s, 4, Uint8Array.of(198, 18, 0, (it.length % 4) + 2), 4789);
    b.push(s);
    n++;
  }
  sink(b);
  return n;
}

describe('pipeline on arbitrary input', () => {
  it('never throws, returns every slot to the pool and accounts for every packet', () => {
    const VNI = 0x10203;
    const valid = [
      buildFrame({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01' }),
      buildFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:01', vlan: 5 }),
      buildArpRequest({ srcMac: '02:00:00:00:00:01', srcIp: '198.19.0.1', targetIp: '198.19.0.2' }),
      buildNeighborSolicitation({ srcMac: '02:00:00:00:00:01', srcIp: '2001:db8::1', targetIp: '2001:db8::2' }),
      buildNeighborSolicitation({ srcMac: '02:00:00:00:00:01', srcIp: '2001:db8::1', targetIp: '2001:db8::2', vlan: 3 }),
    ];
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.integer({ min: -50, max: 1500 })).map(([v, flips, resize]) => {
        const f = Buffer.from(v);
        for (const [i, x] of flips) f[i % f.length] = x;
        return resize < 0 ? f.subarray(0, Math.max(0, f.length + resize)) : Buffer.concat([f, Buffer.alloc(resize)]);
      }),
    );
    const datagram = fc.oneof(
      fc.uint8Array({ maxLength: 100 }),
      fc.tuple(frame, fc.constantFrom(VNI, VNI + 1), fc.integer({ min: 0, max: 255 })).map(([f, vni, flags]) => {
        const d = Buffer.alloc(8 + f.length);
        encodeVxlan(d, 0, vni);
        if (flags < 32) d[0] = flags; // sometimes a bad flags byte
        d.set(f, 8);
        return d;
      }),
    );

    fc.assert(
      fc.property(fc.array(frame, { maxLength: 80 }), fc.array(datagram, { maxLength: 80 }), fc.boolean(), (frames, datagrams, learning) => {
        // One dataplane per direction so every drop reason is attributable.
        const mk = () => {
          const pool = new BufferPool({ count: 128, frameCapacity: 1600 });
          const dev = new CountingDevice(1000);
          const t = new CountingTransport();
          let now = 0;
          const dp = createDataplane({ transport: t, pool, batchSize: 16, now: () => (now += 700), networks: [{ vni: VNI, device: dev, learning, ageingMs: 1000, unknownUnicast: learning ? 'drop' : 'flood' }] });
          dp.setFdb(VNI, '02:00:00:00:00:02', { address: '198.18.0.2' });
          dp.setNeighbour(VNI, '198.19.0.2', '02:00:00:00:00:02');
          dp.setNeighbour(VNI, '2001:db8::2', '02:00:00:00:00:02');
          for (const n of [2, 3, 4]) dp.addFloodVtep(VNI, { address: `198.18.0.${n}` });
          dp.start();
          return { pool, dev, t, dp };
        };
        const a = mk();
        const nIn = hand(a.pool, a.dev.sink, frames);
        expect(a.pool.available).toBe(a.pool.count);
        const si = a.dp.stats();
        const di = si.drops;
        expect(si.inside.frames).toBe(nIn);
        // Every frame was answered locally, sent to one VTEP, flooded, or dropped for one reason.
        const unicast = si.inside.sent - si.inside.replicas;
        const insideDrops = di.frame_too_big + di.frame_malformed + di.no_fdb_entry + di.bum_dropped + di.no_flood_vtep;
        expect(si.inside.arpSuppressed + unicast + si.inside.flooded + insideDrops).toBe(nIn);
        expect(si.inside.replicas).toBe(3 * si.inside.flooded);
        expect(a.t.sent).toBe(si.inside.sent);
        expect(a.dev.written).toBe(si.inside.arpSuppressed);

        const b = mk();
        const nOut = hand(b.pool, b.t.sink, datagrams, true);
        expect(b.pool.available).toBe(b.pool.count);
        const so = b.dp.stats();
        const d = so.drops;
        expect(so.outside.datagrams).toBe(nOut);
        // Every datagram was delivered or dropped for exactly one reason.
        const outsideDrops = d.vxlan_too_short + d.vxlan_no_i_flag + d.unknown_vni + d.frame_malformed + d.frame_too_big;
        expect(so.outside.delivered + outsideDrops).toBe(nOut);
        expect(b.dev.written).toBe(so.outside.delivered);
        expect(b.t.sent).toBe(0);
        for (const r of Object.keys(d)) expect(DROP_REASONS).toContain(r);
      }),
      { numRuns: 3000, seed: 0xfeed },
    );
  });
});

