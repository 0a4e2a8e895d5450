/**
 * Forwarding names that are not ours to the host's upstream resolvers.
 *
 * - Upstreams from a list or from /etc/resolv.conf (`nameserver` lines), tried in order: a
 *   query that gets no answer within `timeoutMs` goes to the next upstream; when every one was
 *   tried, the client gets SERVFAIL (counted `forward_timeouts`).
 * - No fixed concurrency cap (Docker's 100, later 1024, answers SERVFAIL under load): pending
 *   queries are bounded only by memory (`maxPending`, default 16 384: under 20 MiB), and each
 *   client may hold at most a fair share of it, max(`minShare`, maxPending / (active clients +
 *   1)), which always leaves room for a client not yet active; a client over its share gets
 *   REFUSED (`forward_over_share`), everyone over capacity SERVFAIL (`forward_over_capacity`).
 *   One noisy client cannot starve the others.
 * - Each upstream query gets a fresh random ID; a reply is accepted only from the upstream it
 *   was sent to, with that ID and the same question (else `drop_bad_upstream_reply`); the
 *   client's own ID is restored in the reply.
 * - Negative cache: NXDOMAIN and NODATA replies carrying an SOA are kept for min(SOA TTL, SOA
 *   MINIMUM, `negativeMaxTtl`) seconds (RFC 2308), at most `negativeCacheSize` entries (oldest
 *   first out); hits are answered without asking upstream (`negative_cache_hits`).
 * - UDP clients are forwarded over UDP with their own EDNS size (the upstream truncates for
 *   them; they retry over TCP); TCP clients over TCP.
 * - A client's retry joins its pending query: the same client (address and port), ID and question
 *   while one is pending sends the upstream query again at once and restarts that upstream's
 *   timeout (`forward_client_retries`); the earlier copy is answered `FORWARD_SUPERSEDED` (its
 *   caller sends nothing), so the client gets one answer. A lost upstream query or reply is thus
 *   repaired by the client's own retry instead of ending in SERVFAIL after `timeoutMs` while the
 *   client still waits (a stub that retries every second never sees the SERVFAIL of a 1.5 s
 *   timeout before one of its retries was answered).
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect, isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import type { CounterSet } from '@overlay/dataplane';
import { InvalidServiceError } from '../directory.js';
import type { DnsCounter } from './counters.js';
import { HEADER_LENGTH, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL } from './wire.js';

export interface Upstream {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface ForwarderOptions {
  counters: CounterSet<DnsCounter>;
  /** 'ip', 'ip:port' or '[ipv6]:port'. Default: the nameservers of `resolvConf`. */
  upstreams?: string[];
  resolvConf?: string;
  /** Never used as upstreams (our own listening sockets), as 'ip', 'ip:port' or '[ipv6]:port'. */
  exclude?: string[];
  /** Per upstream attempt; default 1500 ms. */
  timeoutMs?: number;
  maxPending?: number;
  minShare?: number;
  negativeCacheSize?: number;
  negativeMaxTtl?: number;
}

/**
 * Called once per forwarded query: the reply bytes (client ID restored), or an rcode to answer
 * with, or `FORWARD_SUPERSEDED` (reply null): a retry of the same query took its place; send nothing.
 */
export type ForwardDone = (reply: Uint8Array | null, rcode: number) => void;

/** The rcode a `ForwardDone` gets when a client's retry of the query took over (answer nothing). */
export const FORWARD_SUPERSEDED = -2;

interface Pending {
  id: number;
  query: Uint8Array;
  clientId: number;
  client: string;
  upstream: number;
  deadline: number;
  done: ForwardDone;
  negKey: string;
  /** Key in `byRetry` ('' for none): client address, port, ID and question. */
  retryKey: string;
}

export class Forwarder {
  readonly upstreams: Upstream[];
  private readonly counters: CounterSet<DnsCounter>;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly minShare: number;
  private readonly negSize: number;
  private readonly negMaxTtl: number;
  private readonly pending = new Map<number, Pending>();
  private readonly byRetry = new Map<string, Pending>();
  private readonly perClient = new Map<string, number>();
  private readonly negative = new Map<string, { expires: number; reply: Uint8Array }>();
  private sockets: { 4?: Socket; 6?: Socket } = {};
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(o: ForwarderOptions) {
    this.counters = o.counters;
    this.timeoutMs = o.timeoutMs ?? 1500;
    this.maxPending = Math.min(o.maxPending ?? 16384, 60000);
    this.minShare = o.minShare ?? 64;
    this.negSize = o.negativeCacheSize ?? 10000;
    this.negMaxTtl = o.negativeMaxTtl ?? 300;
    const exclude = (o.exclude ?? []).map((x, i) => parseUpstream(`exclude[${i}]`, x));
    const list = o.upstreams ?? readResolvConf(o.resolvConf ?? '/etc/resolv.conf');
    this.upstreams = list.map((u, i) => parseUpstream(`upstreams[${i}]`, u)).filter((u) => !exclude.some((x) => x.address === u.address && x.port === u.port));
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Forward the query (copied) for `client` (its address: the fair share is per address); `done` is
   * called exactly once, possibly synchronously. `port`, the client's UDP port, lets a retry of a
   * pending query join it (see the file comment); without it (-1) every call is a new query.
   */
  forward(query: Uint8Array, client: string, tcp: boolean, done: ForwardDone, port = -1): void {
    const c = this.counters;
    if (this.closed || this.upstreams.length === 0 || query.length < HEADER_LENGTH) return done(null, RCODE_SERVFAIL);
    const negKey = questionKey(query);
    const hit = negKey === '' ? undefined : this.negative.get(negKey);
    if (hit !== undefined) {
      if (hit.expires > Date.now()) {
        c.add(c.at.negative_cache_hits);
        const r = Uint8Array.from(hit.reply);
        r[0] = query[0];
        r[1] = query[1];
        copyQuestionCase(query, r);
        return done(r, -1);
      }
      this.negative.delete(negKey);
    }
    const retryKey = tcp || port < 0 || negKey === '' ? '' : `${client}|${port}|${(query[0] << 8) | query[1]}|${negKey}`;
    const joined = retryKey === '' ? undefined : this.byRetry.get(retryKey);
    if (joined !== undefined) {
      c.add(c.at.forward_client_retries);
      const earlier = joined.done;
      joined.done = done;
      this.send(joined);
      return earlier(null, FORWARD_SUPERSEDED);
    }
    const mine = this.perClient.get(client) ?? 0;
    if (this.pending.size >= this.maxPending) {
      c.add(c.at.forward_over_capacity);
      return done(null, RCODE_SERVFAIL);
    }
    const share = Math.max(this.minShare, Math.floor(this.maxPending / (this.perClient.size + (mine === 0 ? 1 : 0) + 1)));
    if (mine >= share) {
      c.add(c.at.forward_over_share);
      return done(null, RCODE_REFUSED);
    }
    c.add(c.at.forwarded);
    if (tcp) return this.forwardTcp(Uint8Array.from(query), negKey, done);
    let id = randomInt(65536);
    while (this.pending.has(id)) id = (id + 1) & 0xffff;
    const p: Pending = { id, query: Uint8Array.from(query), clientId: (query[0] << 8) | query[1], client, upstream: 0, deadline: 0, done, negKey, retryKey };
    if (retryKey !== '') this.byRetry.set(retryKey, p);
    p.query[0] = id >> 8;
    p.query[1] = id & 255;
    this.perClient.set(client, mine + 1);
    this.send(p);
  }

  /** Stop: every pending query is answered SERVFAIL, sockets closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const p of [...this.pending.values()]) this.finish(p, null, RCODE_SERVFAIL);
    for (const s of Object.values(this.sockets)) s?.close();
    this.sockets = {};
  }

  private send(p: Pending): void {
    const u = this.upstreams[p.upstream];
    p.deadline = Date.now() + this.timeoutMs;
    this.pending.delete(p.id);
    this.pending.set(p.id, p); // insertion order = deadline order
    this.socket(u.family).send(p.query, u.port, u.address);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), Math.max(20, Math.min(250, this.timeoutMs >> 2)));
      this.timer.unref();
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const p of this.pending.values()) {
      if (p.deadline > now) break;
      if (p.upstream + 1 < this.upstreams.length) {
        p.upstream++;
        this.send(p);
      } else {
        this.counters.add(this.counters.at.forward_timeouts);
        this.finish(p, null, RCODE_SERVFAIL);
      }
    }
    if (this.pending.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private finish(p: Pending, reply: Uint8Array | null, rcode: number): void {
    this.pending.delete(p.id);
    if (p.retryKey !== '') this.byRetry.delete(p.retryKey);
    const n = (this.perClient.get(p.client) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(p.client);
    else this.perClient.set(p.client, n);
    if (reply !== null) {
      reply[0] = p.clientId >> 8;
      reply[1] = p.clientId & 255;
      this.counters.add(this.counters.at.forward_answered);
    }
    p.done(reply, rcode);
  }

  private socket(family: 4 | 6): Socket {
    let s = this.sockets[family];
    if (s) return s;
    s = createSocket(family === 4 ? 'udp4' : 'udp6');
    s.on('message', (msg, rinfo) => this.onReply(msg, rinfo.address, rinfo.port));
    s.on('error', () => {
      // Send errors (unreachable upstream) surface as timeouts of the queries concerned.
    });
    s.unref();
    this.sockets[family] = s;
    return s;
  }

  private onReply(msg: Buffer, address: string, port: number): void {
    const c = this.counters;
    if (msg.length < HEADER_LENGTH) return c.add(c.at.drop_bad_upstream_reply);
    const p = this.pending.get((msg[0] << 8) | msg[1]);
    const u = p === undefined ? undefined : this.upstreams[p.upstream];
    if (p === undefined || u === undefined || u.port !== port || normalize(u.address) !== normalize(address) || !(msg[2] & 0x80) || !sameQuestion(p.query, msg)) {
      return c.add(c.at.drop_bad_upstream_reply);
    }
    const reply = new Uint8Array(msg.length);
    reply.set(msg);
    this.remember(p.negKey, reply);
    this.finish(p, reply, -1);
  }

  private forwardTcp(query: Uint8Array, negKey: string, done: ForwardDone): void {
    let i = 0;
    const attempt = (): void => {
      const u = this.upstreams[i];
      const sock = connect({ host: u.address, port: u.port });
      let buf = Buffer.alloc(0);
      let settled = false;
      const fail = () => {
        if (settled) return;
        settled = true;
        sock.destroy();
        if (++i < this.upstreams.length && !this.closed) attempt();
        else {
          this.counters.add(this.counters.at.forward_timeouts);
          done(null, RCODE_SERVFAIL);
        }
      };
      sock.setTimeout(this.timeoutMs, fail);
      sock.on('error', fail);
      sock.on('close', fail);
      sock.on('connect', () => {
        const len = Buffer.from([query.length >> 8, query.length & 255]);
        sock.write(Buffer.concat([len, query]));
      });
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length > 65537) return fail();
        if (buf.length < 2) return;
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) return;
        settled = true;
        sock.destroy();
        const reply = Uint8Array.from(buf.subarray(2, 2 + n));
        if (reply.length < HEADER_LENGTH || reply[0] !== query[0] || reply[1] !== query[1] || !sameQuestion(query, reply)) {
          this.counters.add(this.counters.at.drop_bad_upstream_reply);
          return done(null, RCODE_SERVFAIL);
        }
        this.remember(negKey, reply);
        this.counters.add(this.counters.at.forward_answered);
        done(reply, -1);
      });
    };
    attempt();
  }

  /** Keep a negative reply (NXDOMAIN, or NOERROR without answers) that carries an SOA. */
  private remember(key: string, reply: Uint8Array): void {
    if (key === '' || this.negSize === 0) return;
    const rcode = reply[3] & 15;
    const an = (reply[6] << 8) | reply[7];
    if (!(rcode === RCODE_NXDOMAIN || (rcode === RCODE_NOERROR && an === 0)) || reply[2] & 0x02) return;
    let ttl = -1;
    try {
      const m = dnsPacket.decode(Buffer.from(reply));
      for (const a of m.authorities ?? []) {
        if (a.type === 'SOA') ttl = Math.min(a.ttl ?? 0, a.data.minimum ?? 0);
      }
    } catch {
      return;
    }
    if (ttl <= 0) return;
    if (this.negative.size >= this.negSize) this.negative.delete(this.negative.keys().next().value as string);
    this.negative.set(key, { expires: Date.now() + Math.min(ttl, this.negMaxTtl) * 1000, reply: Uint8Array.from(reply) });
  }
}

/** 'name/type/class' of the question, lowercased; '' when it cannot be read. */
function questionKey(m: Uint8Array): string {
  let p = HEADER_LENGTH;
  let s = '';
  for (let guard = 0; guard < 128; guard++) {
    if (p >= m.length) return '';
    const l = m[p];
    if (l === 0) break;
    if (l > 63 || p + 1 + l > m.length) return '';
    s += Buffer.from(m.subarray(p + 1, p + 1 + l)).toString('latin1').toLowerCase() + '.';
    p += l + 1;
  }
  if (p + 5 > m.length) return '';
  return `${s}/${(m[p + 1] << 8) | m[p + 2]}/${(m[p + 3] << 8) | m[p + 4]}`;
}

/** The question sections of a and b are equal, names compared case-insensitively. */
function sameQuestion(a: Uint8Array, b: Uint8Array): boolean {
  if (((a[4] << 8) | a[5]) !== ((b[4] << 8) | b[5])) return false;
  const end = questionEnd(a);
  if (end < 0 || end > b.length) return false;
  for (let i = HEADER_LENGTH; i < end; i++) {
    let x = a[i];
    let y = b[i];
    if (x >= 65 && x <= 90) x += 32;
    if (y >= 65 && y <= 90) y += 32;
    if (x !== y) return false;
  }
  return true;
}

function questionEnd(m: Uint8Array): number {
  let p = HEADER_LENGTH;
  for (let guard = 0; guard < 128; guard++) {
    if (p >= m.length) return -1;
    const l = m[p];
    if (l === 0) return p + 5 <= m.length ? p + 5 : -1;
    if (l > 63) return -1;
    p += l + 1;
  }
  return -1;
}

function copyQuestionCase(from: Uint8Array, to: Uint8Array): void {
  const end = questionEnd(from);
  if (end > 0 && end <= to.length) to.set(from.subarray(HEADER_LENGTH, end), HEADER_LENGTH);
}

function normalize(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Nameserver addresses of a resolv.conf ([] when it cannot be read). */
export function readResolvConf(path: string): string[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isIP(m[1].split('%')[0])) out.push(m[1].split('%')[0]);
  }
  return out;
}

export function parseUpstream(field: string, s: string): Upstream {
  let address = s;
  let port = 53;
  const b = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  const h = /^([^:]+):(\d+)$/.exec(s);
  if (b) {
    address = b[1];
    port = Number(b[2]);
  } else if (h) {
    address = h[1];
    port = Number(h[2]);
  }
  const family = isIP(address);
  if ((family !== 4 && family !== 6) || !(port >= 1 && port <= 65535)) throw new InvalidServiceError(field, `not an upstream address (ip, ip:port or [ipv6]:port): ${JSON.stringify(s)}`);
  return { address, port, family };
}
