import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferPool, DROP_REASONS, PASS, PacketBatch, REPLY, TAKEN, createDataplane, dropVerdict, encodeVxlan, readMac, writeMac, type BatchSink, type Dataplane, type Stage, type StageContext } from '@overlay/dataplane';
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

describe('pipeline on arbitrary input', () => {
  it('never throws, returns every slot to the pool and accounts for every packet', () => {
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

  it('with stages installed (every verdict, broken stages included) still accounts for every packet and leaks no slot', () => {
    /** Picks a path from the first L3 byte and the length, so random frames hit every one. */
    const pick = (ctx: StageContext, slot: number) => (ctx.pool.data[ctx.l3] + ctx.pool.len[slot]) % 8;
    const echo = (): Stage => ({
      name: 'fz_echo',
      kind: 'responder',
      inside: (ctx, slot) => (pick(ctx, slot) === 1 ? swap(ctx, slot) : PASS),
      outside: (ctx, slot) => (pick(ctx, slot) === 1 ? swap(ctx, slot) : PASS),
    });
    const swap = (ctx: StageContext, slot: number) => {
      const off = ctx.pool.off[slot];
      const dst = readMac(ctx.pool.data, off);
      writeMac(ctx.pool.data, off, readMac(ctx.pool.data, off + 6));
      writeMac(ctx.pool.data, off + 6, dst);
      return REPLY;
    };
    const deny = (): Stage => ({
      name: 'fz_deny',
      kind: 'filter',
      reasons: ['two', 'three'],
      inside: (ctx, slot) => (pick(ctx, slot) === 2 ? dropVerdict(0) : pick(ctx, slot) === 3 ? dropVerdict(1) : PASS),
      outside: (ctx, slot) => (pick(ctx, slot) === 2 ? dropVerdict(0) : pick(ctx, slot) === 3 ? dropVerdict(1) : PASS),
    });
    const nat = (): Stage => ({
      name: 'fz_nat',
      kind: 'translator',
      inside(ctx, slot) {
        const p = pick(ctx, slot);
        if (p === 4) writeMac(ctx.pool.data, ctx.pool.off[slot], 0x020000000002);
        if (p === 5) ctx.pool.len[slot] = 3; // broken: too short
        if (p === 6 && ctx.pool.data[ctx.l3 + 1] % 2 === 0) throw new Error('broken stage');
        return PASS;
      },
      outside(ctx, slot) {
        return this.inside!(ctx, slot);
      },
    });
    class Hold implements Stage {
      readonly name = 'fz_hold';
      readonly kind = 'responder';
      readonly held: number[] = [];
      ctx!: StageContext;
      attach(ctx: StageContext) {
        this.ctx = ctx;
      }
      inside(ctx: StageContext, slot: number) {
        if (pick(ctx, slot) !== 7) return PASS;
        this.held.push(slot);
        return TAKEN;
      }
      outside(ctx: StageContext, slot: number) {
        return this.inside(ctx, slot);
      }
    }

    /** Every path was taken at least once over the run (else the property proves little). */
    const seen = { replies: 0, taken: 0, denied: 0, failed: 0, outReplies: 0, outTaken: 0, outDenied: 0 };
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 80 }), fc.array(datagram, { maxLength: 80 }), fc.boolean(), (frames, datagrams, learning) => {
        const mk = () => {
          const pool = new BufferPool({ count: 128, frameCapacity: 1600 });
          const dev = new CountingDevice(1000);
          const t = new CountingTransport();
          const hold = new Hold();
          let now = 0;
          const dp = createDataplane({
            transport: t, pool, batchSize: 16, now: () => (now += 700),
            networks: [{ vni: VNI, device: dev, learning, ageingMs: 1000, unknownUnicast: learning ? 'drop' : 'flood', stages: [nat(), deny(), hold, echo()] }],
          });
          dp.setFdb(VNI, '02:00:00:00:00:02', { address: '198.18.0.2' });
          dp.setNeighbour(VNI, '198.19.0.2', '02:00:00:00:00:02');
          dp.setNeighbour(VNI, '2001:db8::2', '02:00:00:00:00:02');
          for (const n of [2, 3, 4]) dp.addFloodVtep(VNI, { address: `198.18.0.${n}` });
          dp.start();
          return { pool, dev, t, dp, hold };
        };
        const stageDrops = (s: ReturnType<Dataplane['stats']>) => s.stages.fz_deny.two + s.stages.fz_deny.three + s.drops.stage_failed;

        const a = mk();
        const nIn = hand(a.pool, a.dev.sink, frames);
        const si = a.dp.stats();
        const di = si.drops;
        expect(si.inside.frames).toBe(nIn);
        const unicast = si.inside.sent - si.inside.replicas;
        const insideDrops = di.frame_too_big + di.frame_malformed + di.no_fdb_entry + di.bum_dropped + di.no_flood_vtep;
        expect(si.inside.stageReplies + si.inside.stageTaken + unicast + si.inside.flooded + insideDrops + stageDrops(si)).toBe(nIn);
        expect(si.inside.arpSuppressed).toBeLessThanOrEqual(si.inside.stageReplies);
        expect(si.inside.stageTaken).toBe(a.hold.held.length);
        expect(a.dev.written).toBe(si.inside.stageReplies);
        expect(a.pool.available).toBe(a.pool.count - a.hold.held.length);
        // The held frames come back later, outside any batch: half to the device, half into the network.
        const held = a.hold.held.splice(0);
        held.forEach((slot, i) => (i % 2 === 0 ? a.hold.ctx.toDevice(slot) : a.hold.ctx.toNetwork(slot)));
        const sa = a.dp.stats();
        expect(a.pool.available).toBe(a.pool.count);
        expect(a.dev.written - si.inside.stageReplies).toBe(Math.ceil(held.length / 2));
        const forwarded = sa.inside.sent - sa.inside.replicas - unicast + sa.inside.flooded - si.inside.flooded;
        const dropped = Object.values(sa.drops).reduce((x, y) => x + y, 0) - Object.values(di).reduce((x, y) => x + y, 0);
        expect(forwarded + dropped).toBe(Math.floor(held.length / 2));

        const b = mk();
        const nOut = hand(b.pool, b.t.sink, datagrams, true);
        const so = b.dp.stats();
        const d = so.drops;
        expect(so.outside.datagrams).toBe(nOut);
        const outsideDrops = d.vxlan_too_short + d.vxlan_no_i_flag + d.unknown_vni + d.frame_malformed + d.frame_too_big;
        expect(so.outside.delivered + so.outside.stageReplies + so.outside.stageTaken + outsideDrops + stageDrops(so)).toBe(nOut);
        expect(b.dev.written).toBe(so.outside.delivered);
        expect(b.t.sent).toBe(so.outside.stageReplies);
        for (const slot of b.hold.held.splice(0)) b.hold.ctx.drop(b.hold, 0, slot); // fz_hold declares no reasons: stage_failed
        expect(b.pool.available).toBe(b.pool.count);
        for (const r of Object.keys(d)) expect(DROP_REASONS).toContain(r);
        seen.replies += si.inside.stageReplies - si.inside.arpSuppressed;
        seen.taken += si.inside.stageTaken;
        seen.denied += si.stages.fz_deny.two + si.stages.fz_deny.three;
        seen.failed += si.drops.stage_failed;
        seen.outReplies += so.outside.stageReplies;
        seen.outTaken += so.outside.stageTaken;
        seen.outDenied += so.stages.fz_deny.two + so.stages.fz_deny.three;
      }),
      { numRuns: 1500, seed: 0xbeef },
    );
    for (const [k, v] of Object.entries(seen)) expect(v, k).toBeGreaterThan(0);
  });
});
