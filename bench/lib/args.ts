/** Command-line options of the benchmarks: `--name value`, validated, with a default. */
const argv = process.argv.slice(2);

/** The number after `name`, or `dflt`; throws when it is not an integer ≥ `min`. */
export function intOption(name: string, dflt: number, min = 1): number {
  const v = numberOption(name, dflt, min);
  if (!Number.isInteger(v)) throw new Error(`${name} wants an integer ≥ ${min}`);
  return v;
}

/** The number after `name`, or `dflt`; throws when it is not a finite number ≥ `min`. */
export function numberOption(name: string, dflt: number, min = 0): number {
  const i = argv.indexOf(name);
  const v = i >= 0 ? Number(argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v < min) throw new Error(`${name} wants a number ≥ ${min}`);
  return v;
}

/** The word after `name`, or `dflt`. */
export function stringOption(name: string, dflt: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
}

export const hasFlag = (name: string): boolean => argv.includes(name);
