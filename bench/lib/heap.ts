import { PerformanceObserver } from 'node:perf_hooks';

export interface HeapRun {
  /** heapUsed after `work` minus before, in bytes. */
  growth: number;
  /** GC events observed during `work` (entries arrive asynchronously, collected 100 ms after). */
  gcs: number;
  /** Wall-clock seconds of `work`. */
  secs: number;
  /** User CPU microseconds of `work`. */
  cpuUs: number;
}

/**
 * Heap growth, GC events, wall and user CPU time while `work` runs, after a full GC (`gc` from
 * node --expose-gc). The allocation proofs of the micro benchmarks share it.
 */
export async function heapDuring(gc: () => void, work: () => void): Promise<HeapRun> {
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  gc();
  await new Promise((r) => setImmediate(r));
  obs.observe({ entryTypes: ['gc'] });
  const h0 = process.memoryUsage().heapUsed;
  const c0 = process.cpuUsage().user;
  const t0 = process.hrtime.bigint();
  work();
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage().user;
  const h1 = process.memoryUsage().heapUsed;
  await new Promise((r) => setTimeout(r, 100));
  obs.disconnect();
  return { growth: h1 - h0, gcs, secs: Number(t1 - t0) / 1e9, cpuUs: c1 - c0 };
}
