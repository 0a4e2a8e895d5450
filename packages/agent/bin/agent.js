#!/usr/bin/env -S node --max-semi-space-size=2
// Built entry point (dist). From sources: node --conditions=source --import tsx packages/agent/src/main.ts
// --max-semi-space-size=2: a 2 MiB young generation (V8 grows it to 16 MiB per semi-space). The data
// path allocates nothing per packet, so the garbage is the control plane's, and an idle agent keeps
// ~20 MiB less resident (one run: 79–83 vs 97–105 MiB RSS, two namespace agents with TAP and
// WireGuard). Run through `node` directly, pass the flag too (packaging/overlay-agent.service does).
import { main } from '../dist/cli.js';
main(process.argv.slice(2)).then((code) => process.exit(code));
