#!/usr/bin/env -S node --max-semi-space-size=2 --optimize-for-size
// Built entry point (dist). From sources: node --conditions=source --import tsx packages/agent/src/main.ts
// V8 flags for a small resident set (docs/agent-memory.md; bench/agent-rss.ts measures them as shipped):
// --max-semi-space-size=2: a 2 MiB young generation (V8 grows it to 16 MiB per semi-space);
// --optimize-for-size: the heap grows and new space starts small (one run, three namespace agents with
// TAP, WireGuard and metrics: median RSS 76.3 vs 85.0 MiB, V8 heap 18.4 vs 26.1 MiB). The data path
// allocates nothing per packet, so the garbage is the control plane's; the dataplane micro-benchmark
// ran no slower with it. Run through `node` directly, pass the flags too (packaging/overlay-agent.service does).
import { main } from '../dist/cli.js';
main(process.argv.slice(2)).then((code) => process.exit(code));
