/**
 * TAI64N timestamps (12 bytes: big-endian seconds + 2^62 + 10, then nanoseconds). An initiation
 * whose timestamp is not newer than the last one accepted from that peer is a replay.
 */
const TAI64_BASE = 0x400000000000000an;

export function tai64n(epochMs: number, out: Buffer = Buffer.alloc(12)): Buffer {
  const secs = Math.floor(epochMs / 1000);
  // Whole microseconds only: finer timing would leak the local clock's precision.
  const nanos = Math.floor((epochMs - secs * 1000) * 1000) * 1000;
  out.writeBigUInt64BE(TAI64_BASE + BigInt(secs), 0);
  out.writeUInt32BE(nanos, 8);
  return out;
}

/** -1, 0, 1 as a is before, equal to, after b. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 12; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** Issues TAI64N stamps from a wall clock, strictly increasing even when the clock stands still. */
export class Tai64nStamper {
  private last: Buffer = Buffer.alloc(12);
  constructor(private readonly wallMs: () => number) {}

  next(): Buffer {
    const t = tai64n(this.wallMs());
    if (compareTai64n(t, this.last) <= 0) {
      // Same or earlier microsecond: one microsecond past the last stamp.
      this.last.copy(t);
      const nanos = t.readUInt32BE(8) + 1000;
      if (nanos >= 1e9) {
        t.writeBigUInt64BE(t.readBigUInt64BE(0) + 1n, 0);
        t.writeUInt32BE(0, 8);
      } else t.writeUInt32BE(nanos, 8);
    }
    t.copy(this.last);
    return t;
  }
}
