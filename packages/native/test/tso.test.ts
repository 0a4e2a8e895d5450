import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import type { ChecksumImpl } from '../src/checksum.js';
import { TcpSegmenter } from '../src/tso.js';
import { csum } from './helpers/checksum.js';

/** A TCP super-segment as the kernel hands it over with TSO: one header, `payload` bytes, partial checksum. */
function superFrame(payload: number, flags = 0x18): Buffer {
  const f = Buffer.alloc(14 + 20 + 20 + payload);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40 + payload, 16);
  f.writeUInt16BE(0x1234, 18); // IP id
  f[22] = 64;
  f[23] = 6;
  Buffer.from([198, 19, 0, 1, 198, 19, 0, 2]).copy(f, 26);
  f.writeUInt32BE(0xfffff000, 38); // sequence number close to wrapping
  f[46] = 5 << 4;
  f[47] = flags;
  for (let i = 0; i < payload; i++) f[54 + i] = (i * 7) & 0xff;
  return f;
}

function run(impl: ChecksumImpl, frames: Array<{ frame: Buffer; vnet: number[] }>, poolSlots = 256) {
  const jumbo = new BufferPool({ count: 8, frameCapacity: 65535, headroom: 64 });
  const pool = new BufferPool({ count: poolSlots });
  const out: Buffer[] = [];
  const seg = new TcpSegmenter(pool, (b) => {
    for (let i = 0; i < b.count; i++) {
      out.push(pool.copyOut(b.slots[i]));
      pool.release(b.slots[i]);
    }
  }, 16, impl);
  const batch = new PacketBatch(8);
  for (const { frame, vnet } of frames) {
    const j = jumbo.acquire();
    jumbo.fill(j, frame);
    const v = jumbo.off[j] - 12;
    jumbo.data.fill(0, v, v + 12);
    vnet.forEach((x, i) => (jumbo.data[v + i] = x));
    batch.push(j);
  }
  seg.consume(jumbo, batch);
  return { out, seg, jumbo, pool };
}

const le = (n: number) => [n & 0xff, n >> 8];

// The same behaviour from the C segmentation (csrc/csum.c) and the JavaScript reference.
describe.each<ChecksumImpl>(['native', 'js'])('TcpSegmenter (%s)', (impl) => {
  it('runs the implementation asked for', () => {
    expect(run(impl, []).seg.impl).toBe(impl);
  });

  it('cuts a 64 KiB TCP segment at the MSS with correct headers and checksums', () => {
    const payload = 10_000;
    const { out, seg, jumbo } = run(impl, [{ frame: superFrame(payload), vnet: [1, 1, ...le(54), ...le(1400), ...le(34), ...le(16)] }]);
    expect(out).toHaveLength(8); // 7 × 1400 + 200
    expect(seg.superFrames).toBe(1);
    let at = 0;
    out.forEach((f, k) => {
      const plen = Math.min(1400, payload - at);
      expect(f.length).toBe(54 + plen);
      expect(f.readUInt16BE(16)).toBe(40 + plen);
      expect(f.readUInt16BE(18)).toBe(0x1234 + k);
      expect(csum(f, 14, 34)).toBe(0xffff); // IP header checksum
      expect(f.readUInt32BE(38)).toBe((0xfffff000 + at) >>> 0);
      // PSH only on the last segment.
      expect(f[47]).toBe(k === out.length - 1 ? 0x18 : 0x10);
      const l4 = 20 + plen;
      expect(csum(f, 34, 34 + l4, csum(f, 26, 34, 6 + l4))).toBe(0xffff); // TCP checksum
      expect(f[54]).toBe((at * 7) & 0xff);
      at += plen;
    });
    expect(jumbo.available).toBe(jumbo.count);
  });

  it('completes a partial checksum on an ordinary frame', () => {
    const f = superFrame(100, 0x10);
    f.writeUInt16BE(40 + 100, 16);
    // Kernel-style partial checksum: the field holds the folded pseudo-header sum.
    f.writeUInt16BE(csum(f, 26, 34, 6 + 120), 50);
    const { out, seg } = run(impl, [{ frame: f, vnet: [1, 0, 0, 0, 0, 0, ...le(34), ...le(16)] }]);
    expect(seg.checksummed).toBe(1);
    expect(csum(out[0], 34, 154, csum(out[0], 26, 34, 6 + 120))).toBe(0xffff);
  });

  it('counts drops when the dataplane pool runs dry, and refuses what it cannot cut', () => {
    const { out, seg } = run(impl, [{ frame: superFrame(10_000), vnet: [1, 1, ...le(54), ...le(1000), ...le(34), ...le(16)] }], 4);
    expect(out).toHaveLength(4 + 0); // the sink releases each batch, but 16 > 4 slots at once
    expect(seg.poolDrops).toBe(6);
    const udp = run(impl, [{ frame: superFrame(3000), vnet: [1, 5, ...le(42), ...le(1000), ...le(34), ...le(6)] }]); // GSO UDP_L4
    expect(udp.out).toHaveLength(0);
    expect(udp.seg.malformed).toBe(1);
  });

  it('refuses an MSS whose segments would not fit a dataplane slot, and leaves the pool untouched', () => {
    // Default slots take 9018-byte frames: 54 header bytes + 9000 do not fit.
    const { out, seg, pool, jumbo } = run(impl, [{ frame: superFrame(20_000), vnet: [1, 1, ...le(54), ...le(9000), ...le(34), ...le(16)] }]);
    expect(out).toHaveLength(0);
    expect(seg.malformed).toBe(1);
    expect(seg.superFrames).toBe(0);
    expect(pool.data.every((b) => b === 0)).toBe(true);
    expect(jumbo.available).toBe(jumbo.count);
    // A single segment shorter than the MSS still fits and goes through.
    const one = run(impl, [{ frame: superFrame(1000), vnet: [1, 1, ...le(54), ...le(9000), ...le(34), ...le(16)] }]);
    expect(one.out).toHaveLength(1);
    expect(one.seg.malformed).toBe(0);
  });
});
