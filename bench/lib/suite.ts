import Benchmark from 'benchmark';
import { median } from './stats.js';

export interface SuiteRow {
  name: string;
  /** Operations per second from the median per-op sample time, not the mean: the machine is shared and noisy. */
  hz: number;
  rme: number;
  samples: number;
  /** benchmark.js's per-op sample times, in seconds. */
  sample: number[];
}

/** Run a benchmark.js suite synchronously; one row per benchmark, in the order they ran. */
export function runSuite(name: string, add: (s: Benchmark.Suite) => void): Promise<SuiteRow[]> {
  return new Promise((resolve) => {
    const s = new Benchmark.Suite(name);
    add(s);
    const rows: SuiteRow[] = [];
    s.on('cycle', (e: Benchmark.Event) => {
      const b = e.target as unknown as Benchmark;
      const sample = b.stats?.sample ?? [];
      rows.push({ name: String(b.name), hz: sample.length ? 1 / median(sample) : 0, rme: b.stats?.rme ?? 0, samples: sample.length, sample });
    });
    s.on('complete', () => resolve(rows));
    s.run({ async: false });
  });
}

/** A rate for a table: 2.25 M, 131.0 k, 664. */
export const fmtRate = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));
