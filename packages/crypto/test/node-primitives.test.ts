// primitives.ts runs X25519 and ChaCha20-Poly1305 on node:crypto and XChaCha20-Poly1305 as
// HChaCha20 (xchacha.ts) + node's ChaCha20-Poly1305 (issue 15: the agent no longer loads
// libsodium). Here every one of them is checked against libsodium, the independent reference,
// and against draft-irtf-cfrg-xchacha-03's vectors; dh must refuse every low-order point.
import { describe, expect, it } from 'vitest';
import sodium from 'sodium-native';
import { aeadDecrypt, aeadEncrypt, dh, generatePrivate, publicFromPrivate, randomBytes, xaeadDecrypt, xaeadEncrypt } from '../src/primitives.js';
import { hchacha20 } from '../src/xchacha.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const P = (1n << 255n) - 19n;
/** u as 32 little-endian bytes. */
const le = (u: bigint) => Buffer.from(Array.from({ length: 32 }, (_, i) => Number((u >> BigInt(8 * i)) & 0xffn)));

/**
 * The u-coordinates of Curve25519's points of order 1, 2, 4 and 8 and their non-canonical
 * encodings below 2^255 (the list libsodium blocks): 0, 1, the two of order 8, p − 1, p, p + 1.
 */
const LOW_ORDER = [
  0n,
  1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  P - 1n,
  P,
  P + 1n,
];

describe('X25519 on node:crypto', () => {
  it('refuses every low-order point, canonical or not, with or without the top bit (which X25519 ignores)', () => {
    const keys = [generatePrivate(), generatePrivate(), randomBytes(32)];
    for (const u of LOW_ORDER) {
      for (const top of [false, true]) {
        const pub = le(u);
        if (top) pub[31] |= 0x80;
        for (const k of keys) {
          expect(() => dh(k, pub), `u = ${u}, top bit ${top}`).toThrow();
          // libsodium, the previous implementation, refuses the same points.
          expect(() => sodium.crypto_scalarmult(Buffer.alloc(32), k, pub)).toThrow();
        }
      }
    }
  });

  it('a refused point still lets the next good one through (no state left behind)', () => {
    const k = generatePrivate();
    const peer = generatePrivate();
    expect(() => dh(k, le(0n))).toThrow();
    expect(dh(k, publicFromPrivate(peer))).toEqual(dh(peer, publicFromPrivate(k)));
  });

  it('matches libsodium for random keys and points (incl. non-canonical u and the top bit)', () => {
    for (let i = 0; i < 64; i++) {
      const k = randomBytes(32);
      const p = randomBytes(32);
      if (i % 8 === 0) p.set(le(P + BigInt(2 + (i % 16))).subarray(0, 32)); // p + 2 .. p + 17: non-canonical, not low-order
      const want = Buffer.alloc(32);
      sodium.crypto_scalarmult(want, k, p);
      expect(dh(k, p)).toEqual(want);
      const base = Buffer.alloc(32);
      sodium.crypto_scalarmult_base(base, k);
      expect(publicFromPrivate(k)).toEqual(base);
    }
  });

  it('gives the same result when a key buffer is reused with new bytes (the KeyObject cache checks them)', () => {
    const k = generatePrivate();
    const p = publicFromPrivate(generatePrivate());
    const first = dh(k, p);
    const old = Buffer.from(k);
    k.set(generatePrivate());
    const want = Buffer.alloc(32);
    sodium.crypto_scalarmult(want, k, p);
    expect(dh(k, p)).toEqual(want);
    expect(dh(old, p)).toEqual(first);
  });

  it('refuses keys of the wrong length', () => {
    expect(() => dh(Buffer.alloc(31, 1), publicFromPrivate(generatePrivate()))).toThrow(RangeError);
    expect(() => dh(generatePrivate(), Buffer.alloc(33, 9))).toThrow(RangeError);
  });
});

describe('ChaCha20-Poly1305 on node:crypto', () => {
  it('matches libsodium for every length 0..300 and an associated-data length of 0 and 32', () => {
    const key = randomBytes(32);
    for (let n = 0; n <= 300; n++) {
      const pt = randomBytes(n);
      const ad = randomBytes(n % 2 === 0 ? 32 : 0);
      const counter = n * 0x10001 + 0x1_0000_0000;
      const nonce = Buffer.alloc(12);
      nonce.writeUInt32LE(counter >>> 0, 4);
      nonce.writeUInt32LE(Math.floor(counter / 2 ** 32), 8);
      const want = Buffer.alloc(n + 16);
      sodium.crypto_aead_chacha20poly1305_ietf_encrypt(want, pt, ad, null, nonce, key);
      const got = aeadEncrypt(key, counter, pt, ad);
      expect(got).toEqual(want);
      expect(aeadDecrypt(key, counter, got, ad)).toEqual(pt);
      got[n % (n + 16)] ^= 0x40;
      expect(aeadDecrypt(key, counter, got, ad)).toBeNull();
    }
    expect(aeadDecrypt(key, 0, Buffer.alloc(15), Buffer.alloc(0))).toBeNull();
  });
});

describe('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03)', () => {
  it('HChaCha20 matches the §2.2.1 vector', () => {
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    expect(hchacha20(key, hex('000000090000004a0000000031415927')).toString('hex'))
      .toBe('82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
  });

  it('seals the §A.3.1 vector and opens it', () => {
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i));
    const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const pt = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const want = hex(`bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39
      ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e
      c0875924c1c7987947deafd8780acf49`);
    expect(xaeadEncrypt(key, nonce, pt, ad).toString('hex')).toBe(want.toString('hex'));
    expect(xaeadDecrypt(key, nonce, want, ad)).toEqual(pt);
  });

  it('matches libsodium for random keys, nonces and WireGuard cookie-sized messages, and rejects a flipped bit', () => {
    for (let i = 0; i < 64; i++) {
      const key = randomBytes(32);
      const nonce = randomBytes(24);
      const pt = randomBytes(i % 3 === 0 ? 16 : i);
      const ad = randomBytes(16);
      const want = Buffer.alloc(pt.length + 16);
      sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(want, pt, ad, null, nonce, key);
      const got = xaeadEncrypt(key, nonce, pt, ad);
      expect(got).toEqual(want);
      expect(xaeadDecrypt(key, nonce, got, ad)).toEqual(pt);
      got[i % got.length] ^= 1;
      expect(xaeadDecrypt(key, nonce, got, ad)).toBeNull();
    }
  });
});
