import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PASS, VXLAN_FLAG_G, VXLAN_FLAG_I, createDataplane, decodeVxlan, decodeVxlanGroup, encodeVxlanGbp,
  type Dataplane, type Stage, type StageContext,
} from '@overlay/dataplane';
import { buildFrame, createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';

const VNI = 9;
const M = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const U = (n: number) => `198.18.0.${n}`;
const frame = (dst: string, src: string, marker: number) => buildFrame({ dst, src, etherType: 0x88b6, payload: Uint8Array.of(marker, ...new Uint8Array(45)) });

describe('VXLAN-GBP header', () => {
  it('round-trips VNI and Group Policy ID; a negative ID writes the plain header', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffff }), fc.integer({ min: -1, max: 0xffff }), fc.boolean(), (vni, group, applied) => {
        const b = new Uint8Array(8).fill(0xee);
        encodeVxlanGbp(b, 0, vni, group, applied);
        expect(decodeVxlan(b, 0, 8)).toBe(vni);
        expect(decodeVxlanGroup(b, 0)).toBe(group);
        expect(b[0]).toBe(group < 0 ? VXLAN_FLAG_I : VXLAN_FLAG_I | VXLAN_FLAG_G);
        expect(b[1]).toBe(group >= 0 && applied ? 0x08 : 0);
        expect(b[7]).toBe(0);
      }),
    );
  });
});

/** Records the Group Policy ID of frames arriving from the network; sets `send` on frames leaving. */
class Tag implements Stage {
  readonly name = 'tag';
  readonly kind = 'filter';
  seen: number[] = [];
  constructor(private readonly send: number) {}
  inside(ctx: StageContext, slot: number): number {
    ctx.pool.group[slot] = this.send;
    return PASS;
  }
  outside(ctx: StageContext, slot: number): number {
    this.seen.push(ctx.pool.group[slot]);
    return PASS;
  }
}

describe('Group Policy ID through the pipeline', () => {
  const open: Dataplane[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((d) => d.close()));
  });
  function node(net: Testnet, n: number, tag: Tag, gbp: boolean): { dp: Dataplane; dev: MemoryDevice } {
    const dev = createMemoryDevice({ name: `g${n}` });
    const dp = createDataplane({ transport: net.transport(U(n)), networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop', stages: [tag], gbp }] });
    dp.start();
    open.push(dp);
    return { dp, dev };
  }

  it('a GBP network carries the ID a stage set to the receiving stage; without GBP the receiver sees none', async () => {
    for (const gbp of [true, false]) {
      const net = createTestnet();
      const ta = new Tag(0x4242);
      const tb = new Tag(-1);
      const a = node(net, 1, ta, gbp);
      const b = node(net, 2, tb, gbp);
      a.dp.setFdb(VNI, M(2), { address: U(2) });
      a.dev.inject(frame(M(2), M(1), 1));
      await net.idle();
      expect(b.dev.received).toHaveLength(1);
      expect(tb.seen).toEqual([gbp ? 0x4242 : -1]);
    }
  });

  it('a receiver without GBP ignores the ID of a GBP sender (no groups from an untrusted header)', async () => {
    const net = createTestnet();
    const tb = new Tag(-1);
    const a = node(net, 1, new Tag(7), true);
    const b = node(net, 2, tb, false);
    a.dp.setFdb(VNI, M(2), { address: U(2) });
    a.dev.inject(frame(M(2), M(1), 1));
    await net.idle();
    expect(b.dev.received).toHaveLength(1);
    expect(tb.seen).toEqual([-1]);
  });
});
