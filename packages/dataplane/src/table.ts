/**
 * An open-addressing hash table keyed by a pair of int32 (a MAC as hi16/lo32, or an IPv4
 * address as 0/ip32) with two int32 values, a timestamp and a flag byte per entry, all in typed
 * arrays. Lookups allocate nothing; inserts allocate only when the table doubles, which is
 * bounded by `maxEntries`. Linear probing with backward-shift deletion (no tombstones), load
 * kept at or below 1/2.
 *
 * Entries are addressed by their index, valid until the next insert or remove.
 * Single-threaded, owned by one dataplane.
 */
export class PairTable {
  ka: Int32Array;
  kb: Int32Array;
  va: Int32Array;
  vb: Int32Array;
  stamp: Float64Array;
  flags: Uint8Array;
  /** 1 where the index holds an entry. */
  used: Uint8Array;
  size = 0;
  private mask: number;

  constructor(readonly maxEntries: number, initialCapacity = 64) {
    let cap = 16;
    while (cap < initialCapacity) cap <<= 1;
    this.mask = cap - 1;
    this.ka = this.kb = this.va = this.vb = new Int32Array(0);
    this.stamp = new Float64Array(0);
    this.flags = this.used = new Uint8Array(0);
    this.allocate(cap);
  }

  private allocate(cap: number): void {
    this.mask = cap - 1;
    this.ka = new Int32Array(cap);
    this.kb = new Int32Array(cap);
    this.va = new Int32Array(cap);
    this.vb = new Int32Array(cap);
    this.stamp = new Float64Array(cap);
    this.flags = new Uint8Array(cap);
    this.used = new Uint8Array(cap);
  }

  get capacity(): number {
    return this.mask + 1;
  }

  private slotOf(a: number, b: number): number {
    let h = Math.imul(a ^ 0x5bd1e995, 0x9e3779b1) ^ b;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    h ^= h >>> 13;
    return h & this.mask;
  }

  /** Index of the entry for (a, b), or -1. */
  find(a: number, b: number): number {
    const mask = this.mask;
    const used = this.used;
    const ka = this.ka;
    const kb = this.kb;
    for (let i = this.slotOf(a, b); ; i = (i + 1) & mask) {
      if (used[i] === 0) return -1;
      if (ka[i] === a && kb[i] === b) return i;
    }
  }

  /**
   * Index of the entry for (a, b), created (values zeroed) when missing. Returns -1 when the
   * table already holds `maxEntries`.
   */
  insert(a: number, b: number): number {
    const found = this.find(a, b);
    if (found >= 0) return found;
    if (this.size >= this.maxEntries) return -1;
    if ((this.size + 1) * 2 > this.mask + 1) this.grow();
    const mask = this.mask;
    let i = this.slotOf(a, b);
    while (this.used[i] === 1) i = (i + 1) & mask;
    this.used[i] = 1;
    this.ka[i] = a;
    this.kb[i] = b;
    this.va[i] = 0;
    this.vb[i] = 0;
    this.stamp[i] = 0;
    this.flags[i] = 0;
    this.size++;
    return i;
  }

  /** Remove the entry at index `i` (from find/insert), shifting its probe chain back. */
  removeAt(i: number): void {
    const mask = this.mask;
    this.used[i] = 0;
    this.size--;
    let hole = i;
    for (let j = (i + 1) & mask; this.used[j] === 1; j = (j + 1) & mask) {
      const home = this.slotOf(this.ka[j], this.kb[j]);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (inRange) continue;
      this.ka[hole] = this.ka[j];
      this.kb[hole] = this.kb[j];
      this.va[hole] = this.va[j];
      this.vb[hole] = this.vb[j];
      this.stamp[hole] = this.stamp[j];
      this.flags[hole] = this.flags[j];
      this.used[hole] = 1;
      this.used[j] = 0;
      hole = j;
    }
  }

  /** Remove (a, b) if present; returns whether it was. */
  remove(a: number, b: number): boolean {
    const i = this.find(a, b);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  private grow(): void {
    const { ka, kb, va, vb, stamp, flags, used } = this;
    this.allocate((this.mask + 1) * 2);
    for (let i = 0; i < used.length; i++) {
      if (used[i] === 0) continue;
      let j = this.slotOf(ka[i], kb[i]);
      while (this.used[j] === 1) j = (j + 1) & this.mask;
      this.used[j] = 1;
      this.ka[j] = ka[i];
      this.kb[j] = kb[i];
      this.va[j] = va[i];
      this.vb[j] = vb[i];
      this.stamp[j] = stamp[i];
      this.flags[j] = flags[i];
    }
  }
}
