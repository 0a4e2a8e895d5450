/**
 * Canonical protobuf for the PKI over the schema compiled from proto/pki.proto into
 * proto/pki.json (loaded with Root.fromJSON; nothing is parsed at run time, never a peer's
 * schema). Encoding omits default values and writes fields in number order (protobufjs sorts by
 * id), so one meaning has one byte string. Decoding re-encodes and refuses anything that differs:
 * unknown fields, defaults written out, repeated scalars packed the other way, overlong varints,
 * invalid UTF-8, values past 2^53.
 */
import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';
import { fail, PkiError } from './errors.js';
import { equalBytes } from './keys.js';

const descriptor = JSON.parse(readFileSync(new URL('../proto/pki.json', import.meta.url), 'utf8')) as protobuf.INamespace;
const root = protobuf.Root.fromJSON(descriptor);
const T = (n: string) => root.lookupType(`overlay.pki.v1.${n}`);

export const Types = {
  Prefix: T('Prefix'),
  CertBody: T('CertBody'),
  Certificate: T('Certificate'),
  RevocationBody: T('RevocationBody'),
  Revocation: T('Revocation'),
  JoinRequestBody: T('JoinRequestBody'),
  JoinRequest: T('JoinRequest'),
  JoinResponse: T('JoinResponse'),
} as const;

/** No PKI message is larger than this; longer input is refused before decoding. */
export const MAX_MESSAGE_BYTES = 16 * 1024;

type Plain = { [k: string]: unknown };

/** Drop default values (0, false, '', empty bytes, empty lists) recursively: proto3's canonical form. */
function strip(v: Plain): Plain {
  const out: Plain = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined || x === null || x === 0 || x === false || x === '') continue;
    if (x instanceof Uint8Array) {
      if (x.length) out[k] = x;
    } else if (Array.isArray(x)) {
      if (x.length) out[k] = x.map((e) => (e && typeof e === 'object' && !(e instanceof Uint8Array) ? strip(e as Plain) : e));
    } else out[k] = x;
  }
  return out;
}

export function encode(type: protobuf.Type, value: Plain): Uint8Array {
  const err = type.verify(strip(value));
  if (err) fail('invalid_argument', `${type.name}: ${err}`);
  const b = type.encode(type.fromObject(strip(value))).finish();
  // A plain Uint8Array view (Buffer's slice() shares memory; Uint8Array's copies).
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Decode `bytes` as `type` with every field present (defaults filled), or throw `malformed`
 * when the bytes do not decode or are not the canonical encoding of what they decode to.
 */
export function decode<R>(type: protobuf.Type, bytes: Uint8Array, what: string): R {
  if (!(bytes instanceof Uint8Array)) fail('malformed', `${what}: not bytes`);
  if (bytes.length > MAX_MESSAGE_BYTES) fail('malformed', `${what}: ${bytes.length} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit`);
  let obj: Plain;
  try {
    // Decoded bytes fields are views of the input: decode a private copy so that the caller's later
    // changes to its buffer cannot change what was checked.
    obj = type.toObject(type.decode(new Uint8Array(bytes)), { longs: Number, defaults: true, arrays: true }) as Plain;
  } catch (e) {
    throw new PkiError('malformed', `${what}: does not decode`, { cause: e });
  }
  let again: Uint8Array;
  try {
    // What decode produced has the schema's types already: encode without verify/fromObject.
    again = type.encode(strip(obj)).finish();
  } catch (e) {
    throw new PkiError('malformed', `${what}: does not re-encode`, { cause: e });
  }
  if (!equalBytes(again, bytes)) fail('malformed', `${what}: not the canonical encoding (unknown or default fields, or non-minimal bytes)`);
  return obj as R;
}
