/**
 * Datagrams whose first fragment a stage handled, so their later fragments follow it. Only a
 * datagram's first fragment carries its ports: the policy filter judges that one as the whole
 * datagram would be judged, the VIP translator finds its flow; then the datagram's (source,
 * destination, protocol, IP identification, direction) is remembered here with a value (the VIP's
 * flow entry; the policy stores 0), and the later fragments of that datagram find it. A non-first
 * fragment of no remembered datagram is dropped by the stage (`fragment`): its first fragment was
 * denied, lost, not yet seen (out of order), or evicted.
 *
 * Direct-mapped over typed arrays: no allocation per packet; a newer datagram hashing to the same
 * slot replaces the older one (whose remaining fragments are then dropped, counted). An entry lives
 * FRAGMENT_TTL_MS (the filter's clock moves per tick, so up to one tick more). IPv6 addresses enter
 * as 32-bit folds, as in the IPv6 conntrack: a collision could only let a forged non-first fragment
 * join a datagram whose first fragment was allowed, which a receiver cannot assemble into a new
 * datagram the policy did not judge.
 */
export const FRAGMENT_SLOTS = 4096;
/** How long the fragments of a passed first fragment are let through after it. */
export const FRAGMENT_TTL_MS = 5000;

export class FragmentTable {
  private readonly src = new Int32Array(FRAGMENT_SLOTS);
  private readonly dst = new Int32Array(FRAGMENT_SLOTS);
  /** IP identification (IPv4 16 bits, IPv6 32 bits). */
  private readonly ident = new Int32Array(FRAGMENT_SLOTS);
  /** proto | dir << 8 | family << 9 | 1 << 10 (in use). */
  private readonly tag = new Int32Array(FRAGMENT_SLOTS);
  private readonly until = new Float64Array(FRAGMENT_SLOTS);
  private readonly value = new Int32Array(FRAGMENT_SLOTS);

  private static slot(src: number, dst: number, ident: number, proto: number): number {
    let h = Math.imul(src ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ dst ^ (h >>> 15), 0xc2b2ae35);
    h = Math.imul(h ^ ident ^ (h >>> 13), 0x27d4eb2f);
    return (h ^ proto ^ (h >>> 16)) & (FRAGMENT_SLOTS - 1);
  }

  private static tagOf(proto: number, dir: number, v6: number): number {
    return proto | (dir << 8) | (v6 << 9) | 1024;
  }

  /** A first fragment passed: let the rest of its datagram through until now + TTL, with `value` (≥ 0) for them. */
  remember(src: number, dst: number, ident: number, proto: number, dir: number, v6: number, now: number, value = 0): void {
    const s = FragmentTable.slot(src, dst, ident, proto);
    this.src[s] = src;
    this.dst[s] = dst;
    this.ident[s] = ident;
    this.tag[s] = FragmentTable.tagOf(proto, dir, v6);
    this.until[s] = now + FRAGMENT_TTL_MS;
    this.value[s] = value;
  }

  /** The value remembered for a non-first fragment's datagram, or -1. */
  find(src: number, dst: number, ident: number, proto: number, dir: number, v6: number, now: number): number {
    const s = FragmentTable.slot(src, dst, ident, proto);
    return this.tag[s] === FragmentTable.tagOf(proto, dir, v6) && this.src[s] === src && this.dst[s] === dst && this.ident[s] === ident && this.until[s] >= now ? this.value[s] : -1;
  }

  /** Whether a non-first fragment belongs to a datagram whose first fragment passed. */
  passes(src: number, dst: number, ident: number, proto: number, dir: number, v6: number, now: number): boolean {
    return this.find(src, dst, ident, proto, dir, v6, now) >= 0;
  }

  /** Forget every datagram (a policy swap: the first fragments are judged again; a VIP change). */
  clear(): void {
    this.tag.fill(0);
  }
}
