import { formatIpAddress, parseIpAddress } from '../codec/address.js';
import { ClosedError, InvalidConfigError } from '../errors.js';
import type { BatchSink, Transport } from '../io.js';
import { PacketBatch, type BufferPool } from '../pool.js';
import { seededRandom } from './rng.js';

export interface TestnetOptions {
  /** Probability (0..1) that a datagram is lost. */
  loss?: number;
  /** One-way delay in ms added to every datagram. Default 0 (next event-loop turn). */
  delayMs?: number;
  /** Probability that a datagram is held back 1–6 ms extra, so later ones overtake it. */
  reorder?: number;
  /** Probability that a datagram is delivered twice. */
  duplicate?: number;
  /** Seed for the impairment decisions. Default 1. */
  seed?: number;
  /** Underlay MTU: datagrams whose IP packet would exceed it are dropped. Default 1500. */
  mtu?: number;
  /** Keep a copy of every datagram sent in `captured` (for pcap and assertions). */
  capture?: boolean;
}

export interface Endpoint {
  address: string;
  port: number;
}

/** A datagram as seen on the virtual wire. */
export interface WireDatagram {
  from: Endpoint;
  to: Endpoint;
  payload: Buffer;
  /** Date.now() when sent. */
  time: number;
}

export interface TestnetStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** No transport bound (or started) at the destination. */
  unreachable: number;
  /** Larger than the underlay MTU. */
  tooBig: number;
  /** Receiver's pool had no free slot. */
  poolExhausted: number;
}

/**
 * A virtual underlay in one process: a switch between in-memory transports, each bound to an
 * address and port, with optional loss, delay, reordering and duplication decided by a seeded
 * RNG. Delivery is always asynchronous (never inside send), in batches per receiver, so the
 * dataplanes see the same re-entrancy rules as with real sockets.
 */
export class Testnet {
  readonly stats: TestnetStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, unreachable: 0, tooBig: 0, poolExhausted: 0 };
  readonly captured: WireDatagram[] = [];
  private readonly ports = new Map<string, MemoryTransport>();
  private readonly rng: () => number;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly listeners = new Set<(d: WireDatagram) => void>();
  readonly options: Required<Omit<TestnetOptions, 'seed'>>;

  constructor(o: TestnetOptions = {}) {
    const prob = (k: 'loss' | 'reorder' | 'duplicate') => {
      const v = o[k] ?? 0;
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new InvalidConfigError(k, `must be a probability in 0..1, got ${v}`);
      return v;
    };
    const delayMs = o.delayMs ?? 0;
    if (typeof delayMs !== 'number' || !(delayMs >= 0)) throw new InvalidConfigError('delayMs', `must be ≥ 0, got ${delayMs}`);
    const mtu = o.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 68) throw new InvalidConfigError('mtu', `must be an integer ≥ 68, got ${mtu}`);
    this.options = { loss: prob('loss'), reorder: prob('reorder'), duplicate: prob('duplicate'), delayMs, mtu, capture: o.capture ?? false };
    this.rng = seededRandom(o.seed ?? 1);
  }

  /** Bind a transport at `address`:`port` (default 4789). Throws if already bound. */
  transport(address: string, port = 4789): MemoryTransport {
    const ip = parseIpAddress(address);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidConfigError('port', `must be an integer in 1..65535, got ${port}`);
    const ep: Endpoint = { address: formatIpAddress(ip.family, ip.bytes), port };
    const key = `${ep.address}|${port}`;
    if (this.ports.has(key)) throw new InvalidConfigError('address', `${key} is already bound`);
    const t = new MemoryTransport(this, ep, ip.family, ip.bytes);
    this.ports.set(key, t);
    return t;
  }

  /** Observe every datagram sent (before impairments). Returns an unsubscribe function. */
  onDatagram(fn: (d: WireDatagram) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves once no datagram is in flight (all delivered or dropped). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Cancel everything in flight. Bound transports stay usable. */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.inFlight = 0;
    this.settle();
  }

  /** @internal */
  unbind(t: MemoryTransport): void {
    this.ports.delete(`${t.endpoint.address}|${t.endpoint.port}`);
  }

  /** @internal Route one datagram from `from` to (family, addr bytes at off, port). */
  route(from: MemoryTransport, family: number, addr: Uint8Array, off: number, port: number, payload: Buffer, impair: boolean): void {
    const to: Endpoint = { address: formatIpAddress(family === 6 ? 6 : 4, addr, off), port };
    this.stats.sent++;
    const d: WireDatagram = { from: from.endpoint, to, payload, time: Date.now() };
    if (this.options.capture) this.captured.push(d);
    for (const l of this.listeners) l(d);
    const ipOverhead = (family === 6 ? 40 : 20) + 8;
    if (payload.length + ipOverhead > this.options.mtu) {
      this.stats.tooBig++;
      return;
    }
    const target = this.ports.get(`${to.address}|${port}`);
    if (!target || target.family !== from.family) {
      this.stats.unreachable++;
      return;
    }
    if (impair && this.rng() < this.options.loss) {
      this.stats.lost++;
      return;
    }
    let copies = 1;
    if (impair && this.rng() < this.options.duplicate) {
      copies = 2;
      this.stats.duplicated++;
    }
    for (let i = 0; i < copies; i++) {
      let delay = this.options.delayMs;
      if (impair && this.rng() < this.options.reorder) {
        delay += 1 + Math.floor(this.rng() * 6);
        this.stats.reordered++;
      }
      this.schedule(target, from.endpoint, payload, delay);
    }
  }

  /** @internal Deliver to `target` next turn, without impairments or capture. */
  injectTo(target: MemoryTransport, from: Endpoint, payload: Buffer): void {
    this.schedule(target, from, payload, 0);
  }

  private schedule(target: MemoryTransport, from: Endpoint, payload: Buffer, delay: number): void {
    this.inFlight++;
    // In flight until the receiver has handed it to its sink (see landed()).
    const arrive = () => {
      if (!target.enqueue(from, payload)) this.landed(1, 0, 0, 1);
    };
    if (delay <= 0) {
      setImmediate(arrive);
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      arrive();
    }, delay);
    this.timers.add(t);
  }

  private settle(): void {
    if (this.inFlight > 0) return;
    // Wake idle() callers on the next turn, after the sinks' synchronous work and microtasks.
    setImmediate(() => {
      if (this.inFlight > 0) return;
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of w) r();
    });
  }

  /** @internal A receiver processed `n` queued datagrams. */
  landed(n: number, delivered: number, exhausted: number, unreachable: number): void {
    this.stats.delivered += delivered;
    this.stats.poolExhausted += exhausted;
    this.stats.unreachable += unreachable;
    this.inFlight = Math.max(0, this.inFlight - n);
    this.settle();
  }
}

/**
 * A Transport bound to one address:port of a Testnet. Copies datagrams on send and receive:
 * a test double, not a hot path.
 */
export class MemoryTransport implements Transport {
  readonly localPort: number;
  /** Datagrams send() accepts per call; the rest are refused (to test transport_send_failed). */
  sendLimit = Infinity;
  private pool: BufferPool | null = null;
  private sink: BatchSink | null = null;
  private readonly pending: { from: Endpoint; payload: Buffer }[] = [];
  private flushing = false;
  private closed = false;

  constructor(
    private readonly net: Testnet,
    readonly endpoint: Endpoint,
    readonly family: 4 | 6,
    private readonly addrBytes: Uint8Array,
  ) {
    this.localPort = endpoint.port;
  }

  start(pool: BufferPool, sink: BatchSink): void {
    if (this.closed) throw new ClosedError(`transport ${this.endpoint.address}`);
    this.pool = pool;
    this.sink = sink;
  }

  send(pool: BufferPool, batch: PacketBatch): number {
    if (this.closed) return 0;
    const n = Math.min(batch.count, this.sendLimit);
    for (let i = 0; i < n; i++) {
      const slot = batch.slots[i];
      this.net.route(this, pool.family[slot], pool.addr, slot * 16, pool.port[slot], pool.copyOut(slot), true);
    }
    return n;
  }

  /**
   * Receive `payload` as if `from` had sent it, bypassing impairments (for malformed-input
   * tests). Delivered asynchronously like any datagram.
   */
  inject(payload: Uint8Array, from: Endpoint): void {
    this.net.injectTo(this, from, Buffer.from(payload));
  }

  /** Send raw bytes from this transport to `to` through the wire (with impairments). */
  sendRaw(payload: Uint8Array, to: Endpoint): void {
    const ip = parseIpAddress(to.address);
    this.net.route(this, ip.family, ip.bytes, 0, to.port, Buffer.from(payload), true);
  }

  /** @internal Queue a datagram for the sink; false when this transport is closed. */
  enqueue(from: Endpoint, payload: Buffer): boolean {
    if (this.closed) return false;
    this.pending.push({ from, payload });
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  private flush(): void {
    this.flushing = false;
    const pool = this.pool;
    const sink = this.sink;
    if (!pool || !sink || this.closed) {
      // Not started (or closed meanwhile): nobody is listening.
      const n = this.pending.length;
      this.pending.length = 0;
      this.net.landed(n, 0, 0, n);
      return;
    }
    const n = this.pending.length;
    const batch = new PacketBatch(64);
    let delivered = 0;
    let exhausted = 0;
    for (const { from, payload } of this.pending.splice(0)) {
      const slot = pool.acquire();
      if (slot < 0 || !pool.fill(slot, payload)) {
        if (slot >= 0) pool.release(slot);
        exhausted++;
        continue;
      }
      const ip = parseIpAddress(from.address);
      pool.setEndpoint(slot, ip.family, ip.bytes, from.port);
      batch.push(slot);
      delivered++;
      if (batch.count === batch.capacity) {
        sink(batch);
        batch.clear();
      }
    }
    if (batch.count > 0) sink(batch);
    this.net.landed(n, delivered, exhausted, 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending.length = 0;
    this.net.unbind(this);
  }

  /** The bound address as 4 or 16 bytes. */
  get addressBytes(): Uint8Array {
    return this.addrBytes;
  }
}

export function createTestnet(o: TestnetOptions = {}): Testnet {
  return new Testnet(o);
}
