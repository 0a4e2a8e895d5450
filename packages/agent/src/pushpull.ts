/**
 * Push-pull: state exchange over the stream transport (TCP), the anti-entropy that repairs
 * whatever gossip lost, and the way a node joins. Also the reliable stream ping (Lifeguard's TCP
 * fallback probe).
 *
 * Deltas (protocol 3, with a peer advertising pmax ≥ 3): the request carries only our own member
 * entry, a hash of our member view and a digest per (network, owner) of the records the peer takes
 * (networks-gossip.ts: count and XOR of signature prefixes); the reply carries the records of the
 * groups whose digests differ, all members only when the hashes differ, and the responder's own
 * digests; a second exchange (phase 2) then pushes what the responder lacks, when anything. A
 * quiet cluster's exchange is one digest each way instead of both full states. Joins (peer
 * unknown) and older peers get the full state (phase 0), as protocol 2 defines it.
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
  type AliveMsg, type NodeMeta, type RecordBytes, type RecordDigest, type StateChunk,
  MAX_CHUNKS, MAX_CHUNK_BYTES, PROTOCOL_DELTA, PROTOCOL_MAX, PROTOCOL_MIN, decodeStateChunk, encodeStateChunk,
} from './wire.js';
import { differs, digestMap, digestOf, groupKey, groupRecords, membersHash } from './networks-gossip.js';

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
  /** The records a peer advertising `peer` takes (every record we hold when undefined). */
  recordsFor(peer: NodeMeta | undefined): Iterable<SignedRecord>;
  /** Use deltas with peers that speak them; default true (false: protocol 2 exchanges only). */
  delta?: boolean;
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

type Bind = Pick<StateChunk, 'join' | 'session' | 'seq' | 'ts' | 'replySession' | 'replySeq' | 'phase' | 'membersHash'>;
/** What one side puts in its chunks: which members, which records, which digests. */
interface Content {
  nodes: 'self' | 'all' | 'none';
  records: Iterable<RecordBytes>;
  digests?: readonly RecordDigest[];
}

export class PushPull {
  /** Exchanges we started, by kind: full state (protocol 2) or delta, and delta second phases. */
  readonly stats = { full: 0, delta: 0, deltaPush: 0 };
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
      if (target) this.run(target, !peer, 10_000, (err) => err && this.failed(), peer?.meta);
      this.schedule(seeds);
    }, delay);
  }

  private scheduleReconnect(): void {
    const o = this.o;
    if (!o.running()) return;
    this.reconnectTimer = o.clock.setTimeout(() => {
      const dead = o.membership.randomDead();
      if (dead) this.run({ ip: dead.ip, port: dead.port }, false, 5000, (err) => err && this.failed(), dead.meta);
      this.scheduleReconnect();
    }, o.reconnectIntervalMs * (0.75 + 0.5 * o.random()));
  }

  /** One full state exchange with `to` (join = as a joining node). Rejects with PushPullError. */
  exchange(to: Addr, join: boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => this.run(to, join, timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * The same with a callback (called once; in simulated time, synchronously with the reply).
   * `peer`: the meta the peer advertises, when known (deltas need pmax ≥ 3; scope: what it takes).
   */
  run(to: Addr, join: boolean, timeoutMs: number, done: (err: PushPullError | null) => void, peer?: NodeMeta): void {
    const o = this.o;
    o.counters.add(o.counters.at.push_pulls);
    if (join || !peer || peer.pmax < PROTOCOL_DELTA || o.delta === false) {
      this.stats.full++;
      const request = this.tryChunks(this.bind(join, 0), { nodes: 'all', records: o.recordsFor(peer) });
      if (!request) return done(new PushPullError('no_reply'));
      return this.send(to, request, timeoutMs, done, (d) => (this.merge(d), done(null)));
    }
    this.stats.delta++;
    const hash = membersHash(o.membership.all());
    const mine = groupRecords(o.recordsFor(peer));
    const request = this.tryChunks(this.bind(false, 1, hash), { nodes: 'self', records: [], digests: [...mine.values()].map(digestOf) });
    if (!request) return done(new PushPullError('no_reply'));
    this.send(to, request, timeoutMs, done, (d) => {
      this.merge(d);
      if (d[0].phase !== 1) return done(null); // a full reply: an older responder
      // What the responder lacks: our groups (after merging its reply) its digests do not match.
      const theirs = digestMap(d.flatMap((c) => c.digests ?? []));
      const rmeta = d[0].nodes[0]?.alive.name === d[0].from ? d[0].nodes[0].alive.meta : peer;
      const push: RecordBytes[] = [];
      for (const g of groupRecords(o.recordsFor(rmeta)).values()) if (differs(g, theirs.get(groupKey(g.network, g.owner)))) push.push(...g.recs);
      const nodesDiffer = !sameBytes(d[0].membersHash, hash);
      if (push.length === 0 && !nodesDiffer) return done(null);
      this.stats.deltaPush++;
      const second = this.tryChunks(this.bind(false, 2), { nodes: nodesDiffer ? 'all' : 'none', records: push });
      if (!second) return done(new PushPullError('no_reply'));
      this.send(to, second, timeoutMs, done, () => done(null));
    });
  }

  private bind(join: boolean, phase: number, membersHash?: Uint8Array): Bind {
    const o = this.o;
    return { join, session: o.session, seq: ++this.seq, ts: o.clock.now(), ...(phase > 0 ? { phase } : {}), ...(membersHash ? { membersHash } : {}) };
  }

  /** Send one request; `then` gets the reply once it is checked to answer this request. */
  private send(to: Addr, request: Uint8Array[], timeoutMs: number, done: (err: PushPullError | null) => void, then: (d: StateChunk[]) => void): void {
    const o = this.o;
    const seq = this.seq;
    o.streams.exchange(to, request, timeoutMs, (err, reply) => {
      if (err || !reply) return done(new PushPullError('no_reply'));
      if (!o.running()) return done(null);
      const d = this.open(reply);
      if (!d) return done(new PushPullError('bad_reply'));
      if (d.some((c) => c.replySession !== o.session || c.replySeq !== seq)) {
        o.drops.add(o.drops.at.pushpull_replayed);
        return done(new PushPullError('bad_reply'));
      }
      then(d);
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
    const reply = { join: false, session: o.session, seq: 0, ts: o.clock.now(), replySession: first.session, replySeq: first.seq };
    const peer = first.nodes[0]?.alive.name === first.from ? first.nodes[0].alive.meta : undefined;
    let content: Content;
    if (first.phase === 2) content = { nodes: 'none', records: [] };
    else if (first.phase === 1) {
      // Records of the groups whose digests differ; all members only when the views differ.
      const theirs = digestMap(d.flatMap((c) => c.digests ?? []));
      const mine = groupRecords(o.recordsFor(peer));
      const records: RecordBytes[] = [];
      const digests: RecordDigest[] = [];
      for (const g of mine.values()) {
        digests.push(digestOf(g));
        if (differs(g, theirs.get(groupKey(g.network, g.owner)))) records.push(...g.recs);
      }
      const hash = membersHash(o.membership.all());
      const same = sameBytes(first.membersHash, hash);
      return this.tryChunks({ ...reply, phase: 1, membersHash: hash }, { nodes: same ? 'self' : 'all', records, digests }) ?? [];
    } else content = { nodes: 'all', records: o.recordsFor(peer) };
    return this.tryChunks(first.phase === 2 ? { ...reply, phase: 2 } : reply, content) ?? [];
  }

  /** Chunks, or null (counted) when the state exceeds the exchange cap. */
  private tryChunks(bind: Bind, content: Content): Uint8Array[] | null {
    try {
      return this.chunks(bind, content);
    } catch {
      this.o.drops.add(this.o.drops.at.pushpull_state_too_big);
      return null;
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

  /** Our side as sealed chunks, each ≤ MAX_CHUNK_BYTES before sealing. */
  private chunks(bind: Bind, content: Content): Uint8Array[] {
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
    if (content.nodes !== 'none') cur.nodes.push({ alive: o.membership.selfAlive(), state: 0 });
    for (const m of content.nodes === 'all' ? o.membership.all() : []) {
      if (m.name === o.name) continue;
      const a: AliveMsg = { name: m.name, incarnation: m.incarnation, ip: m.ip, port: m.port, meta: m.meta };
      const s = estimateAlive(a);
      if (size + s > MAX_CHUNK_BYTES) flush();
      cur.nodes.push({ alive: a, state: STATE_CODE[m.state] });
      size += s;
    }
    for (const r of content.records) {
      const s = r.body.length + r.sig.length + 12;
      if (size + s > MAX_CHUNK_BYTES) flush();
      cur.records.push({ body: r.body, sig: r.sig });
      size += s;
    }
    for (const g of content.digests ?? []) {
      const s = blen(g.network) + blen(g.owner) + 20;
      if (size + s > MAX_CHUNK_BYTES) flush();
      (cur.digests ??= []).push(g);
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

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && Buffer.compare(a, b) === 0;
}

function blen(s: string): number {
  return Buffer.byteLength(s) + 3;
}
function estimateAlive(a: AliveMsg): number {
  return 40 + blen(a.name) + blen(a.ip) + blen(a.meta.vtep) + blen(a.meta.wgKey) + a.meta.signKey.length + 3;
}
