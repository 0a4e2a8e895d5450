import { CounterSet, InvalidConfigError } from '@overlay/dataplane';
import { TimerWheel } from './wheel.js';

/**
 * The VIP's connection tracker: one entry per flow from a client to a VIP, in typed arrays
 * preallocated at `capacity` (nothing grows, nothing is allocated per packet), found by two
 * open-addressing indexes of entry ids — the forward key (proto, client, VIP, client port, VIP
 * port) for packets from the client, the reply key (proto, peer, backend, client port, VIP
 * port) for packets from the backend (the translator rewrites addresses only, never ports).
 * The peer is the client's address as the backend sees it: the client's own, or the VIP when
 * the translator also rewrites the source (a hairpin flow to a backend on the client's host).
 * Linear probing with backward-shift deletion; an index has a power-of-two size ≥ 2 × capacity.
 *
 * A full table refuses the new flow (`refused_full`) and evicts nothing. Expiry runs on a timer
 * wheel (`advance`), never a scan. The TCP state machine is deliberately coarse — what a
 * translator needs to pick a timeout, not a firewall's window tracking:
 *
 *   open:  SYN without ACK → syn; FIN or RST → closing; anything else (mid-stream, e.g. after
 *          the entry expired) → established.
 *   later: RST or FIN either way → closing (stays); SYN+ACK from the backend in syn → established.
 *   UDP:   udp until the backend replies, then udp_replied. ICMP echo: icmp.
 *
 * Timeouts per state (ms, all configurable) are re-armed by every packet of the flow.
 */
export const ST_TCP_SYN = 1;
export const ST_TCP_ESTABLISHED = 2;
export const ST_TCP_CLOSING = 3;
export const ST_UDP = 4;
export const ST_UDP_REPLIED = 5;
export const ST_ICMP = 6;
export const STATE_NAMES = ['', 'tcp_syn', 'tcp_established', 'tcp_closing', 'udp', 'udp_replied', 'icmp'] as const;

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export interface ConntrackTimeouts {
  tcpSynMs: number;
  tcpEstablishedMs: number;
  tcpClosingMs: number;
  udpMs: number;
  udpRepliedMs: number;
  icmpMs: number;
}

export const DEFAULT_TIMEOUTS: Readonly<ConntrackTimeouts> = Object.freeze({
  tcpSynMs: 30_000,
  tcpEstablishedMs: 3_600_000,
  tcpClosingMs: 10_000,
  udpMs: 30_000,
  udpRepliedMs: 120_000,
  icmpMs: 30_000,
});

export interface ConntrackOptions {
  /** Flows tracked at most (1 .. 2^24). */
  capacity: number;
  timeouts?: Partial<ConntrackTimeouts>;
  /** Timer wheel granularity; expiry happens up to one tick late. Default 250 ms. */
  tickMs?: number;
  /** Timer wheel buckets; horizon = slots × tickMs. Default 1024 (256 s at 250 ms). */
  slots?: number;
  /** The clock's value at creation (ms), so the wheel starts there. */
  startMs?: number;
}

/** `observe`'s constants as a same-file const enum, compiled to numbers (translator.ts, enum H); checked below. */
const enum C { SYN = 1, ESTABLISHED = 2, CLOSING = 3, UDP = 4, UDP_REPLIED = 5, FIN = 0x01, SYN_FLAG = 0x02, RST = 0x04, ACK = 0x10 }
if (C.SYN !== ST_TCP_SYN || C.ESTABLISHED !== ST_TCP_ESTABLISHED || C.CLOSING !== ST_TCP_CLOSING || C.UDP !== ST_UDP || C.UDP_REPLIED !== ST_UDP_REPLIED || C.FIN !== TCP_FIN || C.SYN_FLAG !== TCP_SYN || C.RST !== TCP_RST || C.ACK !== TCP_ACK) throw new Error('vip/conntrack.ts: enum C differs from the constants');

export const CONNTRACK_COUNTERS = ['opened', 'refused_full', 'refused_clash', 'expired', 'removed'] as const;
export type ConntrackCounter = (typeof CONNTRACK_COUNTERS)[number];

/** `open` results below zero. */
export const OPEN_FULL = -1;
export const OPEN_CLASH = -2;

export class Conntrack {
  readonly capacity: number;
  readonly timeouts: Readonly<ConntrackTimeouts>;
  readonly counters = new CounterSet(CONNTRACK_COUNTERS);
  /** Per state: timeout in ms (index = state). */
  private readonly timeoutOf: Float64Array;

  // Entry fields, indexed by entry id.
  readonly proto: Uint8Array;
  /** 0 = free. */
  readonly state: Uint8Array;
  readonly client: Int32Array;
  readonly vip: Int32Array;
  /** The source address the backend sees: `client`, or `vip` for a hairpin flow. */
  readonly peer: Int32Array;
  readonly backend: Int32Array;
  readonly clientPort: Uint16Array;
  readonly vipPort: Uint16Array;
  readonly deadline: Float64Array;
  /**
   * Free for the owner: `Conntrack.AUX` int32 words per entry at `aux[e * Conntrack.AUX ..]` (the
   * translator keeps MACs and sequence numbers there). Index with `Conntrack.AUX`, not a literal.
   */
  readonly aux: Int32Array;
  static readonly AUX = 8;

  private readonly fwd: Int32Array;
  private readonly rev: Int32Array;
  private readonly mask: number;
  private readonly freeList: Int32Array;
  private freeTop: number;
  private readonly wheel: TimerWheel;
  private readonly onDue: (e: number, boundary: number) => number;
  size = 0;

  constructor(o: ConntrackOptions) {
    const cap = o.capacity;
    if (!Number.isInteger(cap) || cap < 1 || cap > 1 << 24) throw new InvalidConfigError('capacity', `must be an integer in 1..${1 << 24}, got ${cap}`);
    this.capacity = cap;
    this.timeouts = Object.freeze({ ...DEFAULT_TIMEOUTS, ...o.timeouts });
    const t = this.timeouts;
    for (const [k, v] of Object.entries(t)) if (!(v > 0 && v <= 2 ** 40)) throw new InvalidConfigError(`timeouts.${k}`, `must be a positive number of ms, got ${v}`);
    const tick = o.tickMs ?? 250;
    const slots = o.slots ?? 1024;
    if (!Number.isInteger(tick) || tick < 1 || tick > 60_000) throw new InvalidConfigError('tickMs', `must be an integer in 1..60000, got ${tick}`);
    if (!Number.isInteger(slots) || slots < 2 || slots > 1 << 20) throw new InvalidConfigError('slots', `must be an integer in 2..${1 << 20}, got ${slots}`);
    this.timeoutOf = Float64Array.of(0, t.tcpSynMs, t.tcpEstablishedMs, t.tcpClosingMs, t.udpMs, t.udpRepliedMs, t.icmpMs);
    this.proto = new Uint8Array(cap);
    this.state = new Uint8Array(cap);
    this.client = new Int32Array(cap);
    this.vip = new Int32Array(cap);
    this.peer = new Int32Array(cap);
    this.backend = new Int32Array(cap);
    this.clientPort = new Uint16Array(cap);
    this.vipPort = new Uint16Array(cap);
    this.deadline = new Float64Array(cap);
    this.aux = new Int32Array(cap * Conntrack.AUX);
    let n = 16;
    while (n < cap * 2) n *= 2;
    this.mask = n - 1;
    this.fwd = new Int32Array(n).fill(-1);
    this.rev = new Int32Array(n).fill(-1);
    this.freeList = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.freeList[i] = cap - 1 - i;
    this.freeTop = cap;
    this.wheel = new TimerWheel(cap, tick, slots, o.startMs ?? 0);
    this.onDue = (e, boundary) => {
      if (this.deadline[e] < boundary) {
        this.release(e);
        this.counters.add(this.counters.at.expired);
        return -1;
      }
      return this.deadline[e];
    };
  }

  private hash(proto: number, client: number, other: number, cport: number, vport: number): number {
    let h = Math.imul(client ^ 0x9e3779b9, 0xcc9e2d51) ^ other;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ ((cport << 16) | vport);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ proto;
    h ^= h >>> 16;
    return h & this.mask;
  }

  /** The flow of a packet from `client` to `vip`, or -1. */
  find(proto: number, client: number, vip: number, cport: number, vport: number): number {
    const fwd = this.fwd;
    for (let i = this.hash(proto, client, vip, cport, vport); ; i = (i + 1) & this.mask) {
      const e = fwd[i];
      if (e < 0) return -1;
      if (this.client[e] === client && this.vip[e] === vip && this.clientPort[e] === cport && this.vipPort[e] === vport && this.proto[e] === proto) return e;
    }
  }

  /** The flow of a packet from `backend` (source port `vport`) to `peer` (port `cport`), or -1. */
  findReply(proto: number, backend: number, peer: number, vport: number, cport: number): number {
    const rev = this.rev;
    for (let i = this.hash(proto, peer, backend, cport, vport); ; i = (i + 1) & this.mask) {
      const e = rev[i];
      if (e < 0) return -1;
      if (this.peer[e] === peer && this.backend[e] === backend && this.clientPort[e] === cport && this.vipPort[e] === vport && this.proto[e] === proto) return e;
    }
  }

  /**
   * A new flow (its forward key must not be tracked): the entry id, or OPEN_FULL (table full) or
   * OPEN_CLASH (another flow already has the same reply key: two VIPs on one backend and port
   * with the same client port, or two hairpin clients with one port), both counted. `flags` are
   * the first packet's TCP flags; `peer` the source address the backend will see (default `client`).
   */
  open(proto: number, client: number, vip: number, cport: number, vport: number, backend: number, flags: number, now: number, peer = client): number {
    if (this.freeTop === 0) {
      this.counters.add(this.counters.at.refused_full);
      return OPEN_FULL;
    }
    if (this.findReply(proto, backend, peer, vport, cport) >= 0) {
      this.counters.add(this.counters.at.refused_clash);
      return OPEN_CLASH;
    }
    const e = this.freeList[--this.freeTop];
    this.proto[e] = proto;
    this.client[e] = client;
    this.vip[e] = vip;
    this.peer[e] = peer;
    this.backend[e] = backend;
    this.clientPort[e] = cport;
    this.vipPort[e] = vport;
    this.state[e] =
      proto === PROTO_TCP
        ? (flags & (TCP_FIN | TCP_RST)) !== 0 ? ST_TCP_CLOSING : (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN ? ST_TCP_SYN : ST_TCP_ESTABLISHED
        : proto === PROTO_UDP ? ST_UDP : ST_ICMP;
    this.place(this.fwd, this.hash(proto, client, vip, cport, vport), e);
    this.place(this.rev, this.hash(proto, peer, backend, cport, vport), e);
    this.size++;
    this.deadline[e] = now + this.timeoutOf[this.state[e]];
    this.wheel.schedule(e, this.deadline[e]);
    this.counters.add(this.counters.at.opened);
    return e;
  }

  private place(index: Int32Array, i: number, e: number): void {
    while (index[i] >= 0) i = (i + 1) & this.mask;
    index[i] = e;
  }

  /** A packet of flow `e`: from the backend when `reply`; `flags` its TCP flags. Advances the state, re-arms the timeout. */
  observe(e: number, reply: boolean, flags: number, now: number): void {
    // Per packet: the constants as the enum below (numbers, not module-binding loads).
    const s0 = this.state[e];
    let s = s0;
    if (s === C.SYN || s === C.ESTABLISHED) {
      if ((flags & (C.FIN | C.RST)) !== 0) s = C.CLOSING;
      else if (s === C.SYN && reply && (flags & (C.SYN_FLAG | C.ACK)) === (C.SYN_FLAG | C.ACK)) s = C.ESTABLISHED;
    } else if (s === C.UDP && reply) s = C.UDP_REPLIED;
    const t = this.timeoutOf[s];
    this.deadline[e] = now + t;
    if (s === s0) return;
    this.state[e] = s;
    if (t < this.timeoutOf[s0]) this.wheel.shorten(e, this.deadline[e]);
  }

  /** Expire every flow whose deadline is before `floor(now / tickMs) × tickMs`. Returns how many. */
  advance(now: number): number {
    return this.wheel.advance(now, this.onDue);
  }

  /** Forget flow `e` (a reset or a removed backend), counted as `removed`. */
  remove(e: number): void {
    if (this.state[e] === 0) return;
    this.wheel.cancel(e);
    this.release(e);
    this.counters.add(this.counters.at.removed);
  }

  private release(e: number): void {
    this.unplace(this.fwd, this.hash(this.proto[e], this.client[e], this.vip[e], this.clientPort[e], this.vipPort[e]), e, false);
    this.unplace(this.rev, this.hash(this.proto[e], this.peer[e], this.backend[e], this.clientPort[e], this.vipPort[e]), e, true);
    this.state[e] = 0;
    this.freeList[this.freeTop++] = e;
    this.size--;
  }

  /** Remove `e` from `index` (found from its home `i`), shifting later members of its run back. */
  private unplace(index: Int32Array, i: number, e: number, reply: boolean): void {
    const mask = this.mask;
    while (index[i] !== e) i = (i + 1) & mask;
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const f = index[j];
      if (f < 0) break;
      const home = reply
        ? this.hash(this.proto[f], this.peer[f], this.backend[f], this.clientPort[f], this.vipPort[f])
        : this.hash(this.proto[f], this.client[f], this.vip[f], this.clientPort[f], this.vipPort[f]);
      // f may move into the hole when its home is not in (hole, j] cyclically.
      if (hole <= j ? home <= hole || home > j : home <= hole && home > j) {
        index[hole] = f;
        hole = j;
      }
    }
    index[hole] = -1;
  }

  /** Call `fn` for every live flow (control path: O(capacity)). `fn` may remove the flow it is given. */
  forEach(fn: (e: number) => void): void {
    for (let e = 0; e < this.capacity; e++) if (this.state[e] !== 0) fn(e);
  }

  timeoutFor(state: number): number {
    return this.timeoutOf[state];
  }
}
