// Longest-prefix match against a slow reference (every prefix checked, longest wins).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AllowedIps, formatPrefix, parsePrefix, type Prefix } from '../src/allowed-ips.js';
import { InvalidAddressError } from '../src/index.js';

function matches(p: Prefix, addr: Buffer): boolean {
  for (let i = 0; i < p.bits; i++) {
    const bit = (x: Buffer) => (x[i >> 3] >> (7 - (i & 7))) & 1;
    if (bit(p.bytes) !== bit(addr)) return false;
  }
  return true;
}

describe('AllowedIps', () => {
  it('parses and canonicalises prefixes', () => {
    expect(formatPrefix(parsePrefix('198.19.1.7/16'))).toBe('198.19.0.0/16');
    expect(formatPrefix(parsePrefix('198.19.1.7'))).toBe('198.19.1.7/32');
    expect(formatPrefix(parsePrefix('2001:db8::1/32'))).toBe('2001:db8::/32');
    // RFC 5952: the longest run of zero groups is the one compressed.
    expect(formatPrefix(parsePrefix('2001:db8:0:0:1:0:0:0/128'))).toBe('2001:db8:0:0:1::/128');
    for (const bad of ['198.19.0.0/33', 'x/8', '2001:db8::/129', '198.19.0.0/-1', '198.19.0.0/1a', 'fe80::1%eth0/64']) expect(() => parsePrefix(bad)).toThrow(InvalidAddressError);
  });

  for (const family of [4, 6] as const) {
    it(`matches a slow reference on random IPv${family} tables`, () => {
      const len = family === 4 ? 4 : 16;
      const arbPrefix = fc.record({ bytes: fc.uint8Array({ minLength: len, maxLength: len }), bits: fc.integer({ min: 0, max: len * 8 }) });
      fc.assert(
        fc.property(fc.array(arbPrefix, { minLength: 1, maxLength: 30 }), fc.array(fc.uint8Array({ minLength: len, maxLength: len }), { minLength: 1, maxLength: 30 }), (entries, probes) => {
          const table = new AllowedIps<number>();
          const prefixes: Prefix[] = [];
          entries.forEach((e, i) => {
            const bytes = Buffer.from(e.bytes);
            for (let b = e.bits; b < len * 8; b++) bytes[b >> 3] &= ~(0x80 >> (b & 7));
            const p = { family, bytes, bits: e.bits };
            table.insert(p, i);
            prefixes.push(p);
          });
          // Probe with random addresses and with addresses inside each prefix.
          const all = [...probes.map((x) => Buffer.from(x)), ...prefixes.map((p) => Buffer.from(p.bytes))];
          for (const a of all) {
            let best = -1;
            let bestBits = -1;
            prefixes.forEach((p, i) => {
              // A later insert of the same prefix replaces the earlier one.
              if (matches(p, a) && p.bits >= bestBits) {
                best = i;
                bestBits = p.bits;
              }
            });
            const got = table.lookup(family, a, 0);
            if ((got ?? -1) !== best) return false;
          }
          return true;
        }),
        { numRuns: 300 },
      );
    });
  }
});
