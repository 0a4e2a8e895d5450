import type { NormalPolicy, NormalRule, Tier } from './rules.js';
import { buildSides, type SideIndex } from './compile-sides.js';
import { NONE, flatten, paint, rowKeys, type RowKeys } from './compile-rows.js';

/**
 * The compiled evaluator's tables (compile.ts explains what they are and how a verdict reads
 * them), built from the rule list. Nothing here but typed arrays, plain objects of typed arrays
 * and numbers, so a worker can build them and hand them back by transfer
 * (compile-off-thread.ts): the compile of a large policy need not hold the event loop.
 */
export const CLASS_TCP = 0;
export const CLASS_UDP = 1;
export const CLASS_ICMP = 2;
export const CLASS_ICMP6 = 3;
export const CLASS_OTHER = 4;
export const NC = 5;
export const SPACE = [65536, 65536, 256, 256, 1] as const;
/** Where each class's keys start in `keyLive`. */
export const KEY_AT = [0, 65536, 131072, 131328, 131584] as const;
export const MAX_CELLS_PER_RULE = 1024;
export const ACTION_DENY = 0;
export const ACTION_ALLOW = 1;

export function classOf(proto: number): number {
  return proto === 6 ? CLASS_TCP : proto === 17 ? CLASS_UDP : proto === 1 ? CLASS_ICMP : proto === 58 ? CLASS_ICMP6 : CLASS_OTHER;
}

export interface CompileOptions {
  /** Atom pairs above which a rule is walked (residual) instead of filed in cells. Default 1024. */
  maxCellsPerRule?: number;
  /** Build the per source atom key index (compile-rows.ts). Default true; false: every cell probed (tests). */
  rowIndex?: boolean;
}

/** CompiledPolicy's tables; the field comments are on CompiledPolicy's fields of the same names. */
export interface PolicyTables {
  from: SideIndex;
  to: SideIndex;
  keyLive: Uint8Array;
  cellCount: number;
  kStart: Int32Array;
  cellMin: Int32Array;
  kLo: Int32Array;
  kRule: Int32Array;
  rowStart: Int32Array;
  rowTo: Int32Array;
  rowCell: Int32Array;
  rk: RowKeys;
  hMask: number;
  hS: Int32Array;
  hD: Int32Array;
  hCell: Int32Array;
  resStart: Int32Array;
  resRules: Int32Array;
  fStart: Int32Array;
  fAtoms: Int32Array;
  tStart: Int32Array;
  tAtoms: Int32Array;
  rgStart: Int32Array;
  rg: Int32Array;
}

/** What a compiled policy keeps of its rules besides the tables: ids, tiers, actions, log flags. */
export interface PolicyHead {
  defaultAction: number;
  ids: string[];
  tiers: Tier[];
  /** Per rule: ACTION_ALLOW or ACTION_DENY. */
  action: Uint8Array;
  /** Per rule: 1 when its decisions are logged. */
  log: Uint8Array;
}

/** A policy compiled apart from its CompiledPolicy (in a worker): what the constructor takes. */
export interface BuiltPolicy {
  head: PolicyHead;
  tables: PolicyTables;
}

export function policyHead(p: NormalPolicy): PolicyHead {
  const rules = p.rules;
  return {
    defaultAction: p.defaultAction === 'allow' ? ACTION_ALLOW : ACTION_DENY,
    ids: rules.map((r) => r.id),
    tiers: rules.map((r) => r.tier),
    action: Uint8Array.from(rules, (r) => (r.action === 'allow' ? ACTION_ALLOW : ACTION_DENY)),
    log: Uint8Array.from(rules, (r) => (r.log ? 1 : 0)),
  };
}

/** Build the tables of `rules` (list order = priority); `groupId` names each group's small integer. */
export function buildTables(rules: readonly NormalRule[], groupId: (name: string) => number, o: CompileOptions = {}): PolicyTables {
  const n = rules.length;
  const maxCells = o.maxCellsPerRule ?? MAX_CELLS_PER_RULE;
  const { from, to, fromAtoms, toAtoms } = buildSides(rules, groupId);
  const t = { from, to } as PolicyTables;
  const nTo = to.count;

  // Per rule: ranges per class ([lo, hi] pairs), or null when the rule does not apply to it.
  const rangesOf = (r: NormalRule, c: number): number[] | null => {
    if (r.proto !== 0 && classOf(r.proto) !== c) return null;
    return r.ranges === undefined || r.proto === 0 ? [0, SPACE[c] - 1] : r.ranges;
  };

  // Cells: (source atom, destination atom) → the rules filed under it, ascending.
  const cellOf = new Map<number, number>();
  const cellS: number[] = [];
  const cellD: number[] = [];
  const cellRules: number[][] = [];
  const residual: number[][] = [[], [], [], [], []];
  t.keyLive = new Uint8Array(131585);
  const live = new Int32Array(t.keyLive.length + 1); // +1 at a range's start, −1 past its end
  for (let r = 0; r < n; r++) {
    const F = fromAtoms[r];
    const T = toAtoms[r];
    if (F.length * T.length > maxCells) {
      for (let c = 0; c < NC; c++) if (rangesOf(rules[r], c) !== null) residual[c].push(r);
      continue;
    }
    for (const s of F) {
      for (const d of T) {
        const key = s * nTo + d;
        let cell = cellOf.get(key);
        if (cell === undefined) {
          cell = cellRules.length;
          cellOf.set(key, cell);
          cellS.push(s);
          cellD.push(d);
          cellRules.push([]);
        }
        cellRules[cell].push(r);
      }
    }
    for (let c = 0; c < NC; c++) {
      const rg = rangesOf(rules[r], c);
      if (rg !== null) {
        for (let k = 0; k < rg.length; k += 2) {
          live[KEY_AT[c] + rg[k]]++;
          live[KEY_AT[c] + rg[k + 1] + 1]--;
        }
      }
    }
  }
  for (let k = 0, sum = 0; k < t.keyLive.length; k++) {
    sum += live[k];
    t.keyLive[k] = sum > 0 ? 1 : 0;
  }
  const cells = cellRules.length;
  t.cellCount = cells;

  // Intervals per (cell, class).
  t.kStart = new Int32Array(cells * NC + 1);
  t.cellMin = new Int32Array(cells * NC).fill(NONE);
  const kLo: number[] = [];
  const kRule: number[] = [];
  for (let cell = 0; cell < cells; cell++) {
    for (let c = 0; c < NC; c++) {
      const x = cell * NC + c;
      t.kStart[x] = kLo.length;
      const list: number[] = [];
      const lists: number[][] = [];
      for (const r of cellRules[cell]) {
        const rg = rangesOf(rules[r], c);
        if (rg === null) continue;
        list.push(r);
        lists.push(rg);
      }
      if (list.length === 0) continue;
      t.cellMin[x] = list[0];
      paint(list, lists, SPACE[c], kLo, kRule);
    }
  }
  t.kStart[cells * NC] = kLo.length;
  t.kLo = Int32Array.from(kLo);
  t.kRule = Int32Array.from(kRule);

  // Rows per source atom, and the pair hash.
  const nFrom = from.count;
  t.rowStart = new Int32Array(nFrom + 1);
  for (let cell = 0; cell < cells; cell++) t.rowStart[cellS[cell] + 1]++;
  for (let s = 0; s < nFrom; s++) t.rowStart[s + 1] += t.rowStart[s];
  t.rowTo = new Int32Array(cells);
  t.rowCell = new Int32Array(cells);
  const fill = t.rowStart.slice(0, nFrom);
  for (let cell = 0; cell < cells; cell++) {
    const at = fill[cellS[cell]]++;
    t.rowTo[at] = cellD[cell];
    t.rowCell[at] = cell;
  }
  t.rk = rowKeys(o.rowIndex === false ? 0 : nFrom, NC, SPACE, { start: t.rowStart, to: t.rowTo, cell: t.rowCell }, { kStart: t.kStart, kLo: t.kLo, kRule: t.kRule, min: t.cellMin });
  let hn = 16;
  while (hn < cells * 2) hn *= 2;
  t.hMask = hn - 1;
  t.hS = new Int32Array(hn);
  t.hD = new Int32Array(hn);
  t.hCell = new Int32Array(hn).fill(-1);
  for (let cell = 0; cell < cells; cell++) {
    let h = pairHash(cellS[cell], cellD[cell]) & t.hMask;
    while (t.hCell[h] >= 0) h = (h + 1) & t.hMask;
    t.hS[h] = cellS[cell];
    t.hD[h] = cellD[cell];
    t.hCell[h] = cell;
  }

  // Residual rules: per class lists, atoms and ranges per rule.
  t.resStart = new Int32Array(NC + 1);
  const res: number[] = [];
  for (let c = 0; c < NC; c++) {
    t.resStart[c] = res.length;
    res.push(...residual[c]);
  }
  t.resStart[NC] = res.length;
  t.resRules = Int32Array.from(res);
  [t.fStart, t.fAtoms] = flatten(fromAtoms);
  [t.tStart, t.tAtoms] = flatten(toAtoms);
  [t.rgStart, t.rg] = flatten(rules.map((r) => r.ranges ?? []));
  return t;
}

/** Every ArrayBuffer under `t`, for a transfer list. */
export function tableBuffers(t: PolicyTables): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const walk = (v: unknown): void => {
    if (ArrayBuffer.isView(v)) out.add(v.buffer as ArrayBuffer);
    else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) walk(x);
  };
  walk(t);
  return [...out];
}

export function pairHash(s: number, d: number): number {
  let h = Math.imul(s ^ 0x9e3779b9, 0xcc9e2d51) ^ d;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}
