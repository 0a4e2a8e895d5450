import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import type { ChecksumImpl } from '../src/checksum.js';
import { TcpCoalescer } from '../src/gro.js';
import { csum } from './helpers/checksum.js';

// Frames are built by hand here so every header field the coalescer reads is explicit.
const SRC = [198, 19, 0, 1];
const DST = [198, 19, 0, 2];

interface Seg {
  seq: number;
  len?: number;
  flags?: number;
  sport?: number;
  ack?: number;
  badSum?: boolean;
}

function tcpFrame({ seq, len = 1000, flags = 0x10, sport = 40000, ack = 7, badSum = false }: Seg): Buffer {
  const f = Buffer.alloc(14 + 20 + 32 + len);
  Buffer.from('020000000002020000000001', 'hex').copy(f, 0);
  f.writeUInt16BE(0x0800, 12);
  const ip = 14;
  f[ip] = 0x45;
  f.writeUInt16BE(20 + 32 + len, ip + 2);
  f.writeUInt16BE(0x4000, ip + 6); // DF
  f[ip + 8] = 64;
  f[ip + 9] = 6;
  Buffer.from(SRC).copy(f, ip + 12);
  Buffer.from(DST).copy(f, ip + 16);
  f.writeUInt16BE(~csum(f, ip, ip + 20) & 0xffff, ip + 10);
  const t = ip + 20;
  f.writeUInt16BE(sport, t);
  f.writeUInt16BE(5201, t + 2);
  f.writeUInt32BE(seq >>> 0, t + 4);
  f.writeUInt32BE(ack, t + 8);
  f[t + 12] = 8 << 4; // 32-byte header: timestamps option
  f[t + 13] = flags;
  f.writeUInt16BE(502, t + 14);
  Buffer.from('0101080a0000000100000002', 'hex').copy(f, t + 20);
  for (let i = 0; i < len; i++) f[t + 32 + i] = (seq + i) & 0xff;
  const l4 = 32 + len;
  const pseudo = csum(f, ip + 12, ip + 20, 6 + l4);
  f.writeUInt16BE(~csum(f, t, t + l4, pseudo) & 0xffff, t + 16);
  if (badSum) f[t + 40] ^= 0xff;
  return f;
}

function plan(impl: ChecksumImpl, frames: Buffer[], headroom?: number) {
  const pool = new BufferPool({ count: 128, headroom });
  const batch = new PacketBatch(128);
  for (const fr of frames) {
    const s = pool.acquire();
    pool.fill(s, fr);
    batch.push(s);
  }
  const c = new TcpCoalescer(impl);
  const n = c.plan(pool, batch);
  const groups: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) groups.push([c.groups[2 * i], c.groups[2 * i + 1]]);
  return { pool, batch, c, groups };
}

// The same behaviour with the checksums verified in C (csrc/csum.c) and in JavaScript.
describe.each<ChecksumImpl>(['native', 'js'])('TcpCoalescer (%s)', (impl) => {
  it('merges contiguous full segments of one flow and rewrites the first frame for GSO', () => {
    const segs = [0, 1000, 2000, 3000].map((seq) => tcpFrame({ seq: 5000 + seq }));
    const { pool, batch, c, groups } = plan(impl, segs);
    expect(groups).toEqual([[4, 66]]);
    expect(c.merged).toBe(4);
    const s = batch.slots[0];
    const o = pool.off[s];
    const d = pool.data;
    // IP total length covers all four payloads; the IP checksum is valid again.
    expect(d.readUInt16BE(o + 16)).toBe(20 + 32 + 4000);
    expect(csum(d, o + 14, o + 34)).toBe(0xffff);
    // TCP checksum field = pseudo-header sum (checksum offload), for the merged length.
    expect(d.readUInt16BE(o + 34 + 16)).toBe(csum(d, o + 14 + 12, o + 14 + 20, 6 + 32 + 4000));
    // virtio-net header in the headroom: NEEDS_CSUM, TCPV4, hdr_len, gso_size, csum_start/offset.
    const v = o - 12;
    expect([d[v], d[v + 1], d.readUInt16LE(v + 2), d.readUInt16LE(v + 4), d.readUInt16LE(v + 6), d.readUInt16LE(v + 8)]).toEqual([1, 1, 66, 1000, 34, 16]);
  });

  it('splits at a sequence gap, another flow, a different ack, and after PSH or a short segment', () => {
    const { groups } = plan(impl, [
      tcpFrame({ seq: 0 }),
      tcpFrame({ seq: 1000 }),
      tcpFrame({ seq: 3000 }), // gap
      tcpFrame({ seq: 4000, sport: 40001 }), // other flow
      tcpFrame({ seq: 5000, sport: 40001 }),
      tcpFrame({ seq: 6000, sport: 40001, ack: 8 }), // ack moved
      tcpFrame({ seq: 10000, flags: 0x18 }), // PSH ends its group ...
      tcpFrame({ seq: 11000 }), // ... so this starts a new one
      tcpFrame({ seq: 12000, len: 500 }), // short: last of its group
      tcpFrame({ seq: 12500, len: 500 }),
    ]);
    expect(groups.map((g) => g[0])).toEqual([2, 1, 2, 1, 1, 2, 1]);
  });

  it('keeps PSH of the last merged segment', () => {
    const { pool, batch, groups } = plan(impl, [tcpFrame({ seq: 0 }), tcpFrame({ seq: 1000, flags: 0x18 })]);
    expect(groups).toEqual([[2, 66]]);
    expect(pool.data[pool.off[batch.slots[0]] + 34 + 13]).toBe(0x18);
  });

  it('passes other frames through alone and never merges a segment with a bad checksum', () => {
    const arp = Buffer.alloc(42);
    arp.writeUInt16BE(0x0806, 12);
    const { c, groups } = plan(impl, [
      tcpFrame({ seq: 0 }),
      tcpFrame({ seq: 1000, badSum: true }),
      tcpFrame({ seq: 2000 }),
      arp,
      tcpFrame({ seq: 0, flags: 0x12 }), // SYN-ACK: not a data segment
    ]);
    expect(groups).toEqual([
      [1, 66],
      [1, 0],
      [1, 66],
      [1, 0],
      [1, 0],
    ]);
    expect(c.badChecksum).toBe(1);
    expect(c.merged).toBe(0);
  });

  it('caps a merged segment at 64 frames and 64 KiB', () => {
    const many = Array.from({ length: 100 }, (_, i) => tcpFrame({ seq: i * 900, len: 900 }));
    const { groups } = plan(impl, many);
    expect(groups.map((g) => g[0])).toEqual([64, 36]);
    const big = Array.from({ length: 50 }, (_, i) => tcpFrame({ seq: i * 1400, len: 1400 }));
    const r = plan(impl, big);
    // 46 × 1400 + 52 header bytes fits in 65535; a 47th would not.
    expect(r.groups.map((g) => g[0])).toEqual([46, 4]);
  });

  it('writes no virtio-net header in front of a frame without the headroom for it, and counts it', () => {
    const segs = [0, 1000, 2000, 3000].map((seq) => tcpFrame({ seq }));
    // No headroom: each frame starts where its slot starts, right after the previous slot.
    const { pool, c, groups } = plan(impl, segs, 0);
    const before = Buffer.from(pool.data);
    const again = c.plan(pool, (() => {
      const b = new PacketBatch(4);
      for (let i = 0; i < 4; i++) b.push(i);
      return b;
    })());
    expect(groups).toEqual([[1, 0], [1, 0], [1, 0], [1, 0]]);
    expect(again).toBe(4);
    expect(c.noHeadroom).toBe(8);
    expect(c.merged).toBe(0);
    expect(Buffer.compare(before, pool.data)).toBe(0);
    // With room, the same frames merge.
    const ok = plan(impl, segs, 12);
    expect(ok.groups).toEqual([[4, 66]]);
    expect(ok.c.noHeadroom).toBe(0);
  });
});
