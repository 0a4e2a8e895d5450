/**
 * Build helpers of the compiled evaluator (compile.ts): the per-cell key intervals (`paint`),
 * flat arrays, and the per source atom key index (`rowKeys`).
 *
 * Row key index. For a source atom s and a protocol class, the key space is cut at every
 * interval boundary of s's cells; each piece lists the cells of s that have a rule covering it,
 * as (destination atom, that cell's first covering rule), ascending by rule. A verdict finds the
 * key's piece by one binary search and walks the list to the first entry whose destination atom
 * the packet has: that is s's best rule, without probing every cell of s. A row whose pieces ×
 * cells would pass ROW_WORK is not indexed (the verdict probes its cells instead).
 */
export const NONE = 0x3fffffff; // a Smi: larger values box as heap numbers when passed between functions
const ROW_WORK = 1 << 18;

export interface RowKeys {
  /** Per (s × classes + c): 1 when indexed. */
  on: Uint8Array;
  /** Per (s × classes + c): its pieces [start[x], start[x + 1]) of `lo`. */
  start: Int32Array;
  lo: Int32Array;
  /** Per piece: entries [entStart[j], entStart[j + 1]) of (entD, entR). */
  entStart: Int32Array;
  entD: Int32Array;
  entR: Int32Array;
  /**
   * Per (s × classes + c) with more than BUCKET_MIN pieces: offset in `bucket` of its 256
   * entries, else -1. Entry b is the piece holding key b << shift (shift: log2(space) − 8), so
   * a key's piece lies between entries b and b + 1: a search of a few pieces, not of the row.
   */
  bucketAt: Int32Array;
  bucket: Int32Array;
}

/** Rows with more pieces than this get a bucket table (256 entries). */
const BUCKET_MIN = 16;
export const BUCKETS = 256;

export function rowKeys(
  nFrom: number,
  nc: number,
  /** Key space per class (a power of two ≥ 256 gets buckets). */
  space: readonly number[],
  rows: { start: Int32Array; to: Int32Array; cell: Int32Array },
  cells: { kStart: Int32Array; kLo: Int32Array; kRule: Int32Array; min: Int32Array },
): RowKeys {
  // nFrom 0: nothing indexed (sized for `total` atoms so lookups stay in bounds).
  const total = Math.max(nFrom, rows.start.length - 1);
  const on = new Uint8Array(total * nc);
  const start = new Int32Array(total * nc + 1);
  const lo: number[] = [];
  const entStart: number[] = [];
  const entD: number[] = [];
  const entR: number[] = [];
  for (let s = 0; s < nFrom; s++) {
    for (let c = 0; c < nc; c++) {
      const x2 = s * nc + c;
      start[x2] = lo.length;
      const mine: number[] = []; // row positions with rules of class c
      for (let j = rows.start[s]; j < rows.start[s + 1]; j++) if (cells.min[rows.cell[j] * nc + c] !== NONE) mine.push(j);
      const cutSet = new Set<number>();
      for (const j of mine) {
        const x = rows.cell[j] * nc + c;
        for (let k = cells.kStart[x]; k < cells.kStart[x + 1]; k++) cutSet.add(cells.kLo[k]);
      }
      if (mine.length * cutSet.size > ROW_WORK) continue;
      on[x2] = 1;
      const cuts = [...cutSet].sort((a, b) => a - b);
      const at = mine.map((j) => cells.kStart[rows.cell[j] * nc + c]); // each cell's current interval
      for (const v of cuts) {
        lo.push(v);
        entStart.push(entD.length);
        const list: [number, number][] = [];
        mine.forEach((j, m) => {
          const x = rows.cell[j] * nc + c;
          while (at[m] + 1 < cells.kStart[x + 1] && cells.kLo[at[m] + 1] <= v) at[m]++;
          const r = cells.kRule[at[m]];
          if (r !== NONE) list.push([rows.to[j], r]);
        });
        list.sort((a, b) => a[1] - b[1]);
        for (const [d, r] of list) {
          entD.push(d);
          entR.push(r);
        }
      }
    }
  }
  for (let x = nFrom * nc; x <= total * nc; x++) start[x] = lo.length;
  entStart.push(entD.length);
  const bucketAt = new Int32Array(total * nc).fill(-1);
  const bucket: number[] = [];
  for (let x2 = 0; x2 < nFrom * nc; x2++) {
    const a = start[x2];
    const e = start[x2 + 1];
    const sp = space[x2 % nc];
    if (on[x2] === 0 || e - a <= BUCKET_MIN || sp < BUCKETS) continue;
    const shift = Math.log2(sp) - 8;
    bucketAt[x2] = bucket.length;
    for (let b = 0, j = a; b < BUCKETS; b++) {
      while (j + 1 < e && lo[j + 1] <= b << shift) j++;
      bucket.push(j);
    }
  }
  return { on, start, lo: Int32Array.from(lo), entStart: Int32Array.from(entStart), entD: Int32Array.from(entD), entR: Int32Array.from(entR), bucketAt, bucket: Int32Array.from(bucket) };
}

export function flatten(lists: readonly (readonly number[])[]): [Int32Array, Int32Array] {
  const start = new Int32Array(lists.length + 1);
  let total = 0;
  lists.forEach((l, i) => {
    start[i] = total;
    total += l.length;
  });
  start[lists.length] = total;
  const flat = new Int32Array(total);
  lists.forEach((l, i) => flat.set(l, start[i]));
  return [start, flat];
}

/**
 * Elementary intervals of [0, space) for rules `list` (ascending) with their [lo, hi] ranges:
 * each interval gets the first rule covering it (NONE where none does); appended to kLo/kRule,
 * adjacent intervals with the same rule merged. Painting in rule order with a next-unpainted
 * pointer (path-halving) touches each interval once.
 */
export function paint(list: readonly number[], lists: readonly number[][], space: number, kLo: number[], kRule: number[]): void {
  const cutSet = new Set<number>([0]);
  for (const rg of lists) {
    for (let k = 0; k < rg.length; k += 2) {
      cutSet.add(rg[k]);
      if (rg[k + 1] + 1 < space) cutSet.add(rg[k + 1] + 1);
    }
  }
  const cuts = [...cutSet].sort((a, b) => a - b);
  const indexOf = new Map<number, number>(cuts.map((v, i) => [v, i]));
  const m = cuts.length;
  const owner = new Int32Array(m).fill(NONE);
  const next = Int32Array.from({ length: m + 1 }, (_, i) => i);
  const find = (i: number): number => {
    while (next[i] !== i) {
      next[i] = next[next[i]];
      i = next[i];
    }
    return i;
  };
  list.forEach((r, li) => {
    const rg = lists[li];
    for (let k = 0; k < rg.length; k += 2) {
      const a = indexOf.get(rg[k])!;
      const b = rg[k + 1] + 1 < space ? indexOf.get(rg[k + 1] + 1)! : m; // exclusive
      for (let j = find(a); j < b; j = find(j + 1)) {
        owner[j] = r;
        next[j] = j + 1;
      }
    }
  });
  for (let j = 0; j < m; j++) {
    if (j > 0 && owner[j] === owner[j - 1]) continue;
    kLo.push(cuts[j]);
    kRule.push(owner[j]);
  }
}
