// Property/fuzz: 100 000 random and mutated packets of each message type, fed to the device that
// would receive that type. Every one must be a counted drop: no throw, nothing delivered, no
// change to protocol state, no leaked pool slot.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PacketBatch } from '@overlay/dataplane';
import type { WireGuardDevice } from '../src/index.js';
import { pair, sessionWithSamples, stateOf, type Side } from './helpers/pair.js';
import { Wire } from './helpers/wire.js';

const PER_TYPE = 100_000;
const BATCH = 100;


const dropTotal = (dev: WireGuardDevice) => Object.values(dev.stats().drops).reduce((a, b) => a + b, 0);

function mutatedArb(base: Buffer) {
  return fc
    .record({
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      resize: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -24, max: 24 }) }),
    })
    .map(({ edits, resize }) => {
      const b = Buffer.alloc(Math.max(0, base.length + resize));
      base.copy(b, 0, 0, Math.min(base.length, b.length));
      if (b.length === 0) return b;
      for (const [pos, x] of edits) b[pos % b.length] ^= x;
      if (b.equals(base)) b[b.length - 1] ^= 0x80;
      return b;
    });
}

function randomArb(type: number, exact: number) {
  return fc
    .oneof(fc.uint8Array({ minLength: exact, maxLength: exact }), fc.uint8Array({ minLength: 0, maxLength: Math.max(200, exact + 40) }))
    .map((u) => {
      const b = Buffer.from(u);
      // Mostly a plausible header so the packet reaches the type's own checks.
      if (b.length >= 4 && b[0] % 8 !== 0) b.writeUInt32LE(type, 0);
      return b;
    });
}

/** A pair with an established session, and one captured sample of each message type. */
function setup() {
  const env = sessionWithSamples();
  expect(env.b.received.length).toBe(2);
  return env;
}

function feed(side: Side, from: string, packets: Buffer[]): number {
  const { pool, dev } = side;
  const batch = new PacketBatch(packets.length);
  const out = new PacketBatch(packets.length);
  const src = Buffer.from(from.split('.').map(Number));
  for (const p of packets) {
    const slot = pool.acquire();
    pool.fill(slot, p);
    pool.setEndpoint(slot, 4, src, 51820);
    batch.push(slot);
  }
  dev.receive(pool, batch, out);
  for (let i = 0; i < out.count; i++) pool.release(out.slots[i]);
  return out.count;
}

describe('fuzz: random and mutated packets are counted drops without state change', () => {
  const env = setup();
  const cases: [string, number, Side, string][] = [
    ['handshake initiation', 1, env.b, '198.18.0.1'],
    ['handshake response', 2, env.a, '198.18.0.2'],
    ['cookie reply', 3, env.a, '198.18.0.2'],
    ['transport data', 4, env.b, '198.18.0.1'],
  ];
  const exact: Record<number, number> = { 1: 148, 2: 92, 3: 64, 4: 60 };

  for (const [name, type, side, from] of cases) {
    it(`${name}: ${PER_TYPE} packets`, () => {
      // The receiving side must not be under load here, or valid-mac1 packets would get cookies.
      (side.dev as unknown as { e: { load: { threshold: number } } }).e.load.threshold = 1e9;
      const before = stateOf(side.dev);
      const freeBefore = side.pool.available;
      const arb = fc.array(fc.oneof(mutatedArb(env.samples[type]), randomArb(type, exact[type])), { minLength: BATCH, maxLength: BATCH });
      let total = 0;
      fc.assert(
        fc.property(arb, (packets) => {
          const d0 = dropTotal(side.dev);
          const delivered = feed(side, from, packets);
          total += packets.length;
          return delivered === 0 && dropTotal(side.dev) - d0 === packets.length && side.pool.available === freeBefore;
        }),
        { numRuns: PER_TYPE / BATCH },
      );
      expect(total).toBe(PER_TYPE);
      expect(stateOf(side.dev)).toBe(before);
    }, 120_000);
  }

  it('the session still works after the fuzzing', () => {
    env.a.sendIp('198.19.0.2', Buffer.from('after'));
    const wire = (env.a.end as unknown as { wire: Wire }).wire;
    wire.flush();
    expect(env.b.received.map((p) => p.subarray(20).toString())).toContain('after');
  });
});

void pair;
