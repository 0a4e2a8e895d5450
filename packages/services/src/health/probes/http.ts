/**
 * HTTP(S) GET probe: healthy when the status is in the spec's range. The whole exchange (connect,
 * headers, the first 4 KiB of body) must finish within the timeout; the body is read up to 4 KiB
 * and the connection is then closed, so a server streaming megabytes costs nothing more.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import type { HealthSpec } from '../spec.js';
import { type HealthTarget, type ProbeResult, OUTPUT_LIMIT, deadline, result, socketFailure, targetPort } from './result.js';

/** node:https (and tls) is loaded by the first https probe: an agent without one does not hold it (docs/agent-memory.md). */
const httpsRequest = (options: import('node:https').RequestOptions, onResponse: (res: IncomingMessage) => void) =>
  (createRequire(import.meta.url)('node:https') as typeof import('node:https')).request(options, onResponse);

export function httpProbe(target: HealthTarget, spec: HealthSpec, signal: AbortSignal): Promise<ProbeResult> {
  const started = Date.now();
  const port = targetPort(target, spec);
  if (port === undefined) return Promise.resolve(result('error', 'no port to probe (set healthcheck.port or give the instance a port)', started));
  const d = deadline(signal, spec.timeoutMs);
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      d.done();
      req.destroy();
      resolve(r);
    };
    const fail = (err: unknown): void => {
      const f = socketFailure(err, d.timedOut(), d.signal.aborted);
      finish(result(f.why, f.detail, started));
    };
    const hostHeader = isIPv6(target.address) ? `[${target.address}]:${port}` : `${target.address}:${port}`;
    const options = {
      host: target.address,
      port,
      path: spec.path,
      method: 'GET',
      agent: false as const,
      signal: d.signal,
      headers: { host: hostHeader, 'user-agent': 'overlay-health/1', accept: '*/*', connection: 'close' },
    };
    const onResponse = (res: IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let kept = 0;
      const done = (): void => {
        const body = Buffer.concat(chunks, kept).toString('utf8');
        const ok = status >= spec.statusMin && status <= spec.statusMax;
        finish(result(ok ? 'ok' : 'status', `status ${status}`, started, body));
      };
      res.on('data', (chunk: Buffer) => {
        const take = Math.min(chunk.length, OUTPUT_LIMIT - kept);
        if (take > 0) {
          chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
          kept += take;
        }
        if (kept >= OUTPUT_LIMIT) done();
      });
      res.once('end', done);
      res.once('error', fail);
    };
    let req: ReturnType<typeof httpRequest>;
    try {
      req = spec.kind === 'https'
        ? httpsRequest({ ...options, rejectUnauthorized: !spec.tlsSkipVerify }, onResponse)
        : httpRequest(options, onResponse);
    } catch (err) {
      settled = true;
      d.done();
      const f = socketFailure(err, false, false);
      resolve(result(f.why, f.detail, started));
      return;
    }
    req.once('error', fail);
    req.end();
  });
}
