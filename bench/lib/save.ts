import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Benchmarks print their figures; only `--save` writes them into the tracked bench/results/. */
export const SAVE = process.argv.includes('--save');

/** Write `text` to `file` (a path or file URL) when run with --save; otherwise say it was not written. */
export function saveResult(file: string | URL, text: string): void {
  const path = typeof file === 'string' ? file : fileURLToPath(file);
  if (!SAVE) {
    console.log(`(not written: ${path}; run with --save to keep these figures)`);
    return;
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote ${path}`);
}
