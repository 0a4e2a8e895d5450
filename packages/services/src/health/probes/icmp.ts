/**
 * ICMP echo probe through raw-socket: one echo request to the instance address (ICMP for IPv4,
 * ICMPv6 for IPv6, whose checksum the kernel fills), healthy when the reply with our id and
 * sequence number arrives in time; a destination-unreachable quoting our request is `unreachable`.
 *
 * Raw sockets need CAP_NET_RAW. The first probe finds out: when opening the socket fails with
 * EPERM/EACCES, the prober warns once and from then on probes TCP connect on the instance's first
 * port (or the spec's port) instead, saying so in every result's detail.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { randomInt } from 'node:crypto';
import raw, { type RawSocket } from 'raw-socket';
import type { HealthSpec } from '../spec.js';
import { type HealthTarget, type ProbeResult, result, targetPort } from './result.js';
import { tcpConnect } from './tcp.js';

const ECHO_REQUEST_V4 = 8;
const ECHO_REPLY_V4 = 0;
const UNREACHABLE_V4 = 3;
const ECHO_REQUEST_V6 = 128;
const ECHO_REPLY_V6 = 129;
const UNREACHABLE_V6 = 1;
const PAYLOAD = Buffer.from('overlay-health..', 'latin1');

export interface IcmpProberOptions {
  /** Opens the raw socket (tests substitute one that fails with EPERM). */
  createSocket?: (family: 4 | 6) => RawSocket;
  /** Told once when ICMP is unavailable. */
  warn?: (message: string) => void;
  /** Called for every probe answered by the TCP fallback. */
  onFallback?: () => void;
}

function openRaw(family: 4 | 6): RawSocket {
  return family === 4
    ? raw.createSocket({ protocol: raw.Protocol.ICMP, addressFamily: raw.AddressFamily.IPv4 })
    : raw.createSocket({ protocol: raw.Protocol.ICMPv6, addressFamily: raw.AddressFamily.IPv6 });
}

function isPermissionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === 'EPERM' || e?.code === 'EACCES' || (typeof e?.message === 'string' && /not permitted|permission denied/i.test(e.message));
}

function sendFailure(err: Error): { why: ProbeResult['why']; detail: string } {
  if (/unreachable|no route/i.test(err.message)) return { why: 'unreachable', detail: err.message };
  return { why: 'error', detail: err.message.slice(0, 200) };
}

export class IcmpProber {
  /** undefined until the first probe tried a raw socket; false when it was refused. */
  available: boolean | undefined;
  /** Probes answered through the TCP fallback. */
  fallbacks = 0;
  private readonly id = randomInt(0x10000);
  private seq = randomInt(0x10000);
  private readonly open: (family: 4 | 6) => RawSocket;
  private readonly warn: (message: string) => void;
  private readonly onFallback: (() => void) | undefined;

  constructor(options: IcmpProberOptions = {}) {
    this.open = options.createSocket ?? openRaw;
    this.warn = options.warn ?? ((m) => process.emitWarning(m, { code: 'OVL_HEALTH_ICMP_UNAVAILABLE' }));
    this.onFallback = options.onFallback;
  }

  /** The probe function (bound, so it can be handed around). */
  readonly probe = (target: HealthTarget, spec: HealthSpec, signal: AbortSignal): Promise<ProbeResult> => {
    const started = Date.now();
    if (signal.aborted) return Promise.resolve(result('aborted', 'check stopped', started));
    const family = isIPv4(target.address) ? 4 : isIPv6(target.address) ? 6 : 0;
    if (family === 0) return Promise.resolve(result('error', `not an IP address: ${JSON.stringify(target.address.slice(0, 64))}`, started));
    if (this.available === false) return this.fallback(target, spec, signal);
    let socket: RawSocket;
    try {
      socket = this.open(family);
      this.available = true;
    } catch (err) {
      if (!isPermissionError(err)) return Promise.resolve(result('error', `raw socket: ${err instanceof Error ? err.message : String(err)}`, started));
      if (this.available === undefined) {
        this.warn('health: ICMP checks need CAP_NET_RAW (raw socket refused: EPERM); falling back to TCP connect on the instance port');
      }
      this.available = false;
      return this.fallback(target, spec, signal);
    }
    return this.echo(socket, family, target.address, spec.timeoutMs, signal, started);
  };

  private async fallback(target: HealthTarget, spec: HealthSpec, signal: AbortSignal): Promise<ProbeResult> {
    this.fallbacks++;
    this.onFallback?.();
    const port = targetPort(target, spec);
    if (port === undefined) return result('error', 'icmp unavailable (no CAP_NET_RAW) and no port for the TCP fallback', Date.now());
    const r = await tcpConnect(target.address, port, spec.timeoutMs, signal);
    r.detail = r.ok ? `tcp fallback (no CAP_NET_RAW): port ${port} open` : `tcp fallback (no CAP_NET_RAW): ${r.detail}`;
    return r;
  }

  private echo(socket: RawSocket, family: 4 | 6, address: string, timeoutMs: number, signal: AbortSignal, started: number): Promise<ProbeResult> {
    const id = this.id;
    const seq = (this.seq = (this.seq + 1) & 0xffff);
    const packet = Buffer.alloc(8 + PAYLOAD.length);
    packet[0] = family === 4 ? ECHO_REQUEST_V4 : ECHO_REQUEST_V6;
    packet.writeUInt16BE(id, 4);
    packet.writeUInt16BE(seq, 6);
    PAYLOAD.copy(packet, 8);
    if (family === 4) raw.writeChecksum(packet, 2, raw.createChecksum(packet));

    return new Promise<ProbeResult>((resolve) => {
      let settled = false;
      const finish = (why: ProbeResult['why'], detail: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        try {
          socket.close();
        } catch {
          // already closed after an error
        }
        resolve(result(why, detail, started));
      };
      const onAbort = (): void => finish('aborted', 'check stopped');
      const timer = setTimeout(() => finish('timeout', `no echo reply in ${timeoutMs} ms`), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('error', (err) => finish('error', err.message.slice(0, 200)));
      socket.on('message', (buf) => {
        const m = family === 4 ? matchV4(buf, id, seq) : matchV6(buf, id, seq);
        if (m === 'reply') finish('ok', '');
        else if (m === 'unreachable') finish('unreachable', 'destination unreachable');
      });
      socket.send(packet, 0, packet.length, address, (err) => {
        if (err === null) return;
        const f = sendFailure(err);
        finish(f.why, f.detail);
      });
    });
  }
}

function echoMatches(buf: Buffer, at: number, type: number, id: number, seq: number): boolean {
  return buf.length >= at + 8 && buf[at] === type && buf.readUInt16BE(at + 4) === id && buf.readUInt16BE(at + 6) === seq;
}

/** IPv4 raw sockets deliver the IP header too. */
export function matchV4(buf: Buffer, id: number, seq: number): 'reply' | 'unreachable' | undefined {
  if (buf.length < 20 || buf[0] >> 4 !== 4) return undefined;
  const ihl = (buf[0] & 0x0f) * 4;
  if (echoMatches(buf, ihl, ECHO_REPLY_V4, id, seq) && buf[ihl + 1] === 0) return 'reply';
  if (buf.length >= ihl + 8 + 20 && buf[ihl] === UNREACHABLE_V4) {
    const inner = ihl + 8;
    if (buf[inner] >> 4 !== 4) return undefined;
    const innerIhl = (buf[inner] & 0x0f) * 4;
    if (echoMatches(buf, inner + innerIhl, ECHO_REQUEST_V4, id, seq)) return 'unreachable';
  }
  return undefined;
}

/** IPv6 raw sockets deliver the ICMPv6 message without the IPv6 header. */
export function matchV6(buf: Buffer, id: number, seq: number): 'reply' | 'unreachable' | undefined {
  if (echoMatches(buf, 0, ECHO_REPLY_V6, id, seq) && buf[1] === 0) return 'reply';
  if (buf.length >= 8 + 40 + 8 && buf[0] === UNREACHABLE_V6 && buf[8] >> 4 === 6 && echoMatches(buf, 48, ECHO_REQUEST_V6, id, seq)) return 'unreachable';
  return undefined;
}
