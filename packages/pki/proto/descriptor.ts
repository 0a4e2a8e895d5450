/**
 * The PKI wire schema as a protobufjs JSON descriptor, generated from pki.proto (the one
 * source) and checked in as pki.json, which the runtime loads with Root.fromJSON: no .proto
 * parsing at run time. `--write` regenerates pki.json; the unit test (codec.test.ts)
 * fails when the two disagree.
 *
 *   node --import tsx packages/pki/proto/descriptor.ts --write
 */
import protobuf from 'protobufjs';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PROTO_FILE = fileURLToPath(new URL('./pki.proto', import.meta.url));
export const DESCRIPTOR_FILE = fileURLToPath(new URL('./pki.json', import.meta.url));

/** The descriptor text pki.proto compiles to (stable key order, trailing newline). */
export function descriptorText(): string {
  return JSON.stringify(protobuf.loadSync(PROTO_FILE).toJSON({ keepComments: false }), null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--write')) {
  writeFileSync(DESCRIPTOR_FILE, descriptorText());
}
