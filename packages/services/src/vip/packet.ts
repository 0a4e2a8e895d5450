/**
 * Small packet readers shared by the services stages (the VIP translator, the policy filter).
 * Each reads in place and allocates nothing.
 */

/** The big-endian 32-bit word at `at`, as a signed int32 (the tables' key form). */
export function read32(d: Uint8Array, at: number): number {
  return (d[at] << 24) | (d[at + 1] << 16) | (d[at + 2] << 8) | d[at + 3];
}

/**
 * The IPv4 header at `l3` (the frame ends at `end`, and `l3 + 20 <= end` was checked): its total
 * length when the header is sound — version 4, header length ≥ 20, total length ≥ header length
 * and within the frame — else -1. Fragments are the caller's rule (the translator refuses every
 * fragment, the filter only non-first ones).
 */
export function ipv4Total(d: Uint8Array, l3: number, end: number): number {
  const vihl = d[l3];
  const hl = (vihl & 15) << 2;
  const total = (d[l3 + 2] << 8) | d[l3 + 3];
  return vihl >> 4 !== 4 || hl < 20 || total < hl || l3 + total > end ? -1 : total;
}

/** A TCP segment's end in sequence space (its sequence number + payload + SYN + FIN), int32. */
export function tcpSeqEnd(d: Uint8Array, l4: number, l4len: number, flags: number): number {
  return (read32(d, l4 + 4) + (l4len - ((d[l4 + 12] >>> 4) << 2)) + (flags & 2 ? 1 : 0) + (flags & 1 ? 1 : 0)) | 0;
}

/** A 32-bit key for the IPv6 address at `d[at .. at + 16)` (the tables' key; equal keys are compared byte for byte). */
export function addressKey6(d: Uint8Array, at: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i += 4) {
    h = Math.imul(h ^ read32(d, at + i), 0x01000193);
    h ^= h >>> 15;
  }
  return h | 0;
}

/** `a[ai .. ai + 16)` equals `b[bi .. bi + 16)`. */
export function equal16(a: Uint8Array, ai: number, b: Uint8Array, bi: number): boolean {
  return read32(a, ai) === read32(b, bi) && read32(a, ai + 4) === read32(b, bi + 4) && read32(a, ai + 8) === read32(b, bi + 8) && read32(a, ai + 12) === read32(b, bi + 12);
}
