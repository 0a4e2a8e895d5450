/**
 * What a 10 000-rule policy filter costs in memory and compile time, step by step in one fresh
 * process, as bench/throughput.ts's encrypted+policy host builds it (test/lib/vtep-host.ts: the
 * policy JSON read from a file, one PolicyFilter per network).
 *
 *   node --expose-gc --conditions=source --import tsx bench/policy-memory.ts [--rules throughput|big|worst]
 *
 * Prints, after each step, RSS (before and after a full GC), the peak RSS, V8 heap (committed and
 * used, after the GC) and array buffers,
 * and the filter's typed arrays by owner (the two flow tables, the compiled rules, the identity
 * table); then the time of 3 more compiles (setPolicy) of the same rules with the heap growth
 * each leaves. RSS is the figure the throughput bench reports; the heap's peak during the
 * compile is what RSS keeps after it (V8 does not hand back the pages of its grown old space at
 * once).
 */
import { loadavg } from 'node:os';
import { PolicyFilter, type Policy } from '@overlay/services';
import { bigPolicy, worstPolicy } from './lib/policy-sets.js';
import { benchPolicy } from './lib/paths.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const which = process.argv.includes('--rules') ? process.argv[process.argv.indexOf('--rules') + 1] : 'throughput';
const make: Record<string, () => Policy> = { throughput: benchPolicy, big: bigPolicy, worst: worstPolicy };
if (!make[which]) throw new Error(`--rules: ${Object.keys(make).join(', ')}`);

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
/** The process's peak RSS so far (getrusage ru_maxrss, KiB): it sees inside a synchronous compile. */
const peakRss = () => process.resourceUsage().maxRSS * 1024;
function row(step: string): void {
  const rss = process.memoryUsage.rss(); // as a process that never forces a GC sees it
  gc!();
  const m = process.memoryUsage();
  console.log(`| ${step} | ${MiB(rss)} | ${MiB(m.rss)} | ${MiB(peakRss())} | ${MiB(m.heapTotal)} | ${MiB(m.heapUsed)} | ${MiB(m.arrayBuffers)} |`);
}
/** Bytes of every typed array among `o`'s own properties (one level down for plain objects). */
function typedBytes(o: object, depth = 1): number {
  let n = 0;
  for (const v of Object.values(o)) {
    if (ArrayBuffer.isView(v)) n += v.byteLength;
    else if (depth > 0 && v && typeof v === 'object' && !Array.isArray(v)) n += typedBytes(v, depth - 1);
  }
  return n;
}

console.log(`policy filter memory, rules "${which}" (node ${process.version}), load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log('| step | RSS MiB | RSS after a full GC | peak RSS MiB | heap committed MiB | heap used MiB | array buffers MiB |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
row('modules loaded');
const text = JSON.stringify(make[which]());
row(`policy as JSON text (${MiB(text.length)} MiB)`);
const policy = JSON.parse(text) as Policy;
row('policy parsed');
const t0 = performance.now();
const f = new PolicyFilter({ policy, log: () => {}, timers: false });
const ms0 = performance.now() - t0;
row(`filter built (${ms0.toFixed(0)} ms: validate, compile, 2 flow tables)`);
const ct = typedBytes(f.conntrack) + typedBytes(f.conntrack6);
const wheel = typedBytes((f.conntrack as unknown as { wheel: object }).wheel) + typedBytes((f.conntrack6 as unknown as { wheel: object }).wheel);
const compiled = typedBytes(f.compiled, 2);
console.log(`typed arrays: flow tables ${MiB(ct + wheel)} MiB (2 × 65 536 flows, timer wheels ${MiB(wheel)}), compiled rules ${MiB(compiled)} MiB (${f.compiled.size} rules, ${f.compiled.cellCount} cells), identity ${MiB(typedBytes(f.identity))} MiB`);
const times: string[] = [];
for (let i = 0; i < 3; i++) {
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const t = performance.now();
  const c0 = process.cpuUsage();
  f.setPolicy(policy);
  const cpu = process.cpuUsage(c0);
  const ms = performance.now() - t;
  const grown = process.memoryUsage().heapUsed - h0;
  times.push(`${ms.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU (heap +${MiB(grown)} MiB before GC)`);
}
row('after 3 more compiles (setPolicy), GC');
console.log(`compile (setPolicy, validate + compile): ${times.join(', ')}; load average now ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
