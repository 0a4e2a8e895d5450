import type { Cidr, NormalRule } from './rules.js';

/**
 * The endpoint side of the compiled evaluator (compile.ts): every distinct atom of one side
 * (source or destination) of the rules — "any", a group, an IPv4 or IPv6 CIDR — numbered, and
 * what finds a packet's atoms without allocating: a group id → atom array, and per family the
 * cut points of all the side's CIDRs with, per elementary interval, the innermost CIDR atom
 * containing it and, per atom, the CIDR atom enclosing it (CIDRs nest or are disjoint, so the
 * atoms containing an address are one chain). The collect* functions find a packet's atoms.
 */
export interface SideIndex {
  count: number;
  /** The "any address" atom, or -1 when no rule has an open side here. */
  anyAtom: number;
  /** Group id → atom, or -1. */
  groupAtom: Int32Array;
  /** Atom → enclosing CIDR atom of its family, or -1. */
  parent: Int32Array;
  /** IPv4: interval starts (unsigned) and each interval's innermost CIDR atom (or -1). */
  cut4: Float64Array;
  inner4: Int32Array;
  /** IPv6: interval starts as 4 big-endian words each, and innermost atoms. */
  cut6: Uint32Array;
  inner6: Int32Array;
  /** Scratch for a verdict: atom → epoch it was collected in; the collected atoms. */
  stamp: Int32Array;
  list: Int32Array;
}

/** The identity table's view the evaluator reads: group ids per identity slot. */
export interface GroupLists {
  /** Identity offset → slot: offset >>> wordShift. */
  readonly wordShift: number;
  /** Slot k's group ids are groupIds[groupStart[k] .. groupStart[k + 1]). */
  readonly groupStart: Int32Array;
  readonly groupIds: Int32Array;
}

interface CidrAtom {
  value: bigint;
  prefix: number;
  atom: number;
}

class SideBuilder {
  count = 0;
  anyAtom = -1;
  readonly groups = new Map<number, number>();
  readonly cidrs = new Map<string, number>();
  readonly v4: CidrAtom[] = [];
  readonly v6: CidrAtom[] = [];

  atomsOf(sel: NormalRule['from'], groupId: (name: string) => number): number[] {
    if (sel === undefined) {
      if (this.anyAtom < 0) this.anyAtom = this.count++;
      return [this.anyAtom];
    }
    const out = new Set<number>();
    for (const g of sel.groups) {
      const id = groupId(g);
      let a = this.groups.get(id);
      if (a === undefined) this.groups.set(id, (a = this.count++));
      out.add(a);
    }
    for (const c of sel.cidrs) out.add(this.cidrAtom(c));
    return [...out];
  }

  private cidrAtom(c: Cidr): number {
    const key = `${c.family}/${c.value}/${c.prefix}`;
    let a = this.cidrs.get(key);
    if (a === undefined) {
      a = this.count++;
      this.cidrs.set(key, a);
      (c.family === 4 ? this.v4 : this.v6).push({ value: c.value, prefix: c.prefix, atom: a });
    }
    return a;
  }

  build(): SideIndex {
    const parent = new Int32Array(this.count).fill(-1);
    const i4 = intervals(this.v4, 32, parent);
    const i6 = intervals(this.v6, 128, parent);
    let maxGroup = -1;
    for (const g of this.groups.keys()) maxGroup = Math.max(maxGroup, g);
    const groupAtom = new Int32Array(maxGroup + 1).fill(-1);
    for (const [g, a] of this.groups) groupAtom[g] = a;
    const cut6 = new Uint32Array(i6.cuts.length * 4);
    i6.cuts.forEach((v, j) => {
      for (let w = 0; w < 4; w++) cut6[j * 4 + w] = Number((v >> BigInt(96 - 32 * w)) & 0xffffffffn);
    });
    return {
      count: this.count,
      anyAtom: this.anyAtom,
      groupAtom,
      parent,
      cut4: Float64Array.from(i4.cuts, Number),
      inner4: Int32Array.from(i4.inner),
      cut6,
      inner6: Int32Array.from(i6.inner),
      stamp: new Int32Array(this.count),
      list: new Int32Array(this.count + 1),
    };
  }
}

/**
 * Cut points of the address line (`bits` wide) at every CIDR's start and end, and per interval
 * the innermost CIDR containing it; sets `parent` of each CIDR atom. A sweep in address order
 * with a stack of open CIDRs (outer ones first at a shared start).
 */
function intervals(list: CidrAtom[], bits: number, parent: Int32Array): { cuts: bigint[]; inner: number[] } {
  if (list.length === 0) return { cuts: [], inner: [] };
  const top = 1n << BigInt(bits);
  const size = (p: number) => 1n << BigInt(bits - p);
  const sorted = [...list].sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : a.prefix - b.prefix));
  const points = new Set<bigint>([0n]);
  for (const c of sorted) {
    points.add(c.value);
    const end = c.value + size(c.prefix);
    if (end < top) points.add(end);
  }
  const pts = [...points].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const stack: { end: bigint; atom: number }[] = [];
  const cuts: bigint[] = [];
  const inner: number[] = [];
  let k = 0;
  for (const x of pts) {
    while (stack.length > 0 && stack[stack.length - 1].end <= x) stack.pop();
    while (k < sorted.length && sorted[k].value === x) {
      const c = sorted[k++];
      parent[c.atom] = stack.length > 0 ? stack[stack.length - 1].atom : -1;
      stack.push({ end: c.value + size(c.prefix), atom: c.atom });
    }
    cuts.push(x);
    inner.push(stack.length > 0 ? stack[stack.length - 1].atom : -1);
  }
  return { cuts, inner };
}

/** Both sides' indexes and, per rule, its source and destination atoms (deduplicated). */
export function buildSides(rules: readonly NormalRule[], groupId: (name: string) => number): { from: SideIndex; to: SideIndex; fromAtoms: number[][]; toAtoms: number[][] } {
  const f = new SideBuilder();
  const t = new SideBuilder();
  const fromAtoms = rules.map((r) => f.atomsOf(r.from, groupId));
  const toAtoms = rules.map((r) => t.atomsOf(r.to, groupId));
  return { from: f.build(), to: t.build(), fromAtoms, toAtoms };
}

// ---- per verdict (allocation-free): the packet's atoms of one side into side.list, stamped with the epoch

/** The side's "any" atom and the identity's group atoms into side.list; returns the count. */
export function collectGroups(s: SideIndex, ep: number, id: GroupLists, ident: number): number {
  const list = s.list;
  const st = s.stamp;
  let n = 0;
  if (s.anyAtom >= 0) {
    list[n++] = s.anyAtom;
    st[s.anyAtom] = ep;
  }
  if (ident >= 0 && s.groupAtom.length > 0) {
    const k = ident >>> id.wordShift;
    const ga = s.groupAtom;
    const gl = ga.length;
    const ids = id.groupIds;
    const e = id.groupStart[k + 1];
    for (let j = id.groupStart[k]; j < e; j++) {
      const g = ids[j];
      if (g < gl) {
        const a = ga[g];
        if (a >= 0) {
          list[n++] = a;
          st[a] = ep;
        }
      }
    }
  }
  return n;
}

/** The IPv4 CIDR atoms containing `addr`: innermost by binary search, then its parents. */
export function collectCidr4(s: SideIndex, ep: number, n: number, addr: number): number {
  const cuts = s.cut4;
  const m = cuts.length;
  if (m === 0) return n;
  const a = addr >>> 0;
  // Branch-free search for the last cut ≤ a (cuts[0] is 0), as compile.ts lastAtMost.
  let lo = 0;
  for (let n = m; n > 1; ) {
    const half = n >>> 1;
    lo += half & -(cuts[lo + half] <= a);
    n -= half;
  }
  const list = s.list;
  const st = s.stamp;
  const parent = s.parent;
  for (let at = s.inner4[lo]; at >= 0; at = parent[at]) {
    list[n++] = at;
    st[at] = ep;
  }
  return n;
}

/** The IPv6 CIDR atoms containing the address at buf[at]: cut points are 4 words each. */
export function collectCidr6(s: SideIndex, ep: number, n: number, buf: Uint8Array, at: number): number {
  const cuts = s.cut6;
  const m = cuts.length >>> 2;
  if (m === 0) return n;
  const w0 = ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
  const w1 = ((buf[at + 4] << 24) | (buf[at + 5] << 16) | (buf[at + 6] << 8) | buf[at + 7]) >>> 0;
  const w2 = ((buf[at + 8] << 24) | (buf[at + 9] << 16) | (buf[at + 10] << 8) | buf[at + 11]) >>> 0;
  const w3 = ((buf[at + 12] << 24) | (buf[at + 13] << 16) | (buf[at + 14] << 8) | buf[at + 15]) >>> 0;
  let lo = 0;
  let hi = m - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    const c = mid << 2;
    const c0 = cuts[c];
    const le = c0 !== w0 ? c0 < w0 : cuts[c + 1] !== w1 ? cuts[c + 1] < w1 : cuts[c + 2] !== w2 ? cuts[c + 2] < w2 : cuts[c + 3] <= w3;
    if (le) lo = mid;
    else hi = mid - 1;
  }
  const list = s.list;
  const st = s.stamp;
  const parent = s.parent;
  for (let a = s.inner6[lo]; a >= 0; a = parent[a]) {
    list[n++] = a;
    st[a] = ep;
  }
  return n;
}
