/**
 * The join exchange over HTTP/1.1 on a TCP socket: `POST /v1/join` with the JoinRequest bytes,
 * answered with JoinResponse bytes (200 when issued, 403 when refused). Bodies are capped at
 * MAX_MESSAGE_BYTES, each request has a deadline, and the server never logs request contents.
 * Confidentiality is not needed: nothing secret travels (see token.ts); integrity comes from the
 * HMACs and the pinned CA digest.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_MESSAGE_BYTES } from './codec.js';
import { PkiError } from './errors.js';
import { answerJoin, makeJoinRequest, type JoinerKeys, type JoinSigner, type JoinToken } from './token.js';
import type { Certificate } from './cert.js';

export const JOIN_PATH = '/v1/join';
const TIMEOUT_MS = 10_000;

function readBody(msg: IncomingMessage, limit: number): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let n = 0;
    msg.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        resolve(null);
        msg.destroy();
      } else parts.push(c);
    });
    msg.on('end', () => resolve(new Uint8Array(Buffer.concat(parts))));
    msg.on('error', () => resolve(null));
    msg.on('aborted', () => resolve(null));
  });
}

export interface JoinServer {
  server: Server;
  /** The bound address (port 0 picks one). */
  address: AddressInfo;
  /** Requests refused before reaching the signer: wrong method/path, too large, broken. */
  drops: Record<'not_found' | 'too_large' | 'broken', number>;
  close(): Promise<void>;
}

/** Serve `signer` on host:port (the signer's clock is `clock`, default Date.now). */
export async function serveJoin(signer: JoinSigner, o: { host: string; port: number; clock?: () => number }): Promise<JoinServer> {
  const clock = o.clock ?? Date.now;
  const drops = { not_found: 0, too_large: 0, broken: 0 };
  const server = createServer({ requestTimeout: TIMEOUT_MS, headersTimeout: TIMEOUT_MS }, (req, res) => {
    if (req.method !== 'POST' || req.url !== JOIN_PATH) {
      drops.not_found++;
      res.writeHead(404).end();
      req.resume();
      return;
    }
    void readBody(req, MAX_MESSAGE_BYTES).then((body) => {
      if (!body) {
        drops[req.destroyed ? 'too_large' : 'broken']++;
        if (!res.headersSent && !res.destroyed) res.writeHead(413, { connection: 'close' }).end();
        return;
      }
      let a: { response: Uint8Array; outcome: string };
      try {
        a = answerJoin(signer, body, clock());
      } catch {
        drops.broken++;
        res.writeHead(500).end();
        return;
      }
      res.writeHead(a.outcome === 'issued' ? 200 : 403, { 'content-type': 'application/octet-stream', 'content-length': a.response.length }).end(a.response);
    });
  });
  server.maxConnections = 256;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    address: server.address() as AddressInfo,
    drops,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function post(host: string, port: number, body: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, method: 'POST', path: JOIN_PATH, timeout: TIMEOUT_MS, headers: { 'content-type': 'application/octet-stream', 'content-length': body.length } }, (res) => {
      void readBody(res, MAX_MESSAGE_BYTES).then((b) => (b ? resolve(b) : reject(new PkiError('transport', 'the signer\'s answer is too large or broken'))));
    });
    req.on('timeout', () => req.destroy(new PkiError('transport', `no answer from ${host}:${port} within ${TIMEOUT_MS} ms`)));
    req.on('error', (e) => reject(e instanceof PkiError ? e : new PkiError('transport', `cannot reach the signer at ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)));
    req.end(body);
  });
}

/**
 * Join through the signer at host:port with `token`: returns the certificate for `keys` and the
 * CA it pins, or throws PkiError (the signer's refusal code, transport, or a check of the answer).
 */
export async function requestJoin(o: { host: string; port: number; token: JoinToken | string; keys: JoinerKeys; name: string; prefixes?: string[]; clock?: () => number }): Promise<{ cert: Certificate; ca: Certificate }> {
  const clock = o.clock ?? Date.now;
  const { bytes, finish } = makeJoinRequest(o.token, o.keys, { name: o.name, prefixes: o.prefixes, now: clock() });
  return finish(await post(o.host, o.port, bytes), clock());
}
