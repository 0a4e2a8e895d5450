/**
 * One-process simulation support: a virtual clock (binary heap of timers, time advances only when
 * the simulation runs) and a virtual network (per-packet loss, latency with jitter, partitions,
 * byte counters). Agents built on these run exactly the production core. Deterministic for a seed.
 *
 * Single-threaded. Stream exchanges (push-pull, the TCP fallback ping) are reliable after one RTT
 * each way unless the endpoints are partitioned or down; with `streamLoss` they are TCP-like
 * instead: every segment is lost with that probability and a loss costs a retransmission timeout
 * (1 s for the handshake, 200 ms after it, doubling), so an exchange whose deadline is short
 * (a 300 ms fallback ping) fails as a real one does on a lossy path.
 */
import { seededRandom } from '@overlay/dataplane/testing';
import type { Addr, Clock, PacketNet, StreamNet, TimerHandle } from './env.js';

interface Timer {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

export class VirtualClock implements Clock {
  private t: number;
  private heap: Timer[] = [];
  private seq = 0;

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.push(timer);
    return timer;
  }
  clearTimeout(h: TimerHandle): void {
    if (h) (h as Timer).fn = null;
  }
  /** Run every timer due up to `until` (inclusive), advancing time. */
  runUntil(until: number): void {
    const h = this.heap;
    while (h.length > 0 && h[0].at <= until) {
      const top = this.pop();
      this.t = top.at;
      const fn = top.fn;
      if (fn) {
        top.fn = null;
        fn();
      }
    }
    this.t = until;
  }
  runFor(ms: number): void {
    this.runUntil(this.t + ms);
  }
  /** Run until `pred()` holds (checked every `stepMs`) or `maxMs` passes. Returns elapsed ms or -1. */
  runUntilTrue(pred: () => boolean, maxMs: number, stepMs = 10): number {
    const start = this.t;
    while (this.t - start < maxMs) {
      if (pred()) return this.t - start;
      this.runFor(stepMs);
    }
    return pred() ? this.t - start : -1;
  }
  get pending(): number {
    return this.heap.length;
  }

  private less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  private push(x: Timer): void {
    const h = this.heap;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  private pop(): Timer {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

export { seededRandom };

export interface SimHost {
  handlePacket(from: Addr, bytes: Uint8Array): void;
  handleExchange(from: Addr, chunks: Uint8Array[]): Uint8Array[];
}

export interface VirtualNetworkOptions {
  /** Probability each datagram is lost. */
  loss?: number;
  /** One-way latency base and uniform jitter, ms. */
  latencyMs?: number;
  jitterMs?: number;
  seed?: number;
  /** TCP-like streams: probability each segment (SYN, SYN-ACK, request, reply) is lost; default 0 (reliable). */
  streamLoss?: number;
}

/** Linux's initial (handshake) and minimum retransmission timeouts, ms. */
const SYN_RTO_MS = 1000;
const MIN_RTO_MS = 200;
/** Segment payload for the stream model (one MSS of a 1500-byte MTU). */
const MSS = 1400;

export class VirtualNetwork {
  loss: number;
  streamLoss: number;
  latencyMs: number;
  jitterMs: number;
  readonly random: () => number;
  private readonly hosts = new Map<string, SimHost>();
  private readonly group = new Map<string, number>();
  private partitioned = false;
  /** Bytes and datagrams sent per source address (ip:port). */
  readonly sentBytes = new Map<string, number>();
  datagrams = 0;
  lost = 0;
  streamBytes = 0;

  constructor(readonly clock: VirtualClock, o: VirtualNetworkOptions = {}) {
    this.loss = o.loss ?? 0;
    this.streamLoss = o.streamLoss ?? 0;
    this.latencyMs = o.latencyMs ?? 0.5;
    this.jitterMs = o.jitterMs ?? 0.5;
    this.random = seededRandom(o.seed ?? 1);
  }

  attach(addr: Addr, host: SimHost): void {
    this.hosts.set(`${addr.ip}:${addr.port}`, host);
  }
  /** A crashed host: everything addressed to it disappears. */
  detach(addr: Addr): void {
    this.hosts.delete(`${addr.ip}:${addr.port}`);
  }
  /** Split hosts (by ip) into groups; datagrams and streams only flow within a group. */
  partition(groups: string[][]): void {
    this.group.clear();
    groups.forEach((g, i) => g.forEach((ip) => this.group.set(ip, i)));
    this.partitioned = true;
  }
  heal(): void {
    this.partitioned = false;
    this.group.clear();
  }
  private reachable(a: string, b: string): boolean {
    return !this.partitioned || this.group.get(a) === this.group.get(b);
  }
  private delay(): number {
    return this.latencyMs + this.random() * this.jitterMs;
  }
  /** Extra delay of delivering `segments` segments (a handshake pair when `syn`) under streamLoss. */
  private retransmitDelay(segments: number, syn: boolean): number {
    const p = this.streamLoss;
    if (p <= 0) return 0;
    let extra = 0;
    if (syn) for (let rto = SYN_RTO_MS; this.random() < 1 - (1 - p) * (1 - p) && extra < 64_000; rto *= 2) extra += rto;
    for (let i = 0; i < segments; i++) for (let rto = MIN_RTO_MS; this.random() < p && extra < 64_000; rto *= 2) extra += rto;
    return extra;
  }

  /** The PacketNet and StreamNet of the host at `self`. */
  endpoint(self: Addr): PacketNet & StreamNet {
    const key = `${self.ip}:${self.port}`;
    return {
      send: (to, bytes) => {
        this.datagrams++;
        this.sentBytes.set(key, (this.sentBytes.get(key) ?? 0) + bytes.length);
        if (!this.reachable(self.ip, to.ip) || this.random() < this.loss) {
          this.lost++;
          return;
        }
        this.clock.setTimeout(() => this.hosts.get(`${to.ip}:${to.port}`)?.handlePacket(self, bytes), this.delay());
      },
      exchange: (to, chunks, timeoutMs, done) => {
        const fail = () => this.clock.setTimeout(() => done(new Error('exchange failed'), null), timeoutMs);
        let n = 0;
        for (const c of chunks) n += c.length;
        this.streamBytes += n;
        this.sentBytes.set(key, (this.sentBytes.get(key) ?? 0) + n);
        if (!this.reachable(self.ip, to.ip)) return void fail();
        const t0 = this.clock.now();
        // Past its deadline the caller has given up (only with streamLoss: the reliable model keeps its timing).
        const late = (at: number) => this.streamLoss > 0 && at - t0 > timeoutMs;
        const there = this.delay() * 2 + this.retransmitDelay(Math.max(1, Math.ceil(n / MSS)), true);
        if (late(t0 + there)) return void fail();
        this.clock.setTimeout(() => {
          const tk = `${to.ip}:${to.port}`;
          const h = this.hosts.get(tk);
          if (!h) return void fail();
          const reply = h.handleExchange(self, chunks);
          let m = 0;
          for (const c of reply) m += c.length;
          this.streamBytes += m;
          this.sentBytes.set(tk, (this.sentBytes.get(tk) ?? 0) + m);
          const back = this.delay() * 2 + this.retransmitDelay(Math.max(1, Math.ceil(m / MSS)), false);
          if (late(this.clock.now() + back)) return void this.clock.setTimeout(() => done(new Error('exchange timed out'), null), t0 + timeoutMs - this.clock.now());
          this.clock.setTimeout(() => (this.hosts.has(key) ? done(null, reply) : done(new Error('gone'), null)), back);
        }, there);
      },
    };
  }
}
