#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 node --max-semi-space-size=2 --optimize-for-size --v8-pool-size=1 --bytecode-old-age=1 --flush-baseline-code
// Built entry point (dist). From sources: node --conditions=source --import tsx packages/agent/src/main.ts
// Flags for a small resident set, each measured with `bash bench/run.sh agent-rss --compare FLAGS`
// (three namespace agents with TAP, WireGuard and metrics; figures in docs/agent-memory.md):
// --max-semi-space-size=2: a 2 MiB young generation (V8 grows it to 16 MiB per semi-space);
// --optimize-for-size: the V8 heap grows less and new space starts small (heap 17.6 vs 25.6 MiB);
// --v8-pool-size=1: one V8 platform thread, not four (less malloc arena and stack: anon −5 MiB);
// --bytecode-old-age=1: bytecode not run since the last full GC is dropped (not after 5): the code
// that ran once at start goes (heap_used −0.9 MiB, RSS −0.6); idle CPU within the noise (ms/min).
// --flush-baseline-code: the same for Sparkplug (baseline) code, which V8 otherwise never drops, and
// a function that has it keeps its bytecode too: the start-only code goes (heap_used −1.0, RSS −0.9).
// MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ (glibc, man mallopt): glibc's own 128 KiB defaults,
// fixed, so a large block freed at start does not raise them (glibc then keeps big blocks on its
// heap and stops returning its free top to the kernel): RSS −0.9 MiB. `env -S` sets them for node.
// The data path allocates nothing per packet, so the garbage is the control plane's; the dataplane
// micro-benchmark ran no slower with them. Run through `node` directly, pass the flags and the two
// variables too (packaging/overlay-agent.service does).
// The code: dist/bundle/cli.js (scripts/bundle.mjs, run by scripts/setup.sh after tsc -b: one
// module instead of ~200, a smaller idle agent) while it is no older than any file it was built
// from, else dist/cli.js, the same code unbundled.
import { bundleFresh } from '../scripts/bundle.mjs';
const { main } = bundleFresh() ? await import('../dist/bundle/cli.js') : await import('../dist/cli.js');
main(process.argv.slice(2)).then((code) => process.exit(code));
