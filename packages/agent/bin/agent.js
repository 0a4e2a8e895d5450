#!/usr/bin/env node
// Built entry point (dist). From sources: node --conditions=source --import tsx packages/agent/src/main.ts
import { main } from '../dist/cli.js';
main(process.argv.slice(2)).then((code) => process.exit(code));
