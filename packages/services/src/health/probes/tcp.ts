/** TCP connect probe: healthy when the three-way handshake completes; the socket is closed at once. */
import { Socket } from 'node:net';
import type { HealthSpec } from '../spec.js';
import { type HealthTarget, type ProbeResult, deadline, result, socketFailure, targetPort } from './result.js';

export function tcpConnect(address: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const started = Date.now();
  const d = deadline(signal, timeoutMs);
  return new Promise<ProbeResult>((resolve) => {
    const socket = new Socket();
    let settled = false;
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      d.done();
      d.signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(r);
    };
    const onAbort = (): void => {
      const f = socketFailure(undefined, d.timedOut(), true);
      finish(result(f.why, f.detail, started));
    };
    socket.once('connect', () => finish(result('ok', '', started)));
    socket.once('error', (err) => {
      const f = socketFailure(err, d.timedOut(), false);
      finish(result(f.why, f.detail, started));
    });
    if (d.signal.aborted) return onAbort();
    d.signal.addEventListener('abort', onAbort, { once: true });
    try {
      socket.connect({ host: address, port });
    } catch (err) {
      const f = socketFailure(err, false, false);
      finish(result(f.why, f.detail, started));
    }
  });
}

export function tcpProbe(target: HealthTarget, spec: HealthSpec, signal: AbortSignal): Promise<ProbeResult> {
  const port = targetPort(target, spec);
  if (port === undefined) return Promise.resolve(result('error', 'no port to probe (set healthcheck.port or give the instance a port)', Date.now()));
  return tcpConnect(target.address, port, spec.timeoutMs, signal);
}
