/** Big-endian 32-bit access on plain Uint8Arrays (no DataView, no allocation). */

/** Unsigned 32-bit value at buf[off]. */
export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

/** Write the low 32 bits of `v` at buf[off]. */
export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = v >>> 16;
  buf[off + 2] = v >>> 8;
  buf[off + 3] = v;
}

/**
 * The same 32 bits as a signed int32: what the hot path uses, since values ≥ 2^31 as
 * unsigned would be heap numbers (an allocation) whenever V8 has to box them.
 */
export function readI32(buf: Uint8Array, off: number): number {
  return (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
}
