// Known-answer tests: RFC 7693 (BLAKE2s), RFC 8439 (ChaCha20-Poly1305), RFC 7748 (X25519), the
// published cacophony vector for Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, and the full WireGuard
// handshake transcript (mac1, indices, TAI64N) against an independent implementation (vectors/).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import nacl from 'tweetnacl';
import sodium from 'sodium-native';
import { blake2s } from '@noble/hashes/blake2.js';
import { BufferPool } from '@overlay/dataplane';
import { aeadDecrypt, aeadEncrypt, dh, hash, mac, publicFromPrivate } from '../src/primitives.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse } from '../src/noise.js';
import { CookieChecker, CookieGenerator } from '../src/cookie.js';
import { DataCipher, Keypair } from '../src/transport-data.js';
import { INIT_MAC1, RESP_MAC1 } from '../src/messages.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('RFC 7693 BLAKE2s', () => {
  it('hashes "abc" (Appendix B)', () => {
    expect(hash(Buffer.from('abc')).toString('hex')).toBe('508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  });

  it('passes the Appendix E self-test (keyed and unkeyed, outputs 16..32 bytes)', () => {
    const seq = (n: number, seed: number) => {
      const out = new Uint8Array(n);
      let a = Math.imul(0xdead4bad, seed) >>> 0;
      let b = 1;
      for (let i = 0; i < n; i++) {
        const t = (a + b) >>> 0;
        a = b;
        b = t;
        out[i] = t >>> 24;
      }
      return out;
    };
    const ctx = blake2s.create({});
    for (const outLen of [16, 20, 28, 32]) {
      for (const inLen of [0, 3, 64, 65, 255, 1024]) {
        const m = seq(inLen, inLen);
        ctx.update(blake2s(m, { dkLen: outLen }));
        ctx.update(blake2s(m, { dkLen: outLen, key: seq(outLen, outLen) }));
      }
    }
    expect(Buffer.from(ctx.digest()).toString('hex')).toBe('6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe');
    // WireGuard's MAC is keyed BLAKE2s-128: the helper must agree with the library call.
    expect(mac(seq(32, 32), seq(64, 64))).toEqual(Buffer.from(blake2s(seq(64, 64), { dkLen: 16, key: seq(32, 32) })));
  });
});

describe('RFC 8439 ChaCha20-Poly1305', () => {
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i));
  const ad = hex('50515253c0c1c2c3c4c5c6c7');
  const pt = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const ct = hex(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
    1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d2
    6586cec64b6116 1ae10b594f09e26a7e902ecbd0600691`);

  it('encrypts the §2.8.2 vector (nonce 07000000 40414243 44454647)', () => {
    // Our nonce layout is 4 zero bytes + 64-bit LE counter; the RFC nonce has a non-zero
    // constant, so check libsodium directly with that nonce and our layout separately.
    const out = Buffer.alloc(pt.length + 16);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, pt, ad, null, hex('070000004041424344454647'), key);
    expect(out.toString('hex')).toBe(ct.toString('hex'));
  });

  it('round-trips with the WireGuard nonce layout and rejects a flipped bit', () => {
    const c = aeadEncrypt(key, 0x0102030405, pt, ad);
    expect(aeadDecrypt(key, 0x0102030405, c, ad)).toEqual(pt);
    c[7] ^= 1;
    expect(aeadDecrypt(key, 0x0102030405, c, ad)).toBeNull();
  });
});

describe('RFC 7748 X25519', () => {
  it('matches the §5.2 vectors', () => {
    expect(dh(hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'), hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c')).toString('hex'))
      .toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
    expect(dh(hex('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d'), hex('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493')).toString('hex'))
      .toBe('95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957');
  });

  it('iterates §5.2 1 and 1000 times', () => {
    let k: Buffer = hex('0900000000000000000000000000000000000000000000000000000000000000');
    let u: Buffer = Buffer.from(k);
    for (let i = 1; i <= 1000; i++) {
      const r = dh(k, u);
      u = k;
      k = r;
      if (i === 1) expect(k.toString('hex')).toBe('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    }
    expect(k.toString('hex')).toBe('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
  });

  it('agrees with the §6.1 Diffie-Hellman example and with tweetnacl and node:crypto', () => {
    const a = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const b = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    expect(publicFromPrivate(a).toString('hex')).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(publicFromPrivate(b).toString('hex')).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(dh(a, publicFromPrivate(b)).toString('hex')).toBe(shared);
    expect(Buffer.from(nacl.scalarMult(b, publicFromPrivate(a))).toString('hex')).toBe(shared);
    const jwk = (d: Buffer | null, x: Buffer) => ({ kty: 'OKP', crv: 'X25519', x: x.toString('base64url'), ...(d ? { d: d.toString('base64url') } : {}) });
    const priv = createPrivateKey({ key: jwk(a, publicFromPrivate(a)), format: 'jwk' });
    const pub = createPublicKey({ key: jwk(null, publicFromPrivate(b)), format: 'jwk' });
    expect(diffieHellman({ privateKey: priv, publicKey: pub }).toString('hex')).toBe(shared);
  });

  it('cross-checks random keys against tweetnacl', () => {
    for (let i = 0; i < 20; i++) {
      const k = Buffer.from(nacl.randomBytes(32));
      const p = Buffer.from(nacl.randomBytes(32));
      p[31] &= 0x7f;
      expect(dh(k, p)).toEqual(Buffer.from(nacl.scalarMult(k, p)));
    }
  });
});

interface Vector {
  initiator_static_private: string; responder_static_private: string;
  initiator_ephemeral_private: string; responder_ephemeral_private: string;
  preshared_key: string | null; timestamp: string; initiator_index: number; responder_index: number;
  initiation: string; response: string; initiator_send_key: string; initiator_recv_key: string;
  payload: string; first_data: string;
}

describe('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard frames it', () => {
  const file = JSON.parse(readFileSync(new URL('./vectors/wireguard-handshake.json', import.meta.url), 'utf8')) as { vectors: Vector[] };

  it.each(file.vectors.map((v, i) => [i, v] as const))('reproduces the independent transcript %i byte for byte', (_i, v) => {
    const si = hex(v.initiator_static_private);
    const sr = hex(v.responder_static_private);
    const Si = publicFromPrivate(si);
    const Sr = publicFromPrivate(sr);
    const psk = v.preshared_key ? hex(v.preshared_key) : null;

    const init = Buffer.alloc(148);
    const ist = createInitiation({ staticPublic: Si, remoteStatic: Sr, staticShared: dh(si, Sr), timestamp: hex(v.timestamp), senderIndex: v.initiator_index, ephemeralPrivate: hex(v.initiator_ephemeral_private) }, init);
    new CookieGenerator(Sr).addMacs(init, INIT_MAC1, 0);
    expect(init.toString('hex')).toBe(v.initiation);

    const checkerR = new CookieChecker(Sr, 0);
    expect(checkerR.checkMac1(init, INIT_MAC1)).toBe(true);
    const got = consumeInitiation(init, sr, Sr, (remote) => (remote.equals(Si) ? dh(sr, Si) : null));
    expect(got).not.toBeNull();
    expect(got!.remoteStatic).toEqual(Si);
    expect(got!.timestamp.toString('hex')).toBe(v.timestamp);

    const resp = Buffer.alloc(92);
    const rkeys = createResponse(got!.state, { remoteStatic: Si, presharedKey: psk, senderIndex: v.responder_index, ephemeralPrivate: hex(v.responder_ephemeral_private) }, resp);
    new CookieGenerator(Si).addMacs(resp, RESP_MAC1, 0);
    expect(resp.toString('hex')).toBe(v.response);

    const ikeys = consumeResponse(resp, ist, si, psk);
    expect(ikeys).not.toBeNull();
    expect(ikeys!.send.toString('hex')).toBe(v.initiator_send_key);
    expect(ikeys!.recv.toString('hex')).toBe(v.initiator_recv_key);
    expect(rkeys.recv).toEqual(ikeys!.send);
    expect(rkeys.send).toEqual(ikeys!.recv);

    // First transport-data packet, sealed in place in a pool slot.
    const pool = new BufferPool({ count: 2, frameCapacity: 256 });
    const slot = pool.acquire();
    pool.fill(slot, hex(v.payload));
    const kp = new Keypair(ikeys!.send, ikeys!.recv, v.initiator_index, v.responder_index, true, 0, null);
    expect(new DataCipher(pool).seal(slot, kp, 1)).toBe(true);
    expect(pool.copyOut(slot).toString('hex')).toBe(v.first_data);
  });

  it('matches the published cacophony vector for Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (prologue, payloads, transport)', () => {
    const v = JSON.parse(readFileSync(new URL('./vectors/noise-ikpsk2-cacophony.json', import.meta.url), 'utf8'));
    const m = (v.messages as { payload: string; ciphertext: string }[]).map((x) => ({ p: hex(x.payload), c: hex(x.ciphertext) }));
    const prologue = hex(v.init_prologue);
    const psk = hex(v.init_psk);
    const si = hex(v.init_static);
    const sr = hex(v.resp_static);
    const Si = publicFromPrivate(si);
    const Sr = publicFromPrivate(sr);
    expect(Sr.toString('hex')).toBe(v.init_remote_static);
    // Message 1 sits after WireGuard's 8-byte header, message 2 after its 12-byte header.
    const m1 = Buffer.alloc(8 + m[0].c.length);
    const ist = createInitiation({ staticPublic: Si, remoteStatic: Sr, staticShared: dh(si, Sr), timestamp: m[0].p, senderIndex: 0, ephemeralPrivate: hex(v.init_ephemeral), prologue }, m1);
    expect(m1.subarray(8).toString('hex')).toBe(m[0].c.toString('hex'));
    const got = consumeInitiation(m1, sr, Sr, (remote) => (remote.equals(Si) ? dh(sr, Si) : null), { prologue, payloadLen: m[0].p.length });
    expect(got?.timestamp).toEqual(m[0].p);
    const m2 = Buffer.alloc(12 + m[1].c.length);
    const rkeys = createResponse(got!.state, { remoteStatic: Si, presharedKey: psk, senderIndex: 0, ephemeralPrivate: hex(v.resp_ephemeral), payload: m[1].p }, m2);
    expect(m2.subarray(12).toString('hex')).toBe(m[1].c.toString('hex'));
    const ikeys = consumeResponse(m2, ist, si, psk, m[1].p.length);
    expect(ikeys?.payload).toEqual(m[1].p);
    // Transport messages alternate initiator, responder, each direction counting from 0.
    const empty = Buffer.alloc(0);
    expect(aeadEncrypt(ikeys!.send, 0, m[2].p, empty)).toEqual(m[2].c);
    expect(aeadEncrypt(rkeys.send, 0, m[3].p, empty)).toEqual(m[3].c);
    expect(aeadEncrypt(ikeys!.send, 1, m[4].p, empty)).toEqual(m[4].c);
    expect(aeadEncrypt(rkeys.send, 1, m[5].p, empty)).toEqual(m[5].c);
    expect(aeadDecrypt(rkeys.recv, 1, m[4].c, empty)).toEqual(m[4].p);
  });

  it('a wrong preshared key fails the response', () => {
    const v = file.vectors[1];
    const si = hex(v.initiator_static_private);
    const Sr = publicFromPrivate(hex(v.responder_static_private));
    const init = Buffer.alloc(148);
    const ist = createInitiation({ staticPublic: publicFromPrivate(si), remoteStatic: Sr, staticShared: dh(si, Sr), timestamp: hex(v.timestamp), senderIndex: v.initiator_index, ephemeralPrivate: hex(v.initiator_ephemeral_private) }, init);
    expect(consumeResponse(hex(v.response), ist, si, Buffer.alloc(32, 1))).toBeNull();
  });
});
