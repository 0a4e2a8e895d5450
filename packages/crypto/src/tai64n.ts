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
