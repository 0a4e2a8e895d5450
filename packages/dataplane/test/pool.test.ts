import { describe, expect, it } from 'vitest';
import { BufferPool, DoubleReleaseError, InvalidConfigError, PacketBatch } from '@overlay/dataplane';

describe('BufferPool', () => {
  it('hands out distinct slots with headroom and counts exhaustion instead of growing', () => {
    const pool = new BufferPool({ count: 3, frameCapacity: 1500 });
    const a = pool.acquire();
    const b = pool.acquire();
    const c = pool.acquire();
    expect(new Set([a, b, c]).size).toBe(3);
    expect(pool.off[a] - pool.base(a)).toBe(pool.headroom);
    expect(pool.acquire()).toBe(-1);
    expect(pool.exhausted).toBe(1);
    expect(pool.data.length).toBe(3 * pool.stride);
    pool.release(b);
    expect(pool.acquire()).toBe(b);
  });

  it('detects double release and foreign slots', () => {
    const pool = new BufferPool({ count: 2 });
    const a = pool.acquire();
    pool.release(a);
    expect(() => pool.release(a)).toThrow(DoubleReleaseError);
    expect(() => pool.release(7)).toThrow(DoubleReleaseError);
    try {
      pool.release(a);
    } catch (e) {
      expect((e as DoubleReleaseError).code).toBe('OVL_ERR_DOUBLE_RELEASE');
    }
  });

  it('rejects bad sizes with a typed error naming the field', () => {
    expect(() => new BufferPool({ count: 0 })).toThrow(InvalidConfigError);
    try {
      new BufferPool({ count: 4, headroom: -1 });
    } catch (e) {
      expect((e as InvalidConfigError).field).toBe('headroom');
    }
  });

  it('view reads the same bytes as data, across the whole slab', () => {
    const pool = new BufferPool({ count: 3, frameCapacity: 64 });
    const last = pool.limit(2) - 4;
    const at = pool.base(1) + 6; // not 4-byte aligned
    pool.data.writeUInt32BE(0xc6130001, at);
    pool.data.writeUInt32BE(0x01020304, last);
    expect(pool.view.getUint32(at)).toBe(0xc6130001);
    expect(pool.view.getInt32(at)).toBe(0xc6130001 | 0);
    expect(pool.view.getUint32(last)).toBe(0x01020304);
    expect(pool.view.byteLength).toBe(pool.data.length);
  });

  it('fills, copies out and keeps slots apart', () => {
    const pool = new BufferPool({ count: 2, frameCapacity: 64 });
    const a = pool.acquire();
    const b = pool.acquire();
    expect(pool.fill(a, Buffer.from('hello'))).toBe(true);
    expect(pool.fill(b, Buffer.alloc(65))).toBe(false);
    expect(pool.copyOut(a).toString()).toBe('hello');
    expect(pool.limit(a)).toBeLessThanOrEqual(pool.base(a) + pool.stride);
    const batch = new PacketBatch(1);
    expect(batch.push(a)).toBe(true);
    expect(batch.push(b)).toBe(false);
  });
});
