/**
 * Push-pull: full state exchange over the stream transport (TCP), the anti-entropy that repairs
 * whatever gossip lost, and the way a node joins. Also the reliable stream ping (Lifeguard's TCP
 * fallback probe).
 *
 * Freshness: a request is bound to a fresh (session, seq): every chunk carries the initiator's
 * session, a per-session exchange number and its clock, checked by the responder like a gossip
 * envelope (SessionWindows: clock skew, sliding window, newest session), so a captured exchange
 * replayed later is refused and counted (`pushpull_replayed`, `pushpull_stale_timestamp`,
 * `pushpull_old_session`) instead of being merged and answered with our full state. Every reply
 * chunk names the (session, seq) it answers; an initiator takes no other reply.
 *
 * Single-threaded; owned by one agent.
 */
import { OverlayError } from '@overlay/dataplane';
import type { Addr, Clock, StreamNet, TimerHandle } from './env.js';
import { pushPullScale } from './presets.js';
import type { Sealer } from './keyring.js';
import type { Membership } from './membership.js';
import type { AgentCounters, AgentDrops } from './counters.js';
import type { SignedRecord } from './records.js';
import { SessionWindows, openSealed, validSender } from './envelope.js';
import {
  type AliveMsg, type RecordBytes, type StateChunk,
  MAX_CHUNKS, MAX_CHUNK_BYTES, PROTOCOL_MAX, PROTOCOL_MIN, decodeStateChunk, encodeStateChunk,
} from './wire.js';

export interface PushPullOptions {
  name: string;
  session: number;
  clock: Clock;
  random: () => number;
  /** Exchange with a random live member this often (scaled above 32 members, ±25 %). */
  intervalMs: number;
  /** Exchange with a random member declared dead this often (±25 %). */
  reconnectIntervalMs: number;
  sealer: Sealer;
  streams: StreamNet;
  maxClockSkewMs: number;
  membership: Membership;
  drops: AgentDrops;
  counters: AgentCounters;
  /** Every record we hold, for our side of an exchange. */
  records(): Iterable<SignedRecord>;
  /** Apply one record received in an exchange (counts its own drops). */
  applyRecord(r: RecordBytes): void;
  running(): boolean;
}

/** An exchange got no reply (refused, timed out, cut) or a reply that failed the checks (counted). */
export class PushPullError extends OverlayError {
  constructor(readonly reason: 'no_reply' | 'bad_reply') {
    super('OVL_ERR_AGENT_PUSH_PULL', `push-pull failed: ${reason === 'no_reply' ? 'no reply' : 'reply refused'}`);
  }
}

const STATE_CODE = { alive: 0, suspect: 1, dead: 2, left: 3 } as const;

export class PushPull {
  private seq = 0;
  private readonly windows: SessionWindows;
  private timer: TimerHandle | null = null;
  private reconnectTimer: TimerHandle | null = null;

  constructor(private readonly o: PushPullOptions) {
    this.windows = new SessionWindows(o.clock, o.maxClockSkewMs);
  }

  /**
   * Start the anti-entropy timers: every interval, an exchange with a random live member (a
   * seed from `seeds()` while we know none); every reconnect interval, one with a random member
   * declared dead (not left), as serf's reconnect does: the only way two sides of a healed
   * partition find each other again once gossip-to-the-dead has expired.
   */
  start(seeds: () => Addr[]): void {
    this.schedule(seeds, true);
    this.scheduleReconnect();
  }

  stop(): void {
    for (const t of [this.timer, this.reconnectTimer]) if (t) this.o.clock.clearTimeout(t);
    this.timer = this.reconnectTimer = null;
  }

  private failed = (): void => this.o.counters.add(this.o.counters.at.push_pull_failures);

  private schedule(seeds: () => Addr[], first = false): void {
    const o = this.o;
    if (!o.running()) return;
    const base = pushPullScale(o.intervalMs, o.membership.aliveCount());
    // Random phase so agents started together do not exchange in lockstep.
    const delay = first ? o.random() * base : base * (0.75 + 0.5 * o.random());
    this.timer = o.clock.setTimeout(() => {
      const peer = o.membership.randomLive();
      const s = seeds();
      const target: Addr | undefined = peer ? { ip: peer.ip, port: peer.port } : s[Math.floor(o.random() * s.length)];
      if (target) this.run(target, !peer, 10_000, (err) => err && this.failed());
      this.schedule(seeds);
    }, delay);
  }

  private scheduleReconnect(): void {
    const o = this.o;
    if (!o.running()) return;
    this.reconnectTimer = o.clock.setTimeout(() => {
      const dead = o.membership.randomDead();
      if (dead) this.run({ ip: dead.ip, port: dead.port }, false, 5000, (err) => err && this.failed());
      this.scheduleReconnect();
    }, o.reconnectIntervalMs * (0.75 + 0.5 * o.random()));
  }

  /** One full state exchange with `to` (join = as a joining node). Rejects with PushPullError. */
  exchange(to: Addr, join: boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => this.run(to, join, timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  /** The same with a callback (called once; in simulated time, synchronously with the reply). */
  run(to: Addr, join: boolean, timeoutMs: number, done: (err: PushPullError | null) => void): void {
    const o = this.o;
    o.counters.add(o.counters.at.push_pulls);
    const seq = ++this.seq;
    const request = this.chunks({ join, session: o.session, seq, ts: o.clock.now() });
    o.streams.exchange(to, request, timeoutMs, (err, reply) => {
      if (err || !reply) return done(new PushPullError('no_reply'));
      if (!o.running()) return done(null);
      const d = this.open(reply);
      if (!d) return done(new PushPullError('bad_reply'));
      if (d.some((c) => c.replySession !== o.session || c.replySeq !== seq)) {
        o.drops.add(o.drops.at.pushpull_replayed);
        return done(new PushPullError('bad_reply'));
      }
      this.merge(d);
      done(null);
    });
  }

  /** Responder side: check and merge the peer's state, answer with ours bound to its request. */
  handle(chunks: Uint8Array[]): Uint8Array[] {
    const o = this.o;
    const ping = this.pingOf(chunks);
    if (ping !== null) return ping;
    const d = this.open(chunks);
    if (!d) return [];
    const first = d[0];
    const drops = o.drops;
    if (d.some((c) => c.from !== first.from || c.session !== first.session || c.seq !== first.seq)) return (drops.add(drops.at.pushpull_bad_stream), []);
    if (!validSender(first.from, o.name)) return (drops.add(drops.at.pushpull_bad_sender), []);
    const why = this.windows.check(first.from, first.session, first.seq, first.ts);
    if (why) return (drops.add(drops.at[`pushpull_${why}`]), []);
    this.merge(d);
    try {
      return this.chunks({ join: false, session: o.session, seq: 0, ts: o.clock.now(), replySession: first.session, replySeq: first.seq });
    } catch {
      drops.add(drops.at.pushpull_state_too_big);
      return [];
    }
  }

  /** Reliable ping over the stream transport; true when `target` itself answered. */
  ping(to: Addr, target: string, timeoutMs: number, done: (ok: boolean) => void): void {
    this.o.streams.exchange(to, this.pingChunk(target), timeoutMs, (err, reply) => {
      if (err || !reply || reply.length !== 1) return done(false);
      const plain = this.o.sealer.open(reply[0]);
      if (!plain) return done(false);
      try {
        const c = decodeStateChunk(plain);
        done(c.ping === true && c.from === target);
      } catch {
        done(false);
      }
    });
  }

  forget(from: string): void {
    this.windows.forget(from);
  }

  private pingChunk(target: string): Uint8Array[] {
    const c: StateChunk = { pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: this.o.name, join: false, nodes: [], records: [], last: true, ping: true, target, session: 0, seq: 0, ts: 0 };
    return [this.o.sealer.seal(encodeStateChunk(c))];
  }

  /** A stream ping (one small chunk with `ping`) gets its answer here, without touching state; else null. */
  private pingOf(chunks: Uint8Array[]): Uint8Array[] | null {
    if (chunks.length !== 1 || chunks[0].length >= 512) return null;
    const plain = this.o.sealer.open(chunks[0]);
    if (!plain) return null;
    try {
      const c = decodeStateChunk(plain);
      if (c.ping) return c.target === this.o.name ? this.pingChunk(this.o.name) : [];
    } catch {
      // not a ping: open() counts it
    }
    return null;
  }

  /** Our full state as sealed chunks, each ≤ MAX_CHUNK_BYTES before sealing. */
  private chunks(bind: Pick<StateChunk, 'join' | 'session' | 'seq' | 'ts' | 'replySession' | 'replySeq'>): Uint8Array[] {
    const o = this.o;
    const out: StateChunk[] = [];
    const mk = (): StateChunk => ({ pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: o.name, nodes: [], records: [], last: false, ...bind });
    let cur = mk();
    let size = 96;
    const flush = () => {
      out.push(cur);
      cur = mk();
      size = 96;
    };
    cur.nodes.push({ alive: o.membership.selfAlive(), state: 0 });
    for (const m of o.membership.all()) {
      if (m.name === o.name) continue;
      const a: AliveMsg = { name: m.name, incarnation: m.incarnation, ip: m.ip, port: m.port, meta: m.meta };
      const s = estimateAlive(a);
      if (size + s > MAX_CHUNK_BYTES) flush();
      cur.nodes.push({ alive: a, state: STATE_CODE[m.state] });
      size += s;
    }
    for (const r of o.records()) {
      const s = r.body.length + r.sig.length + 12;
      if (size + s > MAX_CHUNK_BYTES) flush();
      cur.records.push({ body: r.body, sig: r.sig });
      size += s;
    }
    cur.last = true;
    flush();
    if (out.length > MAX_CHUNKS) throw new Error('state exceeds the push-pull cap');
    return out.map((c) => o.sealer.seal(encodeStateChunk(c)));
  }

  /** Open and decode every chunk; null (counted) if any is bad. */
  private open(chunks: Uint8Array[]): StateChunk[] | null {
    const drops = this.o.drops;
    if (chunks.length === 0 || chunks.length > MAX_CHUNKS) return (drops.add(drops.at.pushpull_bad_stream), null);
    const out: StateChunk[] = [];
    for (const c of chunks) {
      const d = openSealed(this.o.sealer, c, MAX_CHUNK_BYTES + this.o.sealer.overhead, decodeStateChunk);
      if (typeof d === 'string') return (drops.add(drops.at[`pushpull_${d}`]), null);
      out.push(d);
    }
    return out;
  }

  private merge(decoded: StateChunk[]): void {
    // Members first, so records can be verified against the keys they advertise.
    for (const d of decoded) for (const n of d.nodes) this.o.membership.merge(n.alive, n.state, n.alive.name !== d.from);
    for (const d of decoded) for (const r of d.records) this.o.applyRecord(r);
  }
}

function blen(s: string): number {
  return Buffer.byteLength(s) + 3;
}
function estimateAlive(a: AliveMsg): number {
  return 40 + blen(a.name) + blen(a.ip) + blen(a.meta.vtep) + blen(a.meta.wgKey) + a.meta.signKey.length + 3;
}
