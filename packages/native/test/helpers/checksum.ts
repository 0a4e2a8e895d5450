/**
 * Folded ones'-complement sum of b[start, end) plus `acc`, for the tests' own packets and checks.
 * Written out here rather than taken from @overlay/dataplane so the code under test (which uses the
 * dataplane's) is checked against an independent reference.
 */
export function csum(b: Buffer, start: number, end: number, acc = 0): number {
  for (let i = start; i < end; i += 2) acc += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}
