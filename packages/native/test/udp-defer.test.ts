// UdpOptions.deferSealed (csrc/io_linux.c deferred copies, csrc/aead.c message_of): WireGuard
// transport data received through UDP GRO keeps its body in the staging area until openBatch
// decrypts it from there into the slot. Checked over loopback with real sockets: what the slot
// holds before the open, that every message opens to its plaintext, that a forged one is refused
// and then holds exactly what arrived, that short and non-data datagrams are copied whole, and that
// a slot opened after the staging area was refilled fails instead of opening stale bytes.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import { native } from '../src/binding.js';
import { sendBodies, transports, until } from './helpers/udp.js';

const a = native();
const bind = transports();
const KEY = randomBytes(32);

/** `sizes` plaintexts sealed as transport data (counters from `counter`), as the bytes that go on the wire. */
function sealed(sizes: number[], counter: number): { plain: Buffer[]; wire: Buffer[] } {
  const pool = new BufferPool({ count: sizes.length });
  const slots = new Int32Array(sizes.length);
  const plain = sizes.map((n) => randomBytes(n));
  plain.forEach((p, i) => {
    slots[i] = pool.acquire();
    pool.fill(slots[i], p);
  });
  a.sealBatch!(pool.data, pool.off, pool.len, slots, 0, sizes.length, KEY, 77, counter, 0);
  return { plain, wire: [...slots].map((s) => pool.copyOut(s)) };
}

/** A receiver with GRO (and deferSealed unless told) whose sink runs `onBatch` on each delivery. */
function receiver(defer: boolean, onBatch: (pool: BufferPool, batch: PacketBatch) => void) {
  const pool = new BufferPool({ count: 512 });
  pool.data.fill(0xee);
  const t = bind({ address: '127.0.0.1', port: 0, gro: true, deferSealed: defer, batchSize: 64, recvBufferBytes: 4 << 20 });
  t.start(pool, (batch) => onBatch(pool, batch));
  return { pool, t };
}

/** Opens each slot of `batch` whose message is transport data; returns per slot [bytes before, ok, bytes after]. */
function openAll(pool: BufferPool, batch: PacketBatch, open = a.openBatch!): Array<[Buffer, number, Buffer]> {
  const out: Array<[Buffer, number, Buffer]> = [];
  const ok = new Uint8Array(1);
  const one = new Int32Array(1);
  for (let i = 0; i < batch.count; i++) {
    const s = batch.slots[i];
    const before = pool.copyOut(s);
    ok[0] = 2;
    if (pool.len[s] >= 32 && before.readUInt32LE(0) === 4) {
      one[0] = s;
      open(pool.data, pool.off, pool.len, one, 0, 1, KEY, ok);
    }
    out.push([before, ok[0], pool.copyOut(s)]);
    pool.release(s);
  }
  return out;
}

describe('UdpTransport deferSealed', () => {
  it('opens transport data straight from the staging area (direct AEAD and EVP); forged, short and handshake datagrams as before', async () => {
    const send = bind({ address: '127.0.0.1', port: 0, gso: true, sendBufferBytes: 4 << 20 });
    const sendPool = new BufferPool({ count: 256 });
    // Deferred with the direct AEAD and with EVP (which copies the message in first), then copied.
    for (const [defer, open] of [[true, a.openBatch!], [true, a.openBatchEvp!], [false, a.openBatch!]] as const) {
      const seen: Array<[Buffer, number, Buffer]> = [];
      const r = receiver(defer, (pool, batch) => seen.push(...openAll(pool, batch, open)));
      // One GSO run of 40 sealed 1400-byte messages, then a keepalive (empty body), a forged
      // message, a 20-byte datagram of type 4 and a 148-byte one of type 1, each on its own.
      const run = sealed(Array<number>(40).fill(1400), 1000);
      const extra = sealed([0, 1400], 2000);
      const forged = Buffer.from(extra.wire[1]);
      forged[16 + 700] ^= 0x20;
      const short = Buffer.alloc(20);
      short.writeUInt32LE(4, 0);
      const hello = randomBytes(148);
      hello.writeUInt32LE(1, 0);
      expect(sendBodies(send, sendPool, r.t.localPort, run.wire)).toBe(40);
      for (const d of [extra.wire[0], forged, short, hello]) expect(sendBodies(send, sendPool, r.t.localPort, [d])).toBe(1);
      await until(() => seen.length === 44, 10_000, () => `${seen.length}/44`);
      expect(r.t.counters.get('rxGroMessages')).toBeGreaterThanOrEqual(1);
      run.wire.forEach((w, i) => {
        const [before, ok, after] = seen[i];
        expect(ok, `message ${i}`).toBe(1);
        expect(after.equals(run.plain[i])).toBe(true);
        // Deferred: only the header was copied into the slot; without, the whole message was.
        expect(before.subarray(0, 16).equals(w.subarray(0, 16))).toBe(true);
        expect(before.equals(w), `message ${i} copied whole`).toBe(!defer);
      });
      const [keepalive, bad, tooShort, handshake] = seen.slice(40);
      expect([keepalive[1], keepalive[2].length]).toEqual([1, 0]);
      expect(bad[1]).toBe(0);
      expect(bad[2].equals(forged)).toBe(true); // refused, and the slot holds what arrived
      expect([tooShort[1], tooShort[0].equals(short)]).toEqual([2, true]);
      expect([handshake[1], handshake[0].equals(hello)]).toEqual([2, true]);
      await r.t.close();
      expect(r.pool.available).toBe(r.pool.count);
    }
  });

  it('a deferred slot opened after the staging area was refilled fails; it never opens stale bytes', async () => {
    const send = bind({ address: '127.0.0.1', port: 0, gso: true });
    const sendPool = new BufferPool({ count: 64 });
    const held: number[] = [];
    const results: number[] = [];
    let deliveries = 0;
    const r = receiver(true, (pool, batch) => {
      deliveries++;
      if (deliveries === 1) {
        // Keep the first datagram past this callback (as a sink must not); release the rest.
        held.push(batch.slots[0]);
        for (let i = 1; i < batch.count; i++) pool.release(batch.slots[i]);
        return;
      }
      // Next delivery: the staging area has been refilled since. Open the held slot, then this batch.
      const ok = new Uint8Array(1);
      a.openBatch!(pool.data, pool.off, pool.len, Int32Array.of(held[0]), 0, 1, KEY, ok);
      results.push(ok[0]);
      pool.release(held[0]);
      results.push(...openAll(pool, batch).map((x) => x[1]));
    });
    const first = sealed([1000, 1000], 1);
    const second = sealed([1000], 3);
    expect(sendBodies(send, sendPool, r.t.localPort, first.wire)).toBe(2);
    await until(() => deliveries === 1);
    expect(sendBodies(send, sendPool, r.t.localPort, second.wire)).toBe(1);
    await until(() => deliveries === 2);
    expect(results).toEqual([0, 1]);
    await r.t.close();
    expect(r.pool.available).toBe(r.pool.count);
  });
});
