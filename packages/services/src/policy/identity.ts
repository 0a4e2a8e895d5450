import { parseIpv4Address } from '@overlay/dataplane';
import { PolicyError } from './rules.js';

/**
 * The identity table the agent programs: IPv4 address → the groups its workload is in. Group
 * names get small integer ids in order of first use (by the table or by a compiled policy); an
 * address's groups are a bitset of `words` 32-bit words in `bits`, found through an
 * open-addressing index (linear probing, power-of-two size ≥ 2 × addresses), so the filter
 * looks an address up without allocating.
 *
 * Writes are control-path: every change rebuilds the index (O(addresses)) and bumps `version`,
 * which makes the filter re-judge tracked flows on their next packet (a workload that left a
 * group loses the flows only that group allowed).
 */
export class IdentityTable {
  private readonly ids = new Map<string, number>();
  private readonly members = new Map<number, readonly string[]>();
  /** Words per address bitset. */
  words = 1;
  /** Index slot → address (int32); valid where used[slot] = 1. */
  private keys = new Int32Array(16);
  private used = new Uint8Array(16);
  private mask = 15;
  /** Bitsets: slot s at s × words. */
  bits = new Int32Array(16);
  /** Bumped by every change of memberships. */
  version = 0;

  /** The id of a group name, registering it. */
  groupId(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(name, id);
      if (id >= this.words * 32) {
        this.words *= 2;
        this.rebuild();
      }
    }
    return id;
  }

  /** Set the groups of an address (replacing what it had); an empty list removes it. */
  set(address: string, groups: readonly string[]): void {
    this.apply(address, groups);
    this.rebuild();
  }

  /** Replace the whole table with `entries` (address → groups), rebuilding once; all or nothing. */
  replace(entries: Iterable<readonly [string, readonly string[]]>): void {
    const list = [...entries];
    list.forEach(([address, groups], i) => check(address, groups, `identity[${i}]`));
    this.members.clear();
    for (const [address, groups] of list) this.apply(address, groups);
    this.rebuild();
  }

  private apply(address: string, groups: readonly string[]): void {
    const a = check(address, groups, 'identity');
    if (groups.length === 0) this.members.delete(a);
    else {
      for (const g of groups) this.groupId(g);
      this.members.set(a, [...groups]);
    }
  }

  delete(address: string): void {
    this.set(address, []);
  }

  /** The groups of an address (control path). */
  groupsOf(address: string): readonly string[] {
    return this.members.get(parseIpv4Address(address) | 0) ?? [];
  }

  get size(): number {
    return this.members.size;
  }

  /** Offset of `addr`'s bitset in `bits`, or -1 when the address is in no group. Allocation-free. */
  lookup(addr: number): number {
    const keys = this.keys;
    const used = this.used;
    const mask = this.mask;
    for (let i = hash(addr) & mask; ; i = (i + 1) & mask) {
      if (used[i] === 0) return -1;
      if (keys[i] === addr) return i * this.words;
    }
  }

  private rebuild(): void {
    let n = 16;
    while (n < this.members.size * 2) n *= 2;
    const keys = new Int32Array(n);
    const used = new Uint8Array(n);
    const bits = new Int32Array(n * this.words);
    const mask = n - 1;
    for (const [a, groups] of this.members) {
      let i = hash(a) & mask;
      while (used[i] === 1) i = (i + 1) & mask;
      used[i] = 1;
      keys[i] = a;
      for (const g of groups) {
        const id = this.ids.get(g)!;
        bits[i * this.words + (id >>> 5)] |= 1 << (id & 31);
      }
    }
    this.keys = keys;
    this.used = used;
    this.bits = bits;
    this.mask = mask;
    this.version++;
  }
}

/** The address as int32, after checking it and its group names. */
function check(address: string, groups: readonly string[], path: string): number {
  let a: number;
  try {
    a = parseIpv4Address(address) | 0;
  } catch {
    throw new PolicyError(`${path}.address`, `not an IPv4 address: ${JSON.stringify(String(address).slice(0, 64))}`);
  }
  if (!Array.isArray(groups)) throw new PolicyError(`${path}.groups`, 'must be a list of group names');
  for (const g of groups) if (typeof g !== 'string' || g.length === 0 || g.length > 128) throw new PolicyError(`${path}.groups`, `not a group name: ${JSON.stringify(g)}`);
  return a;
}

function hash(a: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
