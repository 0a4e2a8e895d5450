// Preloaded into an agent by bench/soak.ts (`node --import bench/lib/mem-probe.mjs …`): every
// OVERLAY_MEM_PROBE_MS ms (default 10 000) it appends process.memoryUsage() (rss, heapTotal,
// heapUsed, external, arrayBuffers) as one JSON line to $OVERLAY_MEM_PROBE_DIR/<pid>.jsonl, so
// the soak can tell JavaScript heap from Buffer memory from native memory. Inert without the
// directory variable. With OVERLAY_MEM_PROBE_GC=1 (and --expose-gc) each sample follows a full
// GC, so it measures what is still referenced.
import { appendFileSync } from 'node:fs';

const dir = process.env.OVERLAY_MEM_PROBE_DIR;
if (dir) {
  const file = `${dir}/${process.pid}.jsonl`;
  const ms = Number(process.env.OVERLAY_MEM_PROBE_MS) || 10_000;
  const forceGc = process.env.OVERLAY_MEM_PROBE_GC === '1' && typeof globalThis.gc === 'function';
  const timer = setInterval(() => {
    if (forceGc) globalThis.gc();
    appendFileSync(file, JSON.stringify({ t: Date.now(), ...process.memoryUsage() }) + '\n');
  }, ms);
  timer.unref();
}
