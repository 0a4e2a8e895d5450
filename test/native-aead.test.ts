// The addon's batched AEAD (packages/native/csrc/aead.c) against libsodium (@overlay/crypto's
// sodiumAead, the reference): byte-identical sealing, opening across implementations, forged
// datagrams left untouched, typed argument errors, and two WireGuard devices (one on each
// implementation) exchanging batches with a replay and a forgery inside them.
import { randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import { sodiumAead, type AeadBatch } from '@overlay/crypto';
import { resolveAead } from '@overlay/native';
import { pair, payloadOf, type Side } from '../packages/crypto/test/helpers/pair.js';
import type { Wire } from '../packages/crypto/test/helpers/wire.js';

const native: AeadBatch = resolveAead('native')!;
const sodium = sodiumAead();
const HEAD = 64;
const STRIDE = 2048;

/** n slots of random payloads (sizes 0..1500) at HEAD in each stride, plus a shuffled slot list. */
function slab(n: number) {
  const data = new Uint8Array(n * STRIDE);
  const off = new Int32Array(n);
  const len = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    off[i] = i * STRIDE + HEAD;
    len[i] = i === 0 ? 0 : randomInt(0, 1501);
    data.set(randomBytes(len[i]), off[i]);
  }
  const slots = Int32Array.from([...Array(n).keys()].sort(() => Math.random() - 0.5));
  return { data, off, len, slots };
}
type Slab = ReturnType<typeof slab>;
const copy = (s: Slab): Slab => ({ data: s.data.slice(), off: s.off.slice(), len: s.len.slice(), slots: s.slots.slice() });

describe('native sealBatch/openBatch', () => {
  it('seals byte for byte as libsodium does (random sizes, slot order, index, counters across 2^32)', () => {
    for (let trial = 0; trial < 20; trial++) {
      const key = randomBytes(32);
      const a = slab(64);
      const b = copy(a);
      const index = randomInt(0, 2 ** 32);
      const counter = trial < 10 ? 2 ** 32 - randomInt(1, 64) : randomInt(0, 2 ** 47);
      const first = randomInt(0, 8);
      const count = 64 - first - randomInt(0, 8);
      const args = [first, count, key, index | 0, counter | 0, (counter / 2 ** 32) | 0] as const;
      native.seal(a.data, a.off, a.len, a.slots, ...args);
      sodium.seal(b.data, b.off, b.len, b.slots, ...args);
      expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
      expect([...a.off]).toEqual([...b.off]);
      expect([...a.len]).toEqual([...b.len]);
      // The header of the k-th sealed slot: type 4, the receiver index, counter + k.
      const k = randomInt(0, count);
      const at = a.off[a.slots[first + k]];
      const view = Buffer.from(a.data.buffer);
      expect([view.readUInt32LE(at), view.readUInt32LE(at + 4), view.readUInt32LE(at + 8) + view.readUInt32LE(at + 12) * 2 ** 32]).toEqual([4, index, counter + k]);
    }
  });

  it('opens what libsodium sealed and the reverse; a forged slot is refused (native: left exactly as it came)', () => {
    for (const [sealer, opener] of [[sodium, native], [native, sodium], [native, native]] as const) {
      const key = randomBytes(32);
      const s = slab(64);
      const plain = copy(s);
      sealer.seal(s.data, s.off, s.len, s.slots, 0, 64, key, 7, 1000, 0);
      // Forge 3 slots: a bit in the body, in the tag, in the counter (the nonce).
      const forged = [s.slots[3], s.slots[10], s.slots[20]];
      s.data[s.off[forged[0]] + 16 + (s.len[forged[0]] > 32 ? randomInt(0, s.len[forged[0]] - 32) : 0)] ^= 1 << randomInt(0, 8);
      s.data[s.off[forged[1]] + s.len[forged[1]] - 1 - randomInt(0, 16)] ^= 1;
      s.data[s.off[forged[2]] + 8] ^= 1;
      const before = copy(s);
      const ok = new Uint8Array(70);
      expect(opener.open(s.data, s.off, s.len, s.slots, 0, 64, key, ok)).toBe(61);
      for (let i = 0; i < 64; i++) {
        const slot = s.slots[i];
        if (forged.includes(slot)) {
          expect(ok[i]).toBe(0);
          expect([s.off[slot], s.len[slot]]).toEqual([before.off[slot], before.len[slot]]);
          // libsodium clears the message buffer when the tag fails; the native path restores it.
          if (opener === native) expect(Buffer.from(s.data.subarray(s.off[slot], s.off[slot] + s.len[slot])).equals(Buffer.from(before.data.subarray(s.off[slot], s.off[slot] + s.len[slot])))).toBe(true);
        } else {
          expect(ok[i]).toBe(1);
          expect([s.off[slot], s.len[slot]]).toEqual([plain.off[slot], plain.len[slot]]);
          expect(Buffer.from(s.data.subarray(s.off[slot], s.off[slot] + s.len[slot])).equals(Buffer.from(plain.data.subarray(s.off[slot], s.off[slot] + s.len[slot])))).toBe(true);
        }
      }
      // ok[first + i]: a run that starts later writes its own part of `ok`.
      const t = slab(8);
      native.seal(t.data, t.off, t.len, t.slots, 0, 8, key, 1, 0, 0);
      ok.fill(9);
      expect(native.open(t.data, t.off, t.len, t.slots, 5, 3, key, ok)).toBe(3);
      expect([...ok.subarray(4, 9)]).toEqual([9, 1, 1, 1, 9]);
    }
  });

  it('refuses bad arguments with typed errors and changes nothing', () => {
    const s = slab(4);
    const before = copy(s);
    const key = randomBytes(32);
    const ok = new Uint8Array(4);
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return [(e as Error).name, (e as { code?: string }).code];
      }
      return null;
    };
    expect(err(() => native.seal(s.data, s.off, s.len, s.slots, 0, 4, key.subarray(0, 31), 1, 0, 0))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE']);
    expect(err(() => native.seal(s.data, s.off, s.len, s.slots, 2, 3, key, 1, 0, 0))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE']);
    expect(err(() => native.seal(s.data, s.off, s.len, Int32Array.of(0, 1, 4), 0, 3, key, 1, 0, 0))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE']);
    const noHead = copy(s);
    noHead.off[1] = 8; // no room for the 16-byte header: nothing sealed, slot 0 included
    expect(err(() => native.seal(noHead.data, noHead.off, noHead.len, Int32Array.of(0, 1), 0, 2, key, 1, 0, 0))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE']);
    expect(Buffer.from(noHead.data).equals(Buffer.from(s.data))).toBe(true);
    const noTail = copy(s);
    noTail.off[3] = noTail.data.length - noTail.len[3] - 8;
    expect(err(() => native.seal(noTail.data, noTail.off, noTail.len, Int32Array.of(3), 0, 1, key, 1, 0, 0))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE']);
    const short = copy(s);
    short.len[2] = 31;
    expect(err(() => native.open(short.data, short.off, short.len, Int32Array.of(2), 0, 1, key, ok))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE']);
    expect(err(() => native.open(s.data, s.off, s.len, s.slots, 0, 4, key, new Uint8Array(3)))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE']);
    expect(err(() => native.seal(s.data, Array.from(s.off) as unknown as Int32Array, s.len, s.slots, 0, 4, key, 1, 0, 0))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE']);
    expect(Buffer.from(s.data).equals(Buffer.from(before.data))).toBe(true);
    expect([...s.off, ...s.len]).toEqual([...before.off, ...before.len]);
  });
});

/** Delivers the logged data datagrams `ds` to `to` as ONE batch (the Wire delivers one per batch). */
function deliverBatch(to: Side, from: string, ds: Buffer[]): Buffer[] {
  const batch = new PacketBatch(ds.length);
  for (const d of ds) {
    const slot = to.pool.acquire();
    to.pool.fill(slot, d);
    to.pool.setEndpoint(slot, 4, Buffer.from(from.split('.').map(Number)), 51820);
    batch.push(slot);
  }
  const out = new PacketBatch(ds.length);
  to.dev.receive(to.pool, batch, out);
  const got: Buffer[] = [];
  for (let i = 0; i < out.count; i++) {
    got.push(to.pool.copyOut(out.slots[i]));
    to.pool.release(out.slots[i]);
  }
  return got;
}

const dataOf = (w: Wire, from: string) => w.log.filter((d) => d.from.startsWith(from) && d.bytes[0] === 4 && d.bytes.length > 32).map((d) => d.bytes);

describe('WireGuard devices on the native AEAD', () => {
  it('talk to a libsodium device both ways; in one batch a replayed copy and a forged datagram are counted drops and the rest arrive in order', () => {
    const { wire, clock, a, b } = pair({ aead: native }, {});
    a.sendIp('198.19.0.2', Buffer.from('hello'));
    wire.flush();
    b.sendIp('198.19.0.1', Buffer.from('back'));
    wire.flush();
    expect(b.received.map(payloadOf)).toEqual(['hello']);
    expect(a.received.map(payloadOf)).toEqual(['back']);
    clock.advance(100, a.dev, b.dev);
    // A batch of 8 from the native side, captured instead of delivered, then given to b as one batch
    // with a replayed copy of the 3rd and a forged 6th: 7 delivered in order.
    const n0 = wire.log.length;
    wire.filter = () => false;
    for (let i = 0; i < 8; i++) a.sendIp('198.19.0.2', Buffer.from(`m${i}`));
    wire.filter = () => true;
    const sent = dataOf({ log: wire.log.slice(n0) } as Wire, '198.18.0.1');
    expect(sent).toHaveLength(8);
    const forged = Buffer.from(sent[5]);
    forged[20] ^= 0x40;
    const got = deliverBatch(b, '198.18.0.1', [sent[0], sent[1], sent[2], sent[2], sent[3], sent[4], forged, sent[6], sent[7]]);
    expect(got.map(payloadOf)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm6', 'm7']);
    expect(b.dev.stats().drops.replay).toBe(1);
    expect(b.dev.stats().drops.decrypt_failed).toBe(1);
    // The same the other way: the sodium side's batch opened by the native side.
    const n1 = wire.log.length;
    wire.filter = () => false;
    for (let i = 0; i < 5; i++) b.sendIp('198.19.0.1', Buffer.from(`r${i}`));
    wire.filter = () => true;
    const back = dataOf({ log: wire.log.slice(n1) } as Wire, '198.18.0.2');
    const bad = Buffer.from(back[1]);
    bad[bad.length - 1] ^= 1;
    expect(deliverBatch(a, '198.18.0.2', [back[0], bad, back[2], back[3], back[4], back[4]]).map(payloadOf)).toEqual(['r0', 'r2', 'r3', 'r4']);
    expect(a.dev.stats().drops.decrypt_failed).toBe(1);
    expect(a.dev.stats().drops.replay).toBe(1);
    // A whole batch replayed later: every datagram refused by the window, none opened.
    expect(deliverBatch(b, '198.18.0.1', sent.slice(0, 4))).toEqual([]);
    expect(b.dev.stats().drops.replay).toBe(5);
  });

  it('carries a batch that crosses a rekey: data under the old and the new keypair around the handshake in one batch', () => {
    const { wire, clock, a, b } = pair({ aead: native }, { aead: native });
    a.sendIp('198.19.0.2', Buffer.from('x'));
    wire.flush();
    b.sendIp('198.19.0.1', Buffer.from('y'));
    wire.flush();
    const n0 = wire.log.length;
    wire.filter = () => false;
    a.sendIp('198.19.0.2', Buffer.from('old-1'));
    // Past REKEY_AFTER_TIME (120 s) the initiator starts a handshake on its next send.
    clock.advance(121_000, a.dev, b.dev);
    wire.filter = () => true;
    a.sendIp('198.19.0.2', Buffer.from('old-2'));
    const log = wire.log.slice(n0);
    const init = log.find((d) => d.bytes[0] === 1)!.bytes;
    const data = dataOf({ log } as Wire, '198.18.0.1');
    expect(data.length).toBeGreaterThanOrEqual(2);
    wire.log.length = 0;
    // b gets [old-1, initiation, old-2] in one batch: both data datagrams (old keypair) arrive.
    const got = deliverBatch(b, '198.18.0.1', [data[0], init, data[data.length - 1]]);
    expect(got.map(payloadOf)).toEqual(['old-1', 'old-2']);
    wire.flush(); // response → a; a confirms with queued data or a keepalive
    a.sendIp('198.19.0.2', Buffer.from('new'));
    wire.flush();
    expect(b.received.map(payloadOf)).toContain('new');
    expect(b.dev.stats().drops.decrypt_failed).toBe(0);
  });
});

describe('DataCipher over the native AEAD', () => {
  it('keeps a pool-backed slot sealable after a failed reserve (no headroom): counted by the caller, nothing written', async () => {
    const { DataCipher, Keypair } = await import('../packages/crypto/src/transport-data.js');
    const pool = new BufferPool({ count: 4, frameCapacity: 2048 });
    const c = new DataCipher(pool, native);
    const kp = new Keypair(randomBytes(32), randomBytes(32), 1, 2, true, 0, null);
    const s = pool.acquire();
    pool.fill(s, Buffer.from('abc'));
    pool.off[s] = pool.base(s) + 4;
    expect(c.seal(s, kp, 1)).toBe(false);
    expect(kp.sendCounter).toBe(0);
    pool.fill(s, Buffer.from('abc'));
    expect(c.seal(s, kp, 16)).toBe(true);
    expect(pool.len[s]).toBe(16 + 16 + 16);
    expect(kp.sendCounter).toBe(1);
  });
});
