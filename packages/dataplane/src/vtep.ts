import { formatIpAddress, parseIpAddress } from './codec/address.js';
import { VXLAN_PORT } from './codec/vxlan.js';
import { InvalidConfigError } from './errors.js';
import type { BufferPool } from './pool.js';

/** A remote VXLAN tunnel endpoint: underlay address and UDP port (default 4789). */
export interface Vtep {
  address: string;
  port?: number;
}

/**
 * Interned VTEP endpoints, shared by all networks of a dataplane. FDB entries and flood lists
 * hold small integer indices into this table; the hot path copies an endpoint into a pool
 * slot (family/addr/port) with a byte loop and compares a slot's source against an index
 * without allocating. Entries are reference-counted and their indices reused when free.
 */
export class VtepTable {
  family = new Uint8Array(16);
  addr = new Uint8Array(16 * 16);
  port = new Uint16Array(16);
  refs = new Int32Array(16);
  private readonly byKey = new Map<string, number>();
  private readonly freeList: number[] = [];
  private next = 0;

  /** Number of distinct endpoints in use. */
  get size(): number {
    return this.byKey.size;
  }

  /** Validate and parse a `Vtep` into its binary form. Throws InvalidConfigError. */
  static parse(v: Vtep): { family: 4 | 6; bytes: Uint8Array; port: number } {
    if (v === null || typeof v !== 'object') throw new InvalidConfigError('vtep', 'must be an object { address, port? }');
    const port = v.port ?? VXLAN_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidConfigError('vtep.port', `must be an integer in 1..65535, got ${port}`);
    let ip;
    try {
      ip = parseIpAddress(v.address);
    } catch {
      throw new InvalidConfigError('vtep.address', `not an IPv4 or IPv6 address: ${JSON.stringify(String(v.address).slice(0, 64))}`);
    }
    return { family: ip.family, bytes: ip.bytes, port };
  }

  private static key(family: number, bytes: Uint8Array, off: number, port: number): string {
    let k = `${family}/${port}/`;
    const n = family === 4 ? 4 : 16;
    for (let i = 0; i < n; i++) k += bytes[off + i].toString(16).padStart(2, '0');
    return k;
  }

  /** Index of the endpoint, taking one reference (control plane; allocates). */
  intern(v: Vtep): number {
    const p = VtepTable.parse(v);
    return this.internBytes(p.family, p.bytes, 0, p.port);
  }

  /**
   * Index of the endpoint that sent the datagram in `slot`, taking one reference. `port` 0
   * means the datagram's source port; otherwise that port replaces it.
   */
  internSlot(pool: BufferPool, slot: number, port = 0): number {
    return this.internBytes(pool.family[slot] === 6 ? 6 : 4, pool.addr, slot * 16, port || pool.port[slot]);
  }

  private internBytes(family: 4 | 6, bytes: Uint8Array, off: number, port: number): number {
    const key = VtepTable.key(family, bytes, off, port);
    let i = this.byKey.get(key);
    if (i === undefined) {
      i = this.freeList.length > 0 ? this.freeList.pop()! : this.next++;
      if (i >= this.port.length) this.grow();
      this.family[i] = family;
      this.addr.fill(0, i * 16, i * 16 + 16);
      this.addr.set(bytes.subarray(off, off + (family === 4 ? 4 : 16)), i * 16);
      this.port[i] = port;
      this.refs[i] = 0;
      this.byKey.set(key, i);
    }
    this.refs[i]++;
    return i;
  }

  /** Drop one reference; the index is reused once none remain. */
  unref(i: number): void {
    if (--this.refs[i] > 0) return;
    this.byKey.delete(VtepTable.key(this.family[i], this.addr, i * 16, this.port[i]));
    this.freeList.push(i);
  }

  /** Index of an endpoint without taking a reference, or -1 (control plane). */
  lookup(v: Vtep): number {
    const p = VtepTable.parse(v);
    return this.byKey.get(VtepTable.key(p.family, p.bytes, 0, p.port)) ?? -1;
  }

  /** True when `slot`'s underlay endpoint (port: as in internSlot) equals entry `i`. Never allocates. */
  matchesSlot(i: number, pool: BufferPool, slot: number, port = 0): boolean {
    const fam = this.family[i];
    if (pool.family[slot] !== fam || (port || pool.port[slot]) !== this.port[i]) return false;
    const n = fam === 4 ? 4 : 16;
    const a = this.addr;
    const b = pool.addr;
    const ao = i * 16;
    const bo = slot * 16;
    for (let k = 0; k < n; k++) if (a[ao + k] !== b[bo + k]) return false;
    return true;
  }

  /** Set `slot`'s underlay endpoint (destination) to entry `i`. Never allocates. */
  writeToSlot(i: number, pool: BufferPool, slot: number): void {
    pool.family[slot] = this.family[i];
    pool.port[slot] = this.port[i];
    const a = this.addr;
    const b = pool.addr;
    const ao = i * 16;
    const bo = slot * 16;
    for (let k = 0; k < 16; k++) b[bo + k] = a[ao + k];
  }

  /** The endpoint as a `Vtep` (allocates). */
  toVtep(i: number): Required<Vtep> {
    return { address: formatIpAddress(this.family[i] === 6 ? 6 : 4, this.addr, i * 16), port: this.port[i] };
  }

  private grow(): void {
    const cap = this.port.length * 2;
    const family = new Uint8Array(cap);
    family.set(this.family);
    const addr = new Uint8Array(cap * 16);
    addr.set(this.addr);
    const port = new Uint16Array(cap);
    port.set(this.port);
    const refs = new Int32Array(cap);
    refs.set(this.refs);
    this.family = family;
    this.addr = addr;
    this.port = port;
    this.refs = refs;
  }
}
