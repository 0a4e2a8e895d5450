import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { PkiError, parseCert } from '@overlay/pki';
import { DESCRIPTOR_FILE, descriptorText } from '../proto/descriptor.js';
import { Types, decode, encode } from '../src/codec.js';
import { issue, newCa } from './helpers.js';

const code = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return e instanceof PkiError ? e.code : 'threw ' + String(e);
  }
};

describe('pki codec', () => {
  it('the checked-in descriptor (pki.json) is what pki.proto compiles to', () => {
    expect(readFileSync(DESCRIPTOR_FILE, 'utf8')).toBe(descriptorText());
  });

  it('decoding refuses every non-canonical form of a valid message', () => {
    const { cert } = issue(newCa());
    expect(parseCert(cert.bytes).name).toBe('web-1');
    const body = cert.body;
    const wrap = (b: Uint8Array) => encode(Types.Certificate, { body: b, sig: cert.sig });
    const cat = (...p: (Uint8Array | number[])[]) => Uint8Array.from(p.flatMap((x) => [...x]));
    // An unknown field (number 15, varint 1) appended to the body.
    expect(code(() => parseCert(wrap(cat(body, [0x78, 0x01]))))).toBe('malformed');
    // A default value written out (is_ca = false: field 10, varint 0).
    expect(code(() => parseCert(wrap(cat(body, [0x50, 0x00]))))).toBe('malformed');
    // The version varint (first field: 08 01) written in two bytes (81 00).
    expect(body[0]).toBe(0x08);
    expect(code(() => parseCert(wrap(cat([0x08, 0x81, 0x00], body.subarray(2)))))).toBe('malformed');
    // Fields out of number order: the version moved to the end.
    expect(code(() => parseCert(wrap(cat(body.subarray(2), [0x08, 0x01]))))).toBe('malformed');
    // A field repeated (last one wins in protobuf; here it is refused).
    expect(code(() => parseCert(wrap(cat([0x08, 0x01], body))))).toBe('malformed');
    // Truncated, empty, oversized.
    expect(code(() => parseCert(cert.bytes.subarray(0, cert.bytes.length - 1)))).toBe('malformed');
    expect(code(() => parseCert(new Uint8Array(0)))).toBe('malformed');
    expect(code(() => parseCert(new Uint8Array(20_000)))).toBe('malformed');
    // Invalid UTF-8 in the name (decodes to U+FFFD, re-encodes differently).
    const nameAt = body.indexOf(0x12);
    const bad = body.slice();
    bad[nameAt + 2] = 0xff;
    expect(code(() => parseCert(wrap(bad)))).toBe('malformed');
  });

  it('uint64 fields past 2^53 are refused, not rounded', () => {
    const big = encode(Types.RevocationBody, { version: 1, kind: 1, key: new Uint8Array(32), time: 1, issuer: new Uint8Array(32) });
    // time is field 4: replace its varint (20 01) with 2^63 - 1 (9 × 0xff, 0x7f).
    const i = big.indexOf(0x20);
    const huge = Uint8Array.from([...big.subarray(0, i), 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, ...big.subarray(i + 2)]);
    expect(code(() => decode(Types.RevocationBody, big, 'x'))).toBe('ok');
    expect(code(() => decode(Types.RevocationBody, huge, 'x'))).toBe('malformed');
  });
});
