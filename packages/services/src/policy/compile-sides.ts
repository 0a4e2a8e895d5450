import type { Cidr, NormalRule } from './rules.js';

/**
 * The endpoint side of the compiled evaluator (compile.ts): every distinct atom of one side
 * (source or destination) of the rules — "any", a group, an IPv4 or IPv6 CIDR — numbered, and
 * what finds a packet's atoms without allocating: a group id → atom array, and per family the
 * cut points of all the side's CIDRs with, per elementary interval, the innermost CIDR atom
 * containing it and, per atom, the CIDR atom enclosing it (CIDRs nest or are disjoint, so the
 * atoms containing an address are one chain).
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
