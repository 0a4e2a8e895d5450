/**
 * The agent's wire schema as a protobufjs JSON descriptor, generated from agent.proto (the one
 * source) and checked in as agent.json, which the runtime loads with Root.fromJSON: no .proto
 * parsing at run time. `--write` regenerates agent.json; the unit test (wire-schema.test.ts)
 * fails when the two disagree.
 *
 *   node --import tsx packages/agent/proto/descriptor.ts --write
 */
import protobuf from 'protobufjs';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PROTO_FILE = fileURLToPath(new URL('./agent.proto', import.meta.url));
export const DESCRIPTOR_FILE = fileURLToPath(new URL('./agent.json', import.meta.url));

/** The descriptor text agent.proto compiles to (stable key order, trailing newline). */
export function descriptorText(): string {
  return JSON.stringify(protobuf.loadSync(PROTO_FILE).toJSON({ keepComments: false }), null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--write')) {
  writeFileSync(DESCRIPTOR_FILE, descriptorText());
}
