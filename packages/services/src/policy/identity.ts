import { parseIpAddress } from '@overlay/dataplane';
import { addressKey6, equal16 } from '../vip/packet.js';
import { PolicyError } from './rules.js';

/**
 * The identity table the agent programs: IPv4 or IPv6 address → the groups its workload is in. Group
 * names get small integer ids in order of first use (by the table or by a compiled policy); an
 * address's groups are a bitset of `words` 32-bit words in `bits`, found through an
 * open-addressing index (linear probing, power-of-two size ≥ 2 × addresses), so the filter
 * looks an address up without allocating. IPv6 addresses have their own index (32-bit keys of
 * the address, `addressKey6`, compared byte for byte), their bitsets after the IPv4 ones. Each
 * bitset slot k (at k × words; `wordShift` = log2 words) also lists its group ids
 * (`groupIds[groupStart[k] .. groupStart[k + 1])`), which the compiled evaluator reads.
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
  /** Words per address bitset (a power of two: 2^wordShift). */
  words = 1;
  wordShift = 0;
  /** Per bitset slot: its group ids, groupIds[groupStart[k] .. groupStart[k + 1]). */
  groupStart = new Int32Array(17);
  groupIds = new Int32Array(0);
  /** IPv6 members (key: the address's 32 hex digits) and their index. */
  private readonly members6 = new Map<string, { bytes: Uint8Array; groups: readonly string[] }>();
  private readonly gbpOfAddress6 = new Map<string, number>();
  private keys6 = new Int32Array(16);
  private used6 = new Uint8Array(16);
  private addr6 = new Uint8Array(16 * 16);
  private mask6 = 15;
  /** Slot of the first IPv6 index entry. */
  private base6 = 16;
  private gbpBySlot6 = new Int32Array(16).fill(-1);
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
        this.wordShift++;
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
    if (gbpId !== -1) checkGbp(gbpId, 'identity.gbpId');
    this.apply(address, groups, gbpId);
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

  /** The Group Policy ID the IPv6 address at buf[at] sends with, or -1. Allocation-free. */
  groupPolicyOf6(buf: Uint8Array, at: number): number {
    const i = this.find6(buf, at);
    return i < 0 ? -1 : this.gbpBySlot6[i];
  }

  /** Offset in `bits` of the IPv6 address at buf[at .. at + 16), or -1 (in no group). Allocation-free. */
  lookup6(buf: Uint8Array, at: number): number {
    const i = this.find6(buf, at);
    return i < 0 ? -1 : (this.base6 + i) << this.wordShift;
  }

  private find6(buf: Uint8Array, at: number): number {
    const keys = this.keys6;
    const used = this.used6;
    const mask = this.mask6;
    const k = addressKey6(buf, at);
    for (let i = k & mask; ; i = (i + 1) & mask) {
      if (used[i] === 0) return -1;
      if (keys[i] === k && equal16(this.addr6, i * 16, buf, at)) return i;
    }
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
    this.members6.clear();
    this.gbpOfAddress6.clear();
    for (const [address, groups, gbp] of list) this.apply(address, groups, gbp ?? -1);
    this.rebuild();
  }

  private apply(address: string, groups: readonly string[], gbp: number): void {
    const a = check(address, groups, 'identity');
    for (const g of groups) this.groupId(g);
    if (a.family === 4) {
      const v = a.v4;
      if (groups.length === 0) this.members.delete(v);
      else this.members.set(v, [...groups]);
      if (gbp === -1 || groups.length === 0) this.gbpOfAddress.delete(v);
      else this.gbpOfAddress.set(v, gbp);
    } else {
      if (groups.length === 0) this.members6.delete(a.key);
      else this.members6.set(a.key, { bytes: a.bytes, groups: [...groups] });
      if (gbp === -1 || groups.length === 0) this.gbpOfAddress6.delete(a.key);
      else this.gbpOfAddress6.set(a.key, gbp);
    }
  }

  delete(address: string): void {
    this.set(address, []);
  }

  /** The groups of an address (control path). */
  groupsOf(address: string): readonly string[] {
    const a = parseIpAddress(address);
    if (a.family === 4) return this.members.get(v4Of(a.bytes)) ?? [];
    return this.members6.get(hexOf(a.bytes))?.groups ?? [];
  }

  get size(): number {
    return this.members.size + this.members6.size;
  }

  /** Offset of `addr`'s bitset in `bits`, or -1 when the address is in no group. Allocation-free. */
  lookup(addr: number): number {
    const keys = this.keys;
    const used = this.used;
    const mask = this.mask;
    for (let i = hash(addr) & mask; ; i = (i + 1) & mask) {
      if (used[i] === 0) return -1;
      if (keys[i] === addr) return i << this.wordShift;
    }
  }

  private rebuild(): void {
    let n = 16;
    while (n < this.members.size * 2) n *= 2;
    let n6 = 16;
    while (n6 < this.members6.size * 2) n6 *= 2;
    const base6 = n + this.gbpGroups.size;
    const slots = base6 + n6;
    const keys = new Int32Array(n);
    const used = new Uint8Array(n);
    const w = this.words;
    const bits = new Int32Array(slots * w);
    const lists: (readonly string[] | undefined)[] = new Array(slots);
    const gbpBySlot = new Int32Array(n).fill(-1);
    const gbpOffset = new Int32Array(MAX_GBP + 1).fill(-1);
    const mask = n - 1;
    for (const [a, groups] of this.members) {
      let i = hash(a) & mask;
      while (used[i] === 1) i = (i + 1) & mask;
      used[i] = 1;
      keys[i] = a;
      gbpBySlot[i] = this.gbpOfAddress.get(a) ?? -1;
      lists[i] = groups;
    }
    let k = n;
    for (const [id, groups] of this.gbpGroups) {
      gbpOffset[id] = k * w;
      lists[k++] = groups;
    }
    const keys6 = new Int32Array(n6);
    const used6 = new Uint8Array(n6);
    const addr6 = new Uint8Array(n6 * 16);
    const gbpBySlot6 = new Int32Array(n6).fill(-1);
    const mask6 = n6 - 1;
    for (const [key, m] of this.members6) {
      const h = addressKey6(m.bytes, 0);
      let i = h & mask6;
      while (used6[i] === 1) i = (i + 1) & mask6;
      used6[i] = 1;
      keys6[i] = h;
      addr6.set(m.bytes, i * 16);
      gbpBySlot6[i] = this.gbpOfAddress6.get(key) ?? -1;
      lists[base6 + i] = m.groups;
    }
    const groupStart = new Int32Array(slots + 1);
    const ids: number[] = [];
    for (let s = 0; s < slots; s++) {
      groupStart[s] = ids.length;
      for (const g of lists[s] ?? []) {
        const id = this.ids.get(g)!;
        bits[s * w + (id >>> 5)] |= 1 << (id & 31);
        ids.push(id);
      }
    }
    groupStart[slots] = ids.length;
    this.keys = keys;
    this.used = used;
    this.bits = bits;
    this.mask = mask;
    this.gbpBySlot = gbpBySlot;
    this.gbpOffset = gbpOffset;
    this.keys6 = keys6;
    this.used6 = used6;
    this.addr6 = addr6;
    this.mask6 = mask6;
    this.base6 = base6;
    this.gbpBySlot6 = gbpBySlot6;
    this.groupStart = groupStart;
    this.groupIds = Int32Array.from(ids);
    this.version++;
  }
}

function v4Of(b: Uint8Array): number {
  return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
}

function hexOf(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** The address (IPv4 as int32, IPv6 as bytes and hex key), after checking it and its group names. */
function check(address: string, groups: readonly string[], path: string): { family: 4 | 6; v4: number; bytes: Uint8Array; key: string } {
  let a: ReturnType<typeof parseIpAddress>;
  try {
    a = parseIpAddress(address);
  } catch {
    throw new PolicyError(`${path}.address`, `not an IP address: ${JSON.stringify(String(address).slice(0, 64))}`);
  }
  if (!Array.isArray(groups)) throw new PolicyError(`${path}.groups`, 'must be a list of group names');
  for (const g of groups) if (typeof g !== 'string' || g.length === 0 || g.length > 128) throw new PolicyError(`${path}.groups`, `not a group name: ${JSON.stringify(g)}`);
  return a.family === 4 ? { family: 4, v4: v4Of(a.bytes), bytes: a.bytes, key: '' } : { family: 6, v4: 0, bytes: a.bytes, key: hexOf(a.bytes) };
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
