// Key text format interchangeable with wireguard-tools (`wg genkey`, `wg pubkey`).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { generatePresharedKey, generatePrivateKey, publicKeyOf, InvalidKeyError } from '../src/index.js';

describe('keys', () => {
  it('derives the same public key as `wg pubkey`, both ways', () => {
    for (let i = 0; i < 3; i++) {
      const ours = generatePrivateKey();
      expect(execFileSync('wg', ['pubkey'], { input: ours + '\n' }).toString().trim()).toBe(publicKeyOf(ours));
      const theirs = execFileSync('wg', ['genkey']).toString().trim();
      expect(publicKeyOf(theirs)).toBe(execFileSync('wg', ['pubkey'], { input: theirs + '\n' }).toString().trim());
    }
  });

  it('generates 32-byte base64 keys and rejects malformed ones with a typed error', () => {
    expect(Buffer.from(generatePresharedKey(), 'base64')).toHaveLength(32);
    for (const bad of ['', 'abc', 'A'.repeat(44), 'A'.repeat(43) + '=' + 'x', 'B'.repeat(42) + 'B=']) {
      expect(() => publicKeyOf(bad)).toThrow(InvalidKeyError);
    }
  });
});
