import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DuplicateStageError, InvalidConfigError, PASS, REPLY, TAKEN, createDataplane, dropChannel, dropVerdict, formatMac, readMac, writeMac,
  type Dataplane, type DropEvent, type Stage, type StageContext,
} from '@overlay/dataplane';
import { buildArpRequest, buildFrame, createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';

const VNI = 7;
const M = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const U = (n: number) => `198.18.0.${n}`;
/** Frames these tests address to stages carry this etherType, and a marker in the first payload byte. */
const ETYPE = 0x88b6;
const frame = (dst: string, src: string, marker = 0, vlan?: number) => buildFrame({ dst, src, etherType: ETYPE, vlan, payload: Uint8Array.of(marker, ...new Uint8Array(45)) });

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function node(net: Testnet, n: number, o: { stages?: Stage[]; arpSuppression?: boolean; unknownUnicast?: 'flood' | 'drop' } = {}): { dp: Dataplane; dev: MemoryDevice } {
  const dev = createMemoryDevice({ name: `d${n}` });
  const dp = createDataplane({ transport: net.transport(U(n)), networks: [{ vni: VNI, device: dev, unknownUnicast: o.unknownUnicast ?? 'drop', stages: o.stages, arpSuppression: o.arpSuppression }] });
  dp.start();
  open.push(dp);
  return { dp, dev };
}

/** Swap the frame's MACs in place (an answer goes back to the sender). */
function swapMacs(ctx: StageContext, slot: number): void {
  const d = ctx.pool.data;
  const off = ctx.pool.off[slot];
  const dst = readMac(d, off);
  writeMac(d, off, readMac(d, off + 6));
  writeMac(d, off + 6, dst);
}

/** Answers marked frames: MACs swapped, marker + 100. */
class Echo implements Stage {
  readonly kind = 'responder';
  constructor(readonly name = 'echo') {}
  inside(ctx: StageContext, slot: number): number {
    return this.answer(ctx, slot);
  }
  outside(ctx: StageContext, slot: number): number {
    return this.answer(ctx, slot);
  }
  private answer(ctx: StageContext, slot: number): number {
    if (ctx.etherType !== ETYPE || ctx.pool.data[ctx.l3] !== 1) return PASS;
    swapMacs(ctx, slot);
    ctx.pool.data[ctx.l3] += 100;
    return REPLY;
  }
}

/** Drops frames marked 2 (`denied`) or 3 (`quarantined`), in both directions. */
class Deny implements Stage {
  readonly name = 'deny';
  readonly kind = 'filter';
  readonly reasons = ['denied', 'quarantined'] as const;
  inside(ctx: StageContext, _slot: number): number {
    if (ctx.etherType !== ETYPE) return PASS;
    const m = ctx.pool.data[ctx.l3];
    return m === 2 ? dropVerdict(0) : m === 3 ? dropVerdict(1) : PASS;
  }
  outside(ctx: StageContext, slot: number): number {
    return this.inside(ctx, slot);
  }
}

/** Rewrites the destination MAC `from` into `to` (a VIP in front of a backend). */
class MacTranslator implements Stage {
  readonly name = 'vip';
  readonly kind = 'translator';
  constructor(
    private readonly from: number,
    private readonly to: number,
  ) {}
  inside(ctx: StageContext, slot: number): number {
    const off = ctx.pool.off[slot];
    if (readMac(ctx.pool.data, off) === this.from) writeMac(ctx.pool.data, off, this.to);
    return PASS;
  }
}

describe('stage verdicts', () => {
  it('a responder answers into the device; nothing crosses the underlay', async () => {
    const net = createTestnet();
    const a = node(net, 1, { stages: [new Echo()] });
    a.dev.inject(frame(M(9), M(1), 1));
    await net.idle();
    expect(a.dev.received).toHaveLength(1);
    const r = a.dev.received[0];
    expect([formatMac(readMac(r, 0)), formatMac(readMac(r, 6)), r[14]]).toEqual([M(1), M(9), 101]);
    expect(net.stats.sent).toBe(0);
    expect(a.dp.stats().inside.stageReplies).toBe(1);
    expect(a.dp.stats().inside.arpSuppressed).toBe(0);
    expect(a.dp.pool.available).toBe(a.dp.pool.count);
  });

  it('a responder on outside answers back to the source VTEP, re-encapsulated with the VNI', async () => {
    const net = createTestnet();
    const a = node(net, 1, { stages: [new Echo()] });
    const b = node(net, 2);
    b.dp.setFdb(VNI, M(1), { address: U(1) });
    b.dev.inject(frame(M(1), M(2), 1));
    await net.idle();
    expect(a.dev.received).toHaveLength(0);
    expect(a.dp.stats().outside.stageReplies).toBe(1);
    expect(b.dev.received).toHaveLength(1);
    const r = b.dev.received[0];
    expect([formatMac(readMac(r, 0)), formatMac(readMac(r, 6)), r[14]]).toEqual([M(2), M(1), 101]);
  });

  it('a filter drops with its own reasons, visible in stats().stages and on the drop channel; every frame accounted for', async () => {
    const net = createTestnet();
    const a = node(net, 1, { stages: [new Deny()] });
    const b = node(net, 2, { stages: [new Deny()] });
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    const events: DropEvent[] = [];
    const onDrop = (e: unknown) => events.push(e as DropEvent);
    subscribe('overlay.dataplane.drop', onDrop);
    try {
      for (const m of [0, 2, 3, 2, 0]) a.dev.inject(frame(M(2), M(1), m));
      // Marked on the far side of the filter: only b's outside stage sees these.
      a.dp.removeStage(VNI, 'deny');
      for (const m of [2, 0]) a.dev.inject(frame(M(2), M(1), m));
      await net.idle();
    } finally {
      unsubscribe('overlay.dataplane.drop', onDrop);
    }
    const sa = a.dp.stats();
    expect(sa.stages.deny).toEqual({ denied: 2, quarantined: 1 }); // a removed stage's counts stay
    expect(sa.inside.frames).toBe(7);
    expect(sa.inside.sent + sa.stages.deny.denied + sa.stages.deny.quarantined).toBe(7);
    expect(b.dev.received.map((f) => f[14])).toEqual([0, 0, 0]);
    expect(b.dp.stats().stages.deny).toEqual({ denied: 1, quarantined: 0 });
    expect(events.filter((e) => e.reason.startsWith('deny.'))).toEqual([
      { reason: 'deny.denied', scope: VNI, count: 1 },
      { reason: 'deny.quarantined', scope: VNI, count: 1 },
      { reason: 'deny.denied', scope: VNI, count: 1 },
      { reason: 'deny.denied', scope: VNI, count: 1 },
    ]);
    expect(dropChannel.name).toBe('overlay.dataplane.drop');
    expect(a.dp.pool.available).toBe(a.dp.pool.count);
    expect(b.dp.pool.available).toBe(b.dp.pool.count);
  });

  it('a translator rewrites the destination MAC and the frame is forwarded per the rewritten MAC', async () => {
    const net = createTestnet();
    const vip = 0x020000000099;
    const a = node(net, 1, { stages: [new MacTranslator(vip, 0x020000000002)] });
    const b = node(net, 2);
    const c = node(net, 3);
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    a.dp.setFdb(VNI, M(0x99), { address: U(3) }); // were the lookup before the stage, c would get it
    a.dev.inject(frame(M(0x99), M(1), 5));
    a.dev.inject(frame(M(4), M(1), 6)); // untouched: no FDB entry, dropped by policy
    await net.idle();
    expect(b.dev.received).toHaveLength(1);
    expect(formatMac(readMac(b.dev.received[0], 0))).toBe(M(2));
    expect(c.dev.received).toHaveLength(0);
    expect(a.dp.stats().drops.no_fdb_entry).toBe(1);
  });

  it('a TAKEN stage answers later through ctx.toDevice, forwards through ctx.toNetwork, drops through ctx.drop', async () => {
    class Later implements Stage {
      readonly name = 'later';
      readonly kind = 'responder';
      readonly reasons = ['expired'];
      held: number[] = [];
      ctx!: StageContext;
      attach(ctx: StageContext): void {
        this.ctx = ctx;
      }
      inside(ctx: StageContext, slot: number): number {
        if (ctx.etherType !== ETYPE) return PASS;
        this.held.push(slot);
        return TAKEN;
      }
      detach(): void {
        for (const s of this.held.splice(0)) this.ctx.pool.release(s);
      }
    }
    const net = createTestnet();
    const stage = new Later();
    const a = node(net, 1, { stages: [stage] });
    const b = node(net, 2);
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    for (const m of [1, 2, 3, 4]) a.dev.inject(frame(M(2), M(1), m));
    await net.idle();
    expect(stage.held).toHaveLength(4);
    expect(a.dev.received).toHaveLength(0);
    expect(b.dev.received).toHaveLength(0);
    expect(a.dp.pool.available).toBe(a.dp.pool.count - 4);
    expect(a.dp.stats().inside.stageTaken).toBe(4);

    // Later, from a timer: answer the first, forward the second, drop the third; the fourth stays held.
    await new Promise((r) => setTimeout(r, 5));
    const [s1, s2, s3] = stage.held.splice(0, 3);
    swapMacs(stage.ctx, s1);
    stage.ctx.toDevice(s1); // flushed at once: no pipeline batch is running
    expect(a.dev.received).toHaveLength(1);
    expect(formatMac(readMac(a.dev.received[0], 0))).toBe(M(1));
    stage.ctx.toNetwork(s2);
    stage.ctx.drop(stage, 0, s3);
    await net.idle();
    expect(b.dev.received.map((f) => f[14])).toEqual([2]);
    expect(a.dp.stats().stages.later).toEqual({ expired: 1 });
    expect(a.dp.pool.available).toBe(a.dp.pool.count - 1);
    // Removing the stage detaches it: it gives back what it holds.
    expect(a.dp.removeStage(VNI, 'later')).toBe(true);
    expect(a.dp.pool.available).toBe(a.dp.pool.count);
  });

  it('counts a throwing stage, an unknown verdict, an undeclared drop reason and a frame grown past the slot as stage_failed, and leaks no slot', async () => {
    const net = createTestnet();
    const bad: Stage = {
      name: 'bad',
      kind: 'filter',
      reasons: ['one'],
      inside(ctx, slot) {
        const m = ctx.pool.data[ctx.l3];
        if (m === 1) throw new Error('stage bug');
        if (m === 2) return 7;
        if (m === 3) return dropVerdict(1);
        if (m === 4) ctx.pool.len[slot] = ctx.pool.limit(slot) - ctx.pool.off[slot] + 1;
        if (m === 5) ctx.pool.off[slot] -= 4;
        return PASS;
      },
    };
    const a = node(net, 1, { stages: [bad] });
    for (const m of [1, 2, 3, 4, 5]) a.dev.inject(frame(M(2), M(1), m));
    await net.idle();
    const s = a.dp.stats();
    expect(s.drops.stage_failed).toBe(5);
    expect(s.stages.bad).toEqual({ one: 0 });
    expect(a.dp.pool.available).toBe(a.dp.pool.count);
  });
});

describe('stage list', () => {
  it('orders responders, filters, translators inside and translators, filters, responders outside; position places within a kind', async () => {
    const log: string[] = [];
    const rec = (name: string, kind: Stage['kind']): Stage => ({
      name,
      kind,
      inside(ctx) {
        if (ctx.etherType === ETYPE) log.push(`in:${name}`);
        return PASS;
      },
      outside(ctx) {
        if (ctx.etherType === ETYPE) log.push(`out:${name}`);
        return PASS;
      },
    });
    const net = createTestnet();
    const a = node(net, 1, { stages: [rec('t', 'translator'), rec('f1', 'filter'), rec('r', 'responder')] });
    a.dp.addStage(VNI, rec('f2', 'filter'), { position: 0 });
    a.dp.addStage(VNI, rec('f3', 'filter'));
    expect(a.dp.stages(VNI)).toEqual(['arp', 'nd', 'r', 'f2', 'f1', 'f3', 't']);
    const b = node(net, 2);
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    b.dp.setFdb(VNI, M(1), { address: U(1) });
    a.dev.inject(frame(M(2), M(1)));
    await net.idle();
    b.dev.inject(frame(M(1), M(2)));
    await net.idle();
    expect(log).toEqual(['in:r', 'in:f2', 'in:f1', 'in:f3', 'in:t', 'out:t', 'out:f2', 'out:f1', 'out:f3', 'out:r']);
    expect(a.dev.received).toHaveLength(1);
    expect(b.dev.received).toHaveLength(1);
  });

  it('removes stages: ARP suppression is the arp stage, a removed filter stops dropping, a second remove is false', async () => {
    const net = createTestnet();
    const a = node(net, 1, { stages: [new Deny()], unknownUnicast: 'flood' });
    const b = node(net, 2);
    a.dp.addFloodVtep(VNI, { address: U(2) });
    a.dp.setNeighbour(VNI, '198.19.0.9', M(9));
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    const req = buildArpRequest({ srcMac: M(1), srcIp: '198.19.0.1', targetIp: '198.19.0.9' });
    a.dev.inject(req);
    a.dev.inject(frame(M(2), M(1), 2));
    await net.idle();
    expect(a.dev.received).toHaveLength(1);
    expect(b.dev.received).toHaveLength(0);
    expect(a.dp.removeStage(VNI, 'arp')).toBe(true);
    expect(a.dp.removeStage(VNI, 'deny')).toBe(true);
    expect(a.dp.removeStage(VNI, 'deny')).toBe(false);
    expect(a.dp.stages(VNI)).toEqual(['nd']);
    a.dev.inject(req);
    a.dev.inject(frame(M(2), M(1), 2));
    await net.idle();
    expect(a.dev.received).toHaveLength(1);
    expect(b.dev.received).toHaveLength(2); // the request flooded, the frame forwarded
    expect(a.dp.stats().inside.arpSuppressed).toBe(1);
  });

  it('calls a groupOnly stage for group destinations only', async () => {
    const seen: string[] = [];
    const g: Stage = {
      name: 'g',
      kind: 'responder',
      groupOnly: true,
      inside(ctx, slot) {
        seen.push(formatMac(readMac(ctx.pool.data, ctx.pool.off[slot])));
        return PASS;
      },
    };
    const net = createTestnet();
    const a = node(net, 1, { stages: [g], arpSuppression: false });
    a.dev.inject(frame(M(2), M(1)));
    a.dev.inject(frame('ff:ff:ff:ff:ff:ff', M(1)));
    a.dev.inject(frame('33:33:00:00:00:01', M(1)));
    await net.idle();
    expect(seen).toEqual(['ff:ff:ff:ff:ff:ff', '33:33:00:00:00:01']);
  });

  it('validates stages with typed errors', () => {
    const net = createTestnet();
    const a = node(net, 1);
    const b = node(net, 2);
    const ok = (): Stage => ({ name: 'x', kind: 'filter', reasons: ['r'], inside: () => PASS });
    a.dp.addStage(VNI, ok());
    expect(() => a.dp.addStage(VNI, ok())).toThrow(DuplicateStageError);
    try {
      a.dp.addStage(VNI, ok());
    } catch (e) {
      expect((e as DuplicateStageError).code).toBe('OVL_ERR_DUPLICATE_STAGE');
    }
    const bad: [string, unknown][] = [
      ['name', { ...ok(), name: 'Not Snake' }],
      ['kind', { ...ok(), name: 'y', kind: 'router' }],
      ['reasons', { ...ok(), name: 'y', reasons: ['a', 'a'] }],
      ['no direction', { name: 'y', kind: 'filter' }],
      ['inside not a function', { ...ok(), name: 'y', inside: 3 }],
      ['groupOnly', { ...ok(), name: 'y', groupOnly: 'yes' }],
      ['null', null],
    ];
    for (const [what, s] of bad) expect(() => a.dp.addStage(VNI, s as Stage), what).toThrow(InvalidConfigError);
    expect(() => a.dp.addStage(VNI, { ...ok(), name: 'y' }, { position: 5 })).toThrow(InvalidConfigError);
    // Same name elsewhere must declare the same reasons: they share counters.
    expect(() => b.dp.addStage(VNI, { ...ok(), reasons: ['other'] })).not.toThrow(); // another dataplane, other counters
    const net2 = createMemoryDevice({ name: 'n2' });
    a.dp.addNetwork({ vni: 8, device: net2 });
    expect(() => a.dp.addStage(8, { ...ok(), reasons: ['other'] })).toThrow(InvalidConfigError);
    // One stage object serves one network.
    const shared = { ...ok(), name: 'z' };
    a.dp.addStage(VNI, shared);
    expect(() => a.dp.addStage(8, shared)).toThrow(InvalidConfigError);
    a.dp.removeStage(VNI, 'z');
    expect(() => a.dp.addStage(8, shared)).not.toThrow();
    expect(a.dp.stages(VNI)).toEqual(['arp', 'nd', 'x']);
  });

  it('detaches stages when their network is removed', () => {
    const net = createTestnet();
    let detached = 0;
    const a = node(net, 1, { stages: [{ name: 's', kind: 'filter', inside: () => PASS, detach: () => void detached++ }] });
    a.dp.removeNetwork(VNI);
    expect(detached).toBe(1);
  });
});
