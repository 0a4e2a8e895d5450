/** Internet checksum (RFC 1071) helpers over a Buffer, for the offload paths. No allocation. */

/** One's-complement sum of n bytes at o (big-endian 16-bit words) added to `acc`, not folded. */
export function sum16(d: Buffer, o: number, n: number, acc: number): number {
  const end = o + (n & ~1);
  for (let i = o; i < end; i += 2) acc += (d[i] << 8) | d[i + 1];
  if (n & 1) acc += d[o + n - 1] << 8;
  return acc;
}

/** Fold carries into 16 bits. */
export function fold(x: number): number {
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000);
  return x;
}
