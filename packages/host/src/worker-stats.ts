/**
 * Counters of several workers (or of a worker's several sockets) as one: the same names, each
 * the sum of its values. Every counter of the host (dataplane, native I/O, TSO/GRO, pool) is a
 * number in nested plain objects keyed by stable names (reasons.ts discipline), so one deep sum
 * aggregates them all; a name one part lacks counts as 0.
 */
type Tree = { [k: string]: number | Tree | Tree[] | undefined };

function add(into: Tree, from: Tree): void {
  for (const [k, v] of Object.entries(from)) {
    if (typeof v === 'number') into[k] = ((into[k] as number | undefined) ?? 0) + v;
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const sub = (into[k] ??= {}) as Tree;
      add(sub, v);
    }
  }
}

/** Deep sum of objects of counters (arrays inside are skipped: per-worker breakdowns are not summed). */
export function sumStats<T extends object>(parts: readonly T[]): T {
  const out: Tree = {};
  for (const p of parts) add(out, p as unknown as Tree);
  return out as unknown as T;
}
