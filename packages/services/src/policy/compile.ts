import type { NormalPolicy, NormalRule, PolicyAction, Tier } from './rules.js';
import { collectCidr4, collectCidr6, collectGroups, type GroupLists, type SideIndex } from './compile-sides.js';

export type { GroupLists } from './compile-sides.js';
import { BUCKETS, NONE, type RowKeys } from './compile-rows.js';
import { KEY_AT, NC, buildTables, classOf, pairHash, policyHead, type BuiltPolicy, type CompileOptions } from './compile-tables.js';

export { ACTION_ALLOW, ACTION_DENY, CLASS_ICMP, CLASS_ICMP6, CLASS_OTHER, CLASS_TCP, CLASS_UDP, MAX_CELLS_PER_RULE, classOf, type BuiltPolicy, type CompileOptions, type PolicyHead, type PolicyTables } from './compile-tables.js';

/**
 * The compiled evaluator: (protocol, source, destination, destination port or ICMP type, the
 * two addresses' identities) → the index of the deciding rule, or -1 for the default, with no
 * allocation. IPv4 (`evaluate`) and IPv6 (`evaluate6`) share everything but the CIDR lookup.
 *
 * Decomposition. An endpoint selector is a union of *atoms*: "any address", one group, one CIDR.
 * A rule matches a packet exactly when some (source atom, destination atom) pair of the rule
 * holds for the packet's addresses and its protocol part holds. So every rule is filed under
 * each of its atom pairs — a *cell* — and a cell keeps, per protocol class (TCP, UDP, ICMP,
 * ICMPv6, other), the key space (destination port, ICMP type) cut into elementary intervals,
 * each holding the first (lowest-index) rule of the cell whose ranges cover it. Rules are filed
 * in list order, so "first" is the list order admin ++ network ++ service.
 *
 * Verdict. The packet's source atoms are collected (any; its groups, through a group → atom
 * array; its CIDRs: a binary search over the cut points of the side's CIDRs finds the
 * innermost one containing the address, and parent links give the enclosing ones — CIDRs nest
 * or are disjoint), likewise its destination atoms, each stamped in a per-side array. For each
 * source atom, the row key index (compile-rows.ts) gives the (destination atom, first rule) pairs
 * of its cells covering the key, ascending, walked to the first the packet has; where that list
 * is long or the row not indexed, its cells are found either by walking its row (the
 * destination atoms it is paired with, when short) testing stamps, or by one hash probe per
 * destination atom; each cell found
 * answers with one binary search over its intervals, skipped when the cell's first rule of the
 * class cannot beat the best so far. The minimum is the first matching rule of the whole list.
 * A key no filed rule of the class covers (a port scan) skips the cells at once. The cost
 * depends on the packet's atoms (its groups, the nesting depth of CIDRs around it) and the cells
 * they meet — at most (source atoms × destination atoms) probes — not on the number of rules:
 * 10 000 rules that do not match cost nothing.
 *
 * A rule with more than `maxCellsPerRule` atom pairs (long group and CIDR lists on both sides)
 * stays out of the cells, in a residual list per class walked in order (tested by the stamps).
 *
 * Groups are small integers given by the filter's registry (`groupId`); an identity is an offset
 * into the identity table's bitsets (-1: in no group); its group ids are listed per slot.
 */
/** Per class: key >>> KEY_SHIFT is its bucket in a long row (compile-rows.ts BUCKETS = 256). */
const KEY_SHIFT = [8, 8, 0, 0, 0] as const;


export class CompiledPolicy {
  readonly size: number;
  readonly ids: readonly string[];
  readonly tiers: readonly Tier[];
  readonly defaultAction: number;
  /** Per rule: ACTION_ALLOW or ACTION_DENY. */
  readonly action: Uint8Array;
  /** Per rule: 1 when its decisions are logged. */
  readonly log: Uint8Array;
  /** Packets dropped per deciding rule: [inside rules…, inside default, outside rules…, outside default]. */
  readonly drops: Float64Array;
  /** Flows allowed per deciding rule, same layout. */
  readonly allows: Float64Array;
  private readonly from: SideIndex;
  private readonly to: SideIndex;
  private epoch = 0;
  /** Per source atom: its row [rowStart[s], rowStart[s+1]) of (destination atom, cell). */
  private readonly rowStart: Int32Array;
  private readonly rowTo: Int32Array;
  private readonly rowCell: Int32Array;
  /** Per source atom and class: the key → (destination atom, rule) lists (compile-rows.ts). */
  private readonly rk: RowKeys;
  /** (source atom, destination atom) → cell, open addressing; hCell -1 = empty. */
  private readonly hMask: number;
  private readonly hS: Int32Array;
  private readonly hD: Int32Array;
  private readonly hCell: Int32Array;
  /** Per (cell, class) x = cell × 5 + class: intervals [kStart[x], kStart[x+1]) of (kLo, kRule); cellMin[x] its first rule. */
  private readonly kStart: Int32Array;
  private readonly kLo: Int32Array;
  private readonly kRule: Int32Array;
  private readonly cellMin: Int32Array;
  readonly cellCount: number;
  /** Per class and key: 1 when some filed rule of the class covers the key (else no cell can answer). */
  private readonly keyLive: Uint8Array;
  /** Residual rules per class (ascending), with their atoms and ranges. */
  private readonly resStart: Int32Array;
  private readonly resRules: Int32Array;
  private readonly fStart: Int32Array;
  private readonly fAtoms: Int32Array;
  private readonly tStart: Int32Array;
  private readonly tAtoms: Int32Array;
  private readonly rgStart: Int32Array;
  private readonly rg: Int32Array;

  constructor(
    /** The validated policy, or one a worker built already (compile-off-thread.ts) with the same group ids. */
    p: NormalPolicy | BuiltPolicy,
    groupId: (name: string) => number,
    readonly generation: number,
    o: CompileOptions = {},
  ) {
    const built = 'tables' in p ? p : undefined;
    const head = built ? built.head : policyHead(p as NormalPolicy);
    const n = head.ids.length;
    this.size = n;
    this.ids = head.ids;
    this.tiers = head.tiers;
    this.defaultAction = head.defaultAction;
    this.action = head.action;
    this.log = head.log;
    this.drops = new Float64Array(2 * (n + 1));
    this.allows = new Float64Array(2 * (n + 1));
    const t = built ? built.tables : buildTables((p as NormalPolicy).rules, groupId, o);
    this.from = t.from;
    this.to = t.to;
    this.keyLive = t.keyLive;
    this.cellCount = t.cellCount;
    this.kStart = t.kStart;
    this.cellMin = t.cellMin;
    this.kLo = t.kLo;
    this.kRule = t.kRule;
    this.rowStart = t.rowStart;
    this.rowTo = t.rowTo;
    this.rowCell = t.rowCell;
    this.rk = t.rk;
    this.hMask = t.hMask;
    this.hS = t.hS;
    this.hD = t.hD;
    this.hCell = t.hCell;
    this.resStart = t.resStart;
    this.resRules = t.resRules;
    this.fStart = t.fStart;
    this.fAtoms = t.fAtoms;
    this.tStart = t.tStart;
    this.tAtoms = t.tAtoms;
    this.rgStart = t.rgStart;
    this.rg = t.rg;
  }

  /** Rules walked in order instead of indexed (too many atom pairs). */
  get residualCount(): number {
    let k = 0;
    const seen = new Set<number>();
    for (const r of this.resRules) if (!seen.has(r)) (seen.add(r), k++);
    return k;
  }

  /**
   * IPv4: the deciding rule's index, or -1 when no rule matches (the default action decides).
   * `src`/`dst` as int32 (`x | 0`), `key` the destination port (TCP/UDP) or ICMP type, else 0;
   * `srcId`/`dstId` the identities (IdentityTable.lookup, -1 for none).
   */
  evaluate(proto: number, src: number, dst: number, key: number, id: GroupLists, srcId: number, dstId: number): number {
    const ep = this.nextEpoch();
    const nS = collectGroups(this.from, ep, id, srcId);
    const nSrc = collectCidr4(this.from, ep, nS, src);
    const nD = collectGroups(this.to, ep, id, dstId);
    const nDst = collectCidr4(this.to, ep, nD, dst);
    return this.search(classOf(proto), key, ep, nSrc, nDst);
  }

  /** IPv6: as `evaluate`, the addresses the 16 bytes at buf[srcAt] and buf[dstAt]. */
  evaluate6(proto: number, buf: Uint8Array, srcAt: number, dstAt: number, key: number, id: GroupLists, srcId: number, dstId: number): number {
    const ep = this.nextEpoch();
    const nS = collectGroups(this.from, ep, id, srcId);
    const nSrc = collectCidr6(this.from, ep, nS, buf, srcAt);
    const nD = collectGroups(this.to, ep, id, dstId);
    const nDst = collectCidr6(this.to, ep, nD, buf, dstAt);
    return this.search(classOf(proto), key, ep, nSrc, nDst);
  }

  private nextEpoch(): number {
    let ep = ++this.epoch;
    if (ep >= 0x3fffffff) {
      this.from.stamp.fill(0);
      this.to.stamp.fill(0);
      ep = this.epoch = 1;
    }
    return ep;
  }

  private search(c: number, key: number, ep: number, nS: number, nD: number): number {
    let best = NONE;
    const sl = this.from.list;
    const dl = this.to.list;
    const dst = this.to.stamp;
    const rs = this.rowStart;
    const rowTo = this.rowTo;
    const rowCell = this.rowCell;
    if (this.keyLive[KEY_AT[c] + key] === 0) nS = 0; // no filed rule names this port or type
    const rk = this.rk;
    for (let i = 0; i < nS; i++) {
      const s = sl[i];
      const x2 = s * NC + c;
      if (rk.on[x2] === 1) {
        // The key's piece of this row: (destination atom, rule) ascending; the first the packet has is s's best.
        let lo0 = rk.start[x2];
        let n0 = rk.start[x2 + 1] - lo0;
        if (n0 <= 0) continue; // no rule of this class in the row
        const bo = rk.bucketAt[x2];
        if (bo >= 0) {
          // A long row: the key's bucket narrows the search to the pieces between two entries.
          const b = key >>> KEY_SHIFT[c];
          lo0 = rk.bucket[bo + b];
          n0 = (b + 1 < BUCKETS ? rk.bucket[bo + b + 1] : rk.start[x2 + 1] - 1) - lo0 + 1;
        }
        const lo = lastAtMost(rk.lo, lo0, n0, key);
        const eb = rk.entStart[lo];
        const ee = rk.entStart[lo + 1];
        if (ee - eb <= nD * 4 + 4) {
          for (let k = eb; k < ee; k++) {
            const r = rk.entR[k];
            if (r >= best) break;
            if (dst[rk.entD[k]] === ep) {
              best = r;
              break;
            }
          }
          continue;
        }
      }
      const b = rs[s];
      const e = rs[s + 1];
      if (e - b <= nD * 4) {
        for (let j = b; j < e; j++) if (dst[rowTo[j]] === ep) best = this.probe(rowCell[j] * NC + c, key, best);
      } else {
        const hm = this.hMask;
        for (let j = 0; j < nD; j++) {
          const d = dl[j];
          for (let h = pairHash(s, d) & hm; ; h = (h + 1) & hm) {
            const cell = this.hCell[h];
            if (cell < 0) break;
            if (this.hS[h] === s && this.hD[h] === d) {
              best = this.probe(cell * NC + c, key, best);
              break;
            }
          }
        }
      }
    }
    const re = this.resStart[c + 1];
    if (re > this.resStart[c]) best = this.residual(this.resStart[c], re, key, ep, best);
    return best === NONE ? -1 : best;
  }

  /** The first rule of cell-class x covering `key`, if below `best`. */
  private probe(x: number, key: number, best: number): number {
    if (this.cellMin[x] >= best) return best;
    const lo0 = this.kStart[x];
    const r = this.kRule[lastAtMost(this.kLo, lo0, this.kStart[x + 1] - lo0, key)];
    return r < best ? r : best;
  }

  private residual(i: number, end: number, key: number, ep: number, best: number): number {
    const fs = this.from.stamp;
    const ts = this.to.stamp;
    for (; i < end; i++) {
      const r = this.resRules[i];
      if (r >= best) return best;
      const ke = this.rgStart[r + 1];
      let k = this.rgStart[r];
      if (k < ke) {
        while (k < ke && !(key >= this.rg[k] && key <= this.rg[k + 1])) k += 2;
        if (k === ke) continue;
      }
      if (!stamped(this.fStart, this.fAtoms, fs, r, ep) || !stamped(this.tStart, this.tAtoms, ts, r, ep)) continue;
      return r;
    }
    return best;
  }

  /** The action of a verdict from `evaluate`. */
  actionOf(rule: number): number {
    return rule < 0 ? this.defaultAction : this.action[rule];
  }
}

/**
 * The last index in a[from .. from + n) (n ≥ 1, ascending, a[from] ≤ key) whose value is ≤ key.
 * Branch-free: the loop runs ⌈log2 n⌉ times whatever the data, and each step adds `half` or 0
 * by a mask instead of a branch the CPU would mispredict about every other step (the worst case
 * does 17 such searches per verdict; a branchy search cost about twice as much).
 */
function lastAtMost(a: Int32Array, from: number, n: number, key: number): number {
  let b = from;
  while (n > 1) {
    const half = n >>> 1;
    b += half & -(a[b + half] <= key);
    n -= half;
  }
  return b;
}

function stamped(start: Int32Array, atoms: Int32Array, st: Int32Array, r: number, ep: number): boolean {
  for (let k = start[r], e = start[r + 1]; k < e; k++) if (st[atoms[k]] === ep) return true;
  return false;
}


export type { PolicyAction };
