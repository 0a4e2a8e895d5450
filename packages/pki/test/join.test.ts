import { describe, expect, it } from 'vitest';
import {
  JoinSigner, PkiError, TrustedCas, answerJoin, formatToken, handleJoinRequest, makeJoinRequest, parseToken, requestJoin, serveJoin, verifyCert,
} from '@overlay/pki';
import { Types, decode, encode } from '../src/codec.js';
import { DAY, T0, keyTexts, newCa, nodeKeys } from './helpers.js';

const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (!(e instanceof PkiError)) throw e;
    return e.code;
  }
};
const asyncCode = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (!(e instanceof PkiError)) throw e;
    return e.code;
  }
};

describe('join tokens (bytes)', () => {
  const ca = newCa();
  const signer = () => new JoinSigner({ ca, groups: ['web'], within: ['198.19.0.0/16', '2001:db8::/32'] });

  it('the right secret gets a certificate for the joiner\'s keys, with the token\'s groups, pinned to the CA', () => {
    const s = signer();
    const k = nodeKeys();
    const token = s.token();
    expect(token).toMatch(/^OVL1-[0-9a-f]{64}-[0-9a-f]{64}$/);
    expect(Buffer.from(parseToken(token).caDigest)).toEqual(Buffer.from(ca.cert.digest));
    const { bytes, finish } = makeJoinRequest(token, k, { name: 'web-3', prefixes: ['198.19.0.3/32'], now: T0 });
    const { cert, ca: pinned } = finish(handleJoinRequest(s, bytes, T0 + 5), T0 + 5);
    expect(cert.name).toBe('web-3');
    expect(cert.groups).toEqual(['web']);
    expect(Buffer.from(cert.wgKey)).toEqual(Buffer.from(k.wgKey));
    expect(Buffer.from(pinned.digest)).toEqual(Buffer.from(ca.cert.digest));
    expect(verifyCert(cert.bytes, new TrustedCas([ca.cert]), T0 + DAY).cert.name).toBe('web-3');
    expect(s.counts.issued).toBe(1);
  });

  it('a wrong secret, a rotated token, another CA, a replay, another key, a stale time and a foreign prefix are refused', () => {
    const s = signer();
    const k = nodeKeys();
    const req = (token: string, o: { now?: number; prefixes?: string[] } = {}) => makeJoinRequest(token, k, { name: 'n', prefixes: o.prefixes ?? [], now: o.now ?? T0 });
    const run = (token: string, o: { now?: number; prefixes?: string[] } = {}) => {
      const r = req(token, o);
      return codeOf(() => r.finish(handleJoinRequest(s, r.bytes, T0), T0));
    };
    const t = parseToken(s.token());
    expect(run(formatToken({ ...t, secret: new Uint8Array(32).fill(7) }))).toBe('bad_secret');
    expect(run(formatToken({ ...t, caDigest: newCa('other').cert.digest }))).toBe('wrong_issuer');
    expect(run(s.token(), { now: T0 - 10 * 60_000 })).toBe('stale');
    expect(run(s.token(), { prefixes: ['198.20.0.1/32'] })).toBe('prefix_not_allowed');
    const old = s.token();
    expect(run(old)).toBe('ok');
    s.rotate();
    expect(run(old)).toBe('bad_secret');
    expect(run(s.token())).toBe('ok');
    // Replay: the same request bytes again.
    const r = req(s.token());
    expect(answerJoin(s, r.bytes, T0).outcome).toBe('issued');
    expect(answerJoin(s, r.bytes, T0).outcome).toBe('replayed');
    // A captured request with another WireGuard key put in: the proof no longer matches.
    const outer = decode<{ body: Uint8Array; proof: Uint8Array; sig: Uint8Array }>(Types.JoinRequest, req(s.token()).bytes, 'r');
    const body = decode<Record<string, unknown>>(Types.JoinRequestBody, outer.body, 'b');
    const swapped = encode(Types.JoinRequest, { ...outer, body: encode(Types.JoinRequestBody, { ...body, wgKey: nodeKeys().wgKey }) });
    expect(answerJoin(s, swapped, T0).outcome).toBe('bad_secret');
    // An all-zero WireGuard key (all-zero shared secret) is refused even with the right secret.
    const zero = makeJoinRequest(s.token(), { ...k, wgKey: new Uint8Array(32) }, { name: 'z', now: T0 });
    expect(answerJoin(s, zero.bytes, T0).outcome).toBe('bad_key');
    expect(s.counts).toMatchObject({ issued: 3, bad_secret: 3, wrong_issuer: 1, stale: 1, prefix_not_allowed: 1, replayed: 1, bad_key: 1 });
  });

  it('a name issued to one identity key is refused to another; the same key renews it', () => {
    const added: string[] = [];
    const issued = new Map<string, string>();
    const s = new JoinSigner({ ca, within: ['198.19.0.0/16'], issued, onIssue: (n) => added.push(n) });
    const a = nodeKeys();
    const b = nodeKeys();
    const ask = (k: typeof a) => answerJoin(s, makeJoinRequest(s.token(), k, { name: 'db-1', now: T0 }).bytes, T0).outcome;
    expect(ask(a)).toBe('issued');
    expect(ask(b)).toBe('name_taken');
    expect(ask(a)).toBe('issued');
    expect(added).toEqual(['db-1']);
    // A signer started again with the persisted map keeps the rule.
    const again = new JoinSigner({ ca, within: ['198.19.0.0/16'], issued: new Map(issued) });
    expect(answerJoin(again, makeJoinRequest(again.token(), b, { name: 'db-1', now: T0 }).bytes, T0).outcome).toBe('name_taken');
    const r = makeJoinRequest(again.token(), b, { name: 'db-1', now: T0 });
    expect(codeOf(() => r.finish(handleJoinRequest(again, r.bytes, T0), T0))).toBe('name_taken');
  });

  it('the joiner refuses an answer not from the token\'s signer', () => {
    const s = signer();
    const k = nodeKeys();
    const impostor = new JoinSigner({ ca: newCa('impostor'), within: ['198.19.0.0/16'] });
    // An impostor with its own CA and secret, answering a request for the real CA.
    const r = makeJoinRequest(s.token(), k, { name: 'n', now: T0 });
    const fake = handleJoinRequest(new JoinSigner({ ca: impostor.ca, secret: parseToken(s.token()).secret }), r.bytes, T0);
    expect(codeOf(() => r.finish(fake, T0))).toBe('wrong_issuer');
    // A real answer with a flipped proof byte.
    const r2 = makeJoinRequest(s.token(), k, { name: 'n', now: T0 });
    const good = decode<Record<string, unknown>>(Types.JoinResponse, handleJoinRequest(s, r2.bytes, T0), 'x');
    const proof = (good.proof as Uint8Array).slice();
    proof[0] ^= 1;
    expect(codeOf(() => r2.finish(encode(Types.JoinResponse, { ...good, proof }), T0))).toBe('bad_response');
    // The same answer for another request (another nonce) does not fit it.
    const r3 = makeJoinRequest(s.token(), k, { name: 'n', now: T0 });
    expect(codeOf(() => r3.finish(encode(Types.JoinResponse, good), T0))).toBe('bad_response');
  });

  it('tokens that do not parse are bad_token, and the message never repeats the token', () => {
    const s = signer();
    const tok = s.token();
    for (const t of ['', 'OVL1', tok.slice(0, -1), tok + '0', tok.replace('OVL1', 'OVL2'), tok.toUpperCase()]) {
      try {
        parseToken(t);
        expect.unreachable(t);
      } catch (e) {
        expect((e as PkiError).code).toBe('bad_token');
        for (const x of keyTexts(parseToken(tok).secret)) expect((e as Error).message).not.toContain(x);
      }
    }
  });
});

describe('join over a real TCP socket (HTTP)', () => {
  it('right secret accepted; wrong secret and a different CA digest refused; rotation takes effect', async () => {
    const ca = newCa('sock-ca', { notBefore: Date.now() - DAY });
    const s = new JoinSigner({ ca, groups: ['db'], within: ['198.19.0.0/16'] });
    const srv = await serveJoin(s, { host: '127.0.0.1', port: 0 });
    try {
      const { port } = srv.address;
      const k = nodeKeys();
      const ok = await requestJoin({ host: '127.0.0.1', port, token: s.token(), keys: k, name: 'db-1', prefixes: ['198.19.0.21/32'] });
      expect(ok.cert.groups).toEqual(['db']);
      expect(Buffer.from(ok.ca.digest)).toEqual(Buffer.from(ca.cert.digest));
      const t = parseToken(s.token());
      expect(await asyncCode(requestJoin({ host: '127.0.0.1', port, token: formatToken({ ...t, secret: new Uint8Array(32).fill(1) }), keys: k, name: 'db-2' }))).toBe('bad_secret');
      expect(await asyncCode(requestJoin({ host: '127.0.0.1', port, token: formatToken({ ...t, caDigest: newCa('x').cert.digest }), keys: k, name: 'db-3' }))).toBe('wrong_issuer');
      const old = s.token();
      s.rotate();
      expect(await asyncCode(requestJoin({ host: '127.0.0.1', port, token: old, keys: k, name: 'db-4' }))).toBe('bad_secret');
      expect(await asyncCode(requestJoin({ host: '127.0.0.1', port, token: s.token(), keys: k, name: 'db-5' }))).toBe('ok');
      expect(s.counts).toMatchObject({ issued: 2, bad_secret: 2, wrong_issuer: 1 });
      // Not the join path, and an oversized body: refused and counted, the server stays up.
      const res = await fetch(`http://127.0.0.1:${port}/other`, { method: 'POST', body: 'x' });
      expect(res.status).toBe(404);
      const big = await fetch(`http://127.0.0.1:${port}/v1/join`, { method: 'POST', body: new Uint8Array(100_000) }).then((r) => r.status, () => 'reset');
      expect([413, 'reset']).toContain(big);
      expect(srv.drops.not_found).toBe(1);
      expect(srv.drops.too_large).toBe(1);
      expect(await asyncCode(requestJoin({ host: '127.0.0.1', port, token: s.token(), keys: k, name: 'db-6' }))).toBe('ok');
    } finally {
      await srv.close();
    }
    // Nobody listening: a transport error, not a hang.
    expect(await asyncCode(requestJoin({ host: '127.0.0.1', port: srv.address.port, token: s.token(), keys: nodeKeys(), name: 'late' }))).toBe('transport');
  });
});
