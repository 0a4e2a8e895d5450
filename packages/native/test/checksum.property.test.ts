import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch, onesComplementSum } from '@overlay/dataplane';
import { checksumBatchJs, nativeChecksum } from '../src/checksum.js';
import { TcpSegmenter } from '../src/tso.js';

// The C checksum (csrc/csum.c) against the JavaScript reference, over random buffers, odd
// offsets and lengths, seeds, and whole TSO cuts compared byte for byte.
const addon = nativeChecksum();
if (!addon) throw new Error('the native addon does not load: these tests need it built (scripts/setup.sh)');

describe('native checksum == JavaScript reference', () => {
  it('checksumBatch: any offsets, lengths (odd or even, 0 .. 70 000) and seeds', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 70_000 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 0xffff })), { minLength: 1, maxLength: 12 }),
        (data, picks) => {
          const tri = new Int32Array(picks.length * 3);
          picks.forEach(([a, b, seed], i) => {
            const off = a % data.length;
            tri[i * 3] = off;
            tri[i * 3 + 1] = b % (data.length - off + 1);
            tri[i * 3 + 2] = seed;
          });
          const js = tri.slice();
          checksumBatchJs(data, js, picks.length);
          addon.checksumBatch(data, tri, picks.length);
          expect(Array.from(tri)).toEqual(Array.from(js));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('checksumBatch: all-0xff and all-zero data, where a sloppy fold or a lane overflow shows', () => {
    for (const fill of [0, 0xff]) {
      // Over 1 MiB of 0xff: the SSE2 path's 32-bit lanes must widen before they overflow.
      for (const len of [0, 1, 2, 3, 31, 32, 33, 65535, 65536, (1 << 20) + 35, 2_100_001]) {
        for (const seed of [0, 1, 0xfffe, 0xffff]) {
          const data = new Uint8Array(len + 1).fill(fill);
          const tri = Int32Array.of(1, len, seed);
          addon.checksumBatch(data, tri, 1);
          expect(tri[2]).toBe(onesComplementSum(data, 1, len, seed));
        }
      }
    }
  });

  it('checksumBatch refuses a triple outside the buffer or a seed over 16 bits with a RangeError', () => {
    const data = new Uint8Array(100);
    for (const t of [[90, 11, 0], [-1, 4, 0], [0, 4, 0x10000], [0, -2, 0]]) {
      expect(() => addon.checksumBatch(data, Int32Array.from(t), 1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    }
    expect(() => addon.checksumBatch(data, new Int32Array(3), 2)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => addon.checksumBatch(data, new Float64Array(3) as never, 1)).toThrow(TypeError);
  });

  it('TSO: C and JavaScript cut random super-frames into the same bytes', () => {
    fc.assert(
      fc.property(
        fc.record({
          payload: fc.integer({ min: 1, max: 65535 - 40 - 80 }),
          mss: fc.integer({ min: 1, max: 8900 }),
          ipOpt: fc.integer({ min: 0, max: 10 }), // IPv4 options, 4-byte words
          tcpOpt: fc.integer({ min: 0, max: 10 }),
          flags: fc.integer({ min: 0, max: 0xff }),
          seq: fc.nat({ max: 0xffffffff }),
          id: fc.nat({ max: 0xffff }),
          headroom: fc.integer({ min: 12, max: 77 }), // odd ones put the frame at odd addresses
          seed: fc.nat(),
        }),
        (p) => {
          const ihl = 20 + p.ipOpt * 4;
          const thl = 20 + p.tcpOpt * 4;
          const total = ihl + thl + p.payload;
          fc.pre(14 + total <= 65535 && Math.ceil(p.payload / p.mss) <= 2000);
          const f = Buffer.alloc(14 + total);
          for (let i = 0; i < f.length; i++) f[i] = (i * 131 + p.seed) & 0xff;
          f.writeUInt16BE(0x0800, 12);
          f[14] = 0x40 | (ihl / 4);
          f.writeUInt16BE(total, 16);
          f.writeUInt16BE(p.id, 18);
          f[23] = 6;
          f.writeUInt32BE(p.seq, 14 + ihl + 4);
          f[14 + ihl + 12] = (thl / 4) << 4;
          f[14 + ihl + 13] = p.flags;
          const vnet = [1, 1, (14 + ihl + thl) & 0xff, (14 + ihl + thl) >> 8, p.mss & 0xff, p.mss >> 8];
          const cut = (impl: 'native' | 'js') => {
            const jumbo = new BufferPool({ count: 1, frameCapacity: 65535, headroom: p.headroom });
            const pool = new BufferPool({ count: 2100 });
            const out: Buffer[] = [];
            const seg = new TcpSegmenter(pool, (b) => {
              for (let i = 0; i < b.count; i++) out.push(pool.copyOut(b.slots[i]));
            }, 64, impl);
            const j = jumbo.acquire();
            jumbo.fill(j, f);
            vnet.forEach((x, i) => (jumbo.data[jumbo.off[j] - 12 + i] = x));
            const batch = new PacketBatch(1);
            batch.push(j);
            seg.consume(jumbo, batch);
            return { out, segments: seg.segments, malformed: seg.malformed };
          };
          const c = cut('native');
          const js = cut('js');
          expect(c.segments).toBe(js.segments);
          expect(c.malformed).toBe(js.malformed);
          expect(c.out.length).toBe(js.out.length);
          for (let k = 0; k < c.out.length; k++) expect(c.out[k].equals(js.out[k])).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });
});
