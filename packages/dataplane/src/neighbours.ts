import type { IpBytes } from './codec/address.js';
import { readI32 } from './codec/bytes.js';
import { PairTable } from './table.js';

/**
 * IPv6 neighbours (address → MAC) for ND suppression. The 128-bit address is folded into the
 * two int32 key of a PairTable, and the entry's full address is kept beside it and compared
 * on lookup, so a fold collision can only cause a miss (the solicitation is flooded as it
 * would be without suppression), never a wrong answer. Lookups allocate nothing.
 */
export class Ipv6Neighbours {
  private readonly table: PairTable;
  /** Per entry (index = table.va): address as 4 int32, MAC as hi16/lo32. */
  private addr = new Int32Array(16 * 4);
  private macHi = new Int32Array(16);
  private macLo = new Int32Array(16);
  private readonly freeList: number[] = [];
  private next = 0;

  constructor(maxEntries: number) {
    this.table = new PairTable(maxEntries);
  }

  get size(): number {
    return this.table.size;
  }

  private static foldA(w0: number, w2: number): number {
    return Math.imul(w0, 0x9e3779b1) ^ w2;
  }

  private static foldB(w1: number, w3: number): number {
    return Math.imul(w1, 0x85ebca6b) ^ w3;
  }

  /** Entry index for the address at buf[off], or -1. */
  find(buf: Uint8Array, off: number): number {
    const i = this.indexOf(buf, off);
    return i < 0 ? -1 : this.table.va[i];
  }

  /** Table index holding the address at buf[off] (full address compared), or -1. */
  private indexOf(buf: Uint8Array, off: number): number {
    const w0 = readI32(buf, off);
    const w1 = readI32(buf, off + 4);
    const w2 = readI32(buf, off + 8);
    const w3 = readI32(buf, off + 12);
    const i = this.table.find(Ipv6Neighbours.foldA(w0, w2), Ipv6Neighbours.foldB(w1, w3));
    if (i < 0) return -1;
    const e = this.table.va[i];
    const a = this.addr;
    return a[4 * e] === w0 && a[4 * e + 1] === w1 && a[4 * e + 2] === w2 && a[4 * e + 3] === w3 ? i : -1;
  }

  hi(e: number): number {
    return this.macHi[e];
  }

  lo(e: number): number {
    return this.macLo[e];
  }

  /** Set (or replace) an entry. Returns false when the table is full or the fold is taken. */
  set(ip: IpBytes, hi: number, lo: number): boolean {
    const b = ip.bytes;
    const w = [0, 4, 8, 12].map((o) => readI32(b, o));
    const existing = this.find(b, 0);
    if (existing >= 0) {
      this.macHi[existing] = hi;
      this.macLo[existing] = lo;
      return true;
    }
    const a = Ipv6Neighbours.foldA(w[0], w[2]);
    const bb = Ipv6Neighbours.foldB(w[1], w[3]);
    if (this.table.find(a, bb) >= 0) return false; // another address with the same fold
    const i = this.table.insert(a, bb);
    if (i < 0) return false;
    const e = this.freeList.length > 0 ? this.freeList.pop()! : this.next++;
    if (e >= this.macHi.length) this.grow();
    this.addr.set(w, 4 * e);
    this.macHi[e] = hi;
    this.macLo[e] = lo;
    this.table.va[i] = e;
    return true;
  }

  delete(ip: IpBytes): boolean {
    const i = this.indexOf(ip.bytes, 0);
    if (i < 0) return false;
    this.freeList.push(this.table.va[i]);
    this.table.removeAt(i);
    return true;
  }

  private grow(): void {
    const n = this.macHi.length * 2;
    const addr = new Int32Array(n * 4);
    addr.set(this.addr);
    const hi = new Int32Array(n);
    hi.set(this.macHi);
    const lo = new Int32Array(n);
    lo.set(this.macLo);
    this.addr = addr;
    this.macHi = hi;
    this.macLo = lo;
  }
}
