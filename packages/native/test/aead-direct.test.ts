// csrc/aead.c's direct path (OpenSSL's ChaCha20_ctr32 and Poly1305 called without EVP, see the
// file's header) against its EVP path, byte for byte, on each branch the direct path takes:
// seal with the key block written before the body (off ≥ 64) or in a call of its own (off < 64);
// open with one keystream call into the scratch area (body + 64 ≤ 2112 bytes) or two (longer).
// A forged message is refused on every branch with the slot left exactly as it came.
import { randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { native } from '../src/binding.js';

const a = native();
const direct = { seal: a.sealBatch!, open: a.openBatch! };
const evp = { seal: a.sealBatchEvp!, open: a.openBatchEvp! };
const STRIDE = 9216;
// Around the branch points: 64 bytes before the body (seal), 2048 bytes of body (open), blocks of 16/64.
const HEADS = [16, 17, 40, 63, 64, 65, 128];
const SIZES = [0, 1, 15, 16, 17, 63, 64, 65, 1400, 1458, 2047, 2048, 2049, 4000, 9000];

function slab(head: number) {
  const n = SIZES.length;
  const data = new Uint8Array(n * STRIDE);
  const off = new Int32Array(n);
  const len = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    off[i] = i * STRIDE + head;
    len[i] = SIZES[i];
    data.set(randomBytes(len[i]), off[i]);
  }
  // Slots in random order, so a slot's neighbours in the slab are not its neighbours in the run.
  const slots = Int32Array.from([...Array(n).keys()].sort(() => Math.random() - 0.5));
  return { data, off, len, slots };
}
type Slab = ReturnType<typeof slab>;
const copy = (s: Slab): Slab => ({ data: s.data.slice(), off: s.off.slice(), len: s.len.slice(), slots: s.slots.slice() });
const same = (x: Slab, y: Slab) => Buffer.from(x.data).equals(Buffer.from(y.data)) && x.off.join() === y.off.join() && x.len.join() === y.len.join();

describe('native AEAD: direct path = EVP path', () => {
  it('takes the direct path where node carries its own OpenSSL', () => {
    // A node built against a shared libcrypto does not export the primitives: EVP there.
    const ownOpenssl = (process.config.variables as Record<string, unknown>).node_shared_openssl !== true;
    expect(a.aeadDirect).toBe(ownOpenssl);
  });

  it('seals byte for byte as EVP does, on every head offset and size (counters across 2^32)', () => {
    for (const head of HEADS) {
      const key = randomBytes(32);
      const x = slab(head);
      const y = copy(x);
      const untouched = copy(x);
      const counter = head % 2 ? 2 ** 32 - 5 : randomInt(0, 2 ** 47);
      const args = [0, SIZES.length, key, randomInt(0, 2 ** 31), counter | 0, (counter / 2 ** 32) | 0] as const;
      direct.seal(x.data, x.off, x.len, x.slots, ...args);
      evp.seal(y.data, y.off, y.len, y.slots, ...args);
      expect(same(x, y), `head ${head}`).toBe(true);
      // Outside the messages (header, body, tag) nothing changed: the key block's bytes were put back.
      for (let i = 0; i < SIZES.length; i++) {
        const base = i * STRIDE;
        expect(Buffer.from(x.data.subarray(base, x.off[i])).equals(Buffer.from(untouched.data.subarray(base, x.off[i]))), `before slot ${i}, head ${head}`).toBe(true);
      }
    }
  });

  it('opens what EVP sealed and the reverse; forged body, tag or counter refused, slot as it came', () => {
    for (const head of HEADS) {
      for (const [sealer, opener] of [[evp, direct], [direct, evp], [direct, direct]] as const) {
        const key = randomBytes(32);
        const s = slab(head);
        const plain = copy(s);
        sealer.seal(s.data, s.off, s.len, s.slots, 0, SIZES.length, key, 9, 77, 1);
        // Forge three slots, one way each: the largest (two-call open), a 1400-byte one, the empty one.
        const forged = [SIZES.indexOf(9000), SIZES.indexOf(1400), SIZES.indexOf(0)];
        s.data[s.off[forged[0]] + 16 + randomInt(0, 9000)] ^= 1 << randomInt(0, 8);
        s.data[s.off[forged[1]] + s.len[forged[1]] - 1 - randomInt(0, 16)] ^= 1;
        s.data[s.off[forged[2]] + 8 + randomInt(0, 8)] ^= 1;
        const before = copy(s);
        const ok = new Uint8Array(SIZES.length);
        expect(opener.open(s.data, s.off, s.len, s.slots, 0, SIZES.length, key, ok)).toBe(SIZES.length - 3);
        for (let i = 0; i < SIZES.length; i++) {
          const slot = s.slots[i];
          const o = s.off[slot];
          if (forged.includes(slot)) {
            expect(ok[i]).toBe(0);
            expect([o, s.len[slot]]).toEqual([before.off[slot], before.len[slot]]);
            expect(Buffer.from(s.data.subarray(slot * STRIDE, (slot + 1) * STRIDE)).equals(Buffer.from(before.data.subarray(slot * STRIDE, (slot + 1) * STRIDE)))).toBe(true);
          } else {
            expect(ok[i]).toBe(1);
            expect([o, s.len[slot]]).toEqual([plain.off[slot], plain.len[slot]]);
            expect(Buffer.from(s.data.subarray(o, o + s.len[slot])).equals(Buffer.from(plain.data.subarray(o, o + s.len[slot])))).toBe(true);
          }
        }
      }
    }
  });

  it('range-checks before writing anything, on the direct path too', () => {
    const s = slab(64);
    const before = copy(s);
    const key = randomBytes(32);
    s.off[s.slots[5]] = 8; // no room for the header
    expect(() => direct.seal(s.data, s.off, s.len, s.slots, 0, SIZES.length, key, 1, 0, 0)).toThrow(RangeError);
    s.off[s.slots[5]] = before.off[s.slots[5]];
    expect(same(s, before)).toBe(true);
    s.len[s.slots[3]] = 31; // shorter than header and tag
    expect(() => direct.open(s.data, s.off, s.len, s.slots, 0, SIZES.length, key, new Uint8Array(SIZES.length))).toThrow(RangeError);
    s.len[s.slots[3]] = before.len[s.slots[3]];
    expect(same(s, before)).toBe(true);
  });
});
