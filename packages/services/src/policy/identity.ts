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
 *
 * Identity on the wire (VXLAN-GBP): a Group Policy ID (1..65535) names a set of groups the same
 * way on every host (declared cluster-wide, `defineGroupPolicy`). An address may carry one
 * (`set(address, groups, gbpId)`): the filter writes it into outgoing packets, and a receiver
 * takes the sender's groups from the ID in the header instead of looking the address up.
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
  /** Group Policy ID → its groups (declared); address → its Group Policy ID. */
  private readonly gbpGroups = new Map<number, readonly string[]>();
  private readonly gbpOfAddress = new Map<number, number>();
  /** Group Policy ID → offset of its bitset in `bits` (after the address slots), or -1. */
  private gbpOffset = new Int32Array(MAX_GBP + 1).fill(-1);
  /** Index slot → the address's Group Policy ID, or -1. */
  private gbpBySlot = new Int32Array(16).fill(-1);

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

  /**
   * Set the groups of an address (replacing what it had); an empty list removes it. `gbpId`
   * (a declared Group Policy ID) is what the filter writes into the address's outgoing packets.
   */
  set(address: string, groups: readonly string[], gbpId = -1): void {
    const a = this.apply(address, groups);
    if (gbpId !== -1) checkGbp(gbpId, 'identity.gbpId');
    if (gbpId === -1 || groups.length === 0) this.gbpOfAddress.delete(a);
    else this.gbpOfAddress.set(a, gbpId);
    this.rebuild();
  }

  /** Declare what a Group Policy ID (1..65535) means on every host: its groups. Empty: forget it. */
  defineGroupPolicy(id: number, groups: readonly string[]): void {
    checkGbp(id, 'gbp.id');
    check('0.0.0.0', groups, 'gbp');
    if (groups.length === 0) this.gbpGroups.delete(id);
    else {
      for (const g of groups) this.groupId(g);
      this.gbpGroups.set(id, [...groups]);
    }
    this.rebuild();
  }

  /** Offset in `bits` of the groups a Group Policy ID stands for, or -1 (undeclared). Allocation-free. */
  lookupGroupPolicy(id: number): number {
    return id >= 0 && id <= MAX_GBP ? this.gbpOffset[id] : -1;
  }

  /** The Group Policy ID an address sends with, or -1. Allocation-free. */
  groupPolicyOf(addr: number): number {
    const keys = this.keys;
    const used = this.used;
    const mask = this.mask;
    for (let i = hash(addr) & mask; ; i = (i + 1) & mask) {
      if (used[i] === 0) return -1;
      if (keys[i] === addr) return this.gbpBySlot[i];
    }
  }

  /**
   * Replace the whole table with `entries` (address → groups, and optionally its Group Policy
   * ID), rebuilding once; all or nothing.
   */
  replace(entries: Iterable<readonly [string, readonly string[], number?]>): void {
    const list = [...entries];
    list.forEach(([address, groups, gbp], i) => {
      check(address, groups, `identity[${i}]`);
      if (gbp !== undefined && gbp !== -1) checkGbp(gbp, `identity[${i}].gbpId`);
    });
    this.members.clear();
    this.gbpOfAddress.clear();
    for (const [address, groups, gbp] of list) {
      const a = this.apply(address, groups);
      if (gbp !== undefined && gbp !== -1 && groups.length > 0) this.gbpOfAddress.set(a, gbp);
    }
    this.rebuild();
  }

  private apply(address: string, groups: readonly string[]): number {
    const a = check(address, groups, 'identity');
    if (groups.length === 0) this.members.delete(a);
    else {
      for (const g of groups) this.groupId(g);
      this.members.set(a, [...groups]);
    }
    return a;
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
    const w = this.words;
    const bits = new Int32Array((n + this.gbpGroups.size) * w);
    const gbpBySlot = new Int32Array(n).fill(-1);
    const gbpOffset = new Int32Array(MAX_GBP + 1).fill(-1);
    const mask = n - 1;
    const setBits = (at: number, groups: readonly string[]) => {
      for (const g of groups) {
        const id = this.ids.get(g)!;
        bits[at + (id >>> 5)] |= 1 << (id & 31);
      }
    };
    for (const [a, groups] of this.members) {
      let i = hash(a) & mask;
      while (used[i] === 1) i = (i + 1) & mask;
      used[i] = 1;
      keys[i] = a;
      gbpBySlot[i] = this.gbpOfAddress.get(a) ?? -1;
      setBits(i * w, groups);
    }
    let k = n;
    for (const [id, groups] of this.gbpGroups) {
      gbpOffset[id] = k * w;
      setBits(k * w, groups);
      k++;
    }
    this.keys = keys;
    this.used = used;
    this.bits = bits;
    this.mask = mask;
    this.gbpBySlot = gbpBySlot;
    this.gbpOffset = gbpOffset;
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

const MAX_GBP = 0xffff;

function checkGbp(id: number, path: string): void {
  if (!Number.isInteger(id) || id < 1 || id > MAX_GBP) throw new PolicyError(path, `a Group Policy ID is an integer in 1..65535, got ${JSON.stringify(id)}`);
}

function hash(a: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
