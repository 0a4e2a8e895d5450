/**
 * The agent core: membership + endpoint tables + dataplane programming, over injected I/O
 * (env.ts). The same class runs in the one-process simulation and in the real daemon.
 *
 * Packet path (UDP): [sealed by the cluster keyring] Envelope{header, msgs...}. Receive checks,
 * each failure a counted drop with a stable reason: size cap (`oversized`), AEAD (`auth_failed`),
 * protobuf (`malformed`), protocol range (`protocol_mismatch`), sender (`bad_sender`), freshness
 * and replay (`stale_timestamp`, `replayed`, `old_session`).
 *
 * Replay protection: every packet carries the sender's name, a session id (its start time in ms,
 * so it grows across restarts), a per-session sequence number and a send timestamp, all inside
 * the AEAD. A receiver keeps, per sender, the newest session and a 64-packet sliding window over
 * sequence numbers (as IPsec/WireGuard do): older sessions, sequence numbers already seen or left
 * of the window are dropped. A timestamp farther than `maxClockSkewMs` from our clock is dropped
 * too, which bounds what a replay can do against a receiver that has just restarted and holds no
 * window yet. Requires clocks within maxClockSkewMs (NTP).
 *
 * Ownership/threading: one event loop. Public methods must not be called from inside an event
 * callback of the same agent (queue work instead).
 */
import nacl from 'tweetnacl';
import type { WireGuardDevice } from '@overlay/crypto';
import type { Addr, Clock, PacketNet, StreamNet, TimerHandle } from './env.js';
import { addrKey } from './env.js';
import { BroadcastQueue } from './broadcast.js';
import { Membership, type Member, type MembershipEvents } from './membership.js';
import { type MembershipConfig, LAN, pushPullScale } from './presets.js';
import { EndpointTable, MAX_NAME_LEN, signRecord, verifyRecord, wellFormed, type ApplyResult } from './endpoints.js';
import { formatIpAddress, formatMac, readMac } from '@overlay/dataplane';
import { type DataplaneControl, Programmer, type Programmed } from './program.js';
import type { Sealer } from './keyring.js';
import {
  type AliveMsg, type EndpointRecord, type Message, type NodeMeta, type StateChunk,
  MAX_CHUNKS, MAX_CHUNK_BYTES, PROTOCOL_MAX, PROTOCOL_MIN,
  decodeEnvelope, decodeStateChunk, encodeHeader, encodeMessageField, encodeStateChunk,
} from './wire.js';

/**
 * WireGuard peer programming: the crypto package's `WireGuardDevice` satisfies this directly.
 * Each live member that advertises a WireGuard key becomes a peer at its VTEP address and
 * advertised port; a dead or departed member's peer is removed. `peers()` feeds `agent status`.
 */
export type TunnelPeers = Pick<WireGuardDevice, 'setPeer' | 'removePeer'> & Partial<Pick<WireGuardDevice, 'peers'>>;

/** Endpoint change events; `rec` is the stored record (treat as read-only). */
export interface AgentEvents extends MembershipEvents {
  onEndpoint?(rec: EndpointRecord): void;
}

export interface LocalEndpoint {
  id: string;
  mac: Uint8Array;
  ipv4?: Uint8Array;
  ipv6?: Uint8Array;
}

export interface NetworkSpec {
  name: string;
  vni: number;
}

export interface AgentOptions {
  name: string;
  /** Address peers reach our gossip (UDP) and push-pull (TCP) on. */
  advertise: Addr;
  /** Underlay address of our VXLAN endpoint; default the advertise ip. */
  vtep?: string;
  vtepPort?: number;
  /** Ed25519 secret key (64 bytes, tweetnacl format). Persist it: it is the node's identity. */
  signingKey: Uint8Array;
  wireguard?: { publicKey: string; port: number };
  sealer: Sealer;
  config?: MembershipConfig;
  clock: Clock;
  random?: () => number;
  packets: PacketNet;
  streams: StreamNet;
  /** Networks this node is attached to; records of other networks are kept but not programmed. */
  networks?: NetworkSpec[];
  dataplane?: DataplaneControl;
  tunnel?: TunnelPeers;
  events?: AgentEvents;
  /** Deleted records are forgotten this long after they arrived. Default 30 min. */
  tombstoneReapMs?: number;
  /** Dead/left members and their records are forgotten after this. Default 1 h. */
  deadNodeReapMs?: number;
  /** Packets whose send time is farther than this from ours are dropped. Default 120 s. */
  maxClockSkewMs?: number;
  /**
   * Every this many ms, push-pull with one random member declared dead (not left), as serf's
   * reconnect does: the only way two sides of a healed partition find each other again once
   * gossip-to-the-dead has expired. Default 30 s.
   */
  reconnectIntervalMs?: number;
  /** Session id; default clock.now(). Must grow across restarts of the same node. */
  session?: number;
}

export interface AgentCounters {
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  pushPulls: number;
  pushPullFailures: number;
  recordsApplied: number;
}

interface ReplayWindow {
  session: number;
  top: number;
  lo: number;
  hi: number;
}

const MAX_REPLAY_SENDERS = 65536;

export class Agent {
  readonly name: string;
  readonly membership: Membership;
  readonly table: EndpointTable;
  readonly queue: BroadcastQueue;
  readonly counters: AgentCounters = { packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, pushPulls: 0, pushPullFailures: 0, recordsApplied: 0 };
  /** Dropped packets and rejected records by reason. */
  readonly drops: Record<string, number> = Object.create(null);

  private readonly o: AgentOptions;
  private readonly cfg: MembershipConfig;
  private readonly random: () => number;
  private readonly session: number;
  private sendSeq = 0;
  private readonly windows = new Map<string, ReplayWindow>();
  private readonly program: Programmer;
  private readonly local = new Map<string, EndpointRecord>();
  private readonly byOwner = new Map<string, Set<string>>();
  private readonly networks: Map<string, number>;
  private readonly signPublic: Uint8Array;
  private readonly pinnedKeys = new Map<string, Uint8Array>();
  private gossipTimer: TimerHandle | null = null;
  private pushPullTimer: TimerHandle | null = null;
  private reapTimer: TimerHandle | null = null;
  private reconnectTimer: TimerHandle | null = null;
  private running = false;

  constructor(o: AgentOptions) {
    this.o = o;
    this.name = o.name;
    this.cfg = o.config ?? LAN;
    this.random = o.random ?? Math.random;
    this.session = o.session ?? o.clock.now();
    this.signPublic = nacl.sign.keyPair.fromSecretKey(o.signingKey).publicKey;
    this.networks = new Map((o.networks ?? []).map((n) => [n.name, n.vni]));
    this.queue = new BroadcastQueue(this.cfg.retransmitMult);
    this.program = new Programmer(o.dataplane);
    const meta: NodeMeta = {
      signKey: this.signPublic,
      vtep: o.vtep ?? o.advertise.ip,
      vtepPort: o.vtepPort ?? 4789,
      wgKey: o.wireguard?.publicKey ?? '',
      wgPort: o.wireguard?.port ?? 0,
      pmin: PROTOCOL_MIN,
      pmax: PROTOCOL_MAX,
    };
    const user = o.events;
    this.membership = new Membership({
      self: { name: o.name, ip: o.advertise.ip, port: o.advertise.port, meta },
      config: this.cfg,
      clock: o.clock,
      random: this.random,
      send: (to, fields) => this.sendPacket(to, fields),
      broadcast: (key, field) => this.queue.queue(key, field),
      acceptMeta: (name, m) => this.acceptMeta(name, m),
      streamPing: (to, target, timeoutMs, done) => this.streamPing(to, target, timeoutMs, done),
      events: {
        onJoin: (m) => {
          this.memberChanged(m);
          user?.onJoin?.(m);
        },
        onLeave: (m) => {
          this.memberChanged(m);
          user?.onLeave?.(m);
        },
        onUpdate: (m) => {
          this.memberChanged(m);
          user?.onUpdate?.(m);
        },
        onSuspect: (m) => user?.onSuspect?.(m),
      },
    });
    this.table = new EndpointTable((owner) => this.keyOf(owner), () => o.clock.now());
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  start(): void {
    if (this.running) return;
    this.running = true;
    this.membership.start();
    this.membership.announce();
    this.scheduleGossip();
    this.schedulePushPull(true);
    this.reapTimer = this.o.clock.setTimeout(() => this.reapTick(), this.reapPeriod());
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (!this.running) return;
    const every = this.o.reconnectIntervalMs ?? 30_000;
    this.reconnectTimer = this.o.clock.setTimeout(() => {
      const dead = this.membership.randomDead();
      if (dead) this.pushPull({ ip: dead.ip, port: dead.port }, false, 5000).catch(() => this.counters.pushPullFailures++);
      this.scheduleReconnect();
    }, every * (0.75 + 0.5 * this.random()));
  }

  /**
   * Join through seeds: a push-pull with each until one succeeds. Resolves with the number of
   * seeds that answered; 0 means none did (the agent keeps running and push-pull retries them).
   */
  async join(seeds: Addr[], timeoutMs = 5000): Promise<number> {
    let ok = 0;
    for (const s of seeds) {
      if (s.ip === this.o.advertise.ip && s.port === this.o.advertise.port) continue;
      try {
        await this.pushPull(s, true, timeoutMs);
        ok++;
      } catch {
        this.counters.pushPullFailures++;
      }
    }
    this.seeds = seeds;
    return ok;
  }
  private seeds: Addr[] = [];

  /**
   * Graceful leave: broadcast our departure and keep gossiping for up to `propagateMs` (or until
   * the leave was sent its full budget), then stop.
   */
  async leave(propagateMs = 1000): Promise<void> {
    if (!this.running) return;
    this.membership.leave();
    const deadline = this.o.clock.now() + propagateMs;
    // Send the leave right away to gossipNodes members, then let the gossip timer continue.
    this.gossipRound();
    await new Promise<void>((resolve) => {
      const tick = () => {
        if (this.queue.size === 0 || this.o.clock.now() >= deadline) resolve();
        else this.o.clock.setTimeout(tick, this.cfg.gossipIntervalMs);
      };
      tick();
    });
    this.stop();
  }

  /** Stop all timers (no leave message: looks like a crash to others). */
  stop(): void {
    this.running = false;
    this.membership.stop();
    for (const t of [this.gossipTimer, this.pushPullTimer, this.reapTimer, this.reconnectTimer]) if (t) this.o.clock.clearTimeout(t);
    this.gossipTimer = this.pushPullTimer = this.reapTimer = this.reconnectTimer = null;
  }

  get isRunning(): boolean {
    return this.running;
  }

  // ---- local endpoints ---------------------------------------------------------------------

  /** Create or update one of our endpoints: a new signed version, gossiped to everyone. */
  publish(network: NetworkSpec, ep: LocalEndpoint): EndpointRecord {
    const rec = this.sign({
      network: network.name,
      vni: network.vni,
      id: ep.id,
      mac: ep.mac,
      ipv4: ep.ipv4 ?? new Uint8Array(0),
      ipv6: ep.ipv6 ?? new Uint8Array(0),
      owner: this.name,
      vtep: this.membership.selfAlive().meta.vtep,
      version: this.nextVersion(),
      deleted: false,
    });
    this.local.set(`${network.name}\u0000${ep.id}`, rec);
    this.storeOwn(rec);
    return rec;
  }

  /** Delete one of our endpoints: a signed tombstone. Returns false if it is not ours. */
  unpublish(network: string, id: string): boolean {
    const key = `${network}\u0000${id}`;
    const cur = this.local.get(key);
    if (!cur) return false;
    this.local.delete(key);
    this.storeOwn(this.sign({ ...cur, version: this.nextVersion(), deleted: true }));
    return true;
  }

  /**
   * Versions are a hybrid logical clock: above every version seen (Lamport) and never below the
   * clock in ms, so a node restarted without state never reissues a version it used before.
   */
  private nextVersion(): number {
    this.table.lamport = Math.max(this.table.lamport + 1, Math.floor(this.o.clock.now()));
    return this.table.lamport;
  }

  private sign(r: Omit<EndpointRecord, 'sig'>): EndpointRecord {
    return signRecord(r, this.o.signingKey);
  }

  private storeOwn(rec: EndpointRecord): void {
    this.table.putOwn(rec);
    this.indexOwner(rec);
    this.queue.queue(`e:${rec.network}\u0000${rec.id}`, encodeMessageField({ endpoint: rec }));
    this.o.events?.onEndpoint?.(rec);
  }

  // ---- packets -----------------------------------------------------------------------------

  private header(): Uint8Array {
    return encodeHeader({ pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: this.name, session: this.session, seq: ++this.sendSeq, ts: this.o.clock.now() });
  }

  /** Send `fields` plus as many piggybacked broadcasts as fit the packet budget. */
  private sendPacket(to: Addr, fields: Uint8Array[]): void {
    if (!this.running) return;
    const head = this.header();
    let used = head.length + this.o.sealer.overhead;
    for (const f of fields) used += f.length;
    const all = fields.slice();
    this.queue.take(this.cfg.maxPacketBytes - used, this.membership.aliveCount(), all);
    this.emit(to, head, all);
  }

  private emit(to: Addr, head: Uint8Array, fields: Uint8Array[]): void {
    let len = head.length;
    for (const f of fields) len += f.length;
    const plain = new Uint8Array(len);
    plain.set(head, 0);
    let off = head.length;
    for (const f of fields) {
      plain.set(f, off);
      off += f.length;
    }
    const sealed = this.o.sealer.seal(plain);
    this.counters.packetsSent++;
    this.counters.bytesSent += sealed.length;
    this.o.packets.send(to, sealed);
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  /** Entry point for every received datagram. Never throws; failures are counted drops. */
  handlePacket(from: Addr, bytes: Uint8Array): void {
    if (!this.running) return;
    this.counters.packetsReceived++;
    this.counters.bytesReceived += bytes.length;
    if (bytes.length > this.cfg.maxPacketBytes) return this.drop('oversized');
    const plain = this.o.sealer.open(bytes);
    if (!plain) return this.drop('auth_failed');
    let env;
    try {
      env = decodeEnvelope(plain);
    } catch {
      return this.drop('malformed');
    }
    if (env.pmax < PROTOCOL_MIN || env.pmin > PROTOCOL_MAX || env.pmin > env.pmax) return this.drop('protocol_mismatch');
    if (env.from === '' || env.from === this.name || env.from.length > MAX_NAME_LEN) return this.drop('bad_sender');
    const now = this.o.clock.now();
    if (Math.abs(now - env.ts) > (this.o.maxClockSkewMs ?? 120_000)) return this.drop('stale_timestamp');
    const why = this.checkReplay(env.from, env.session, env.seq);
    if (why) return this.drop(why);
    for (const m of env.msgs) {
      try {
        this.dispatch(from, m);
      } catch {
        // A bug must not take gossip down: count it and go on with the next message.
        this.drop('handler_error');
      }
    }
  }

  /** Sliding-window replay check; records the packet as seen when accepted. */
  private checkReplay(from: string, session: number, seq: number): string | null {
    if (seq < 1) return 'replayed';
    let w = this.windows.get(from);
    if (!w || session > w.session) {
      if (!w && this.windows.size >= MAX_REPLAY_SENDERS) this.windows.delete(this.windows.keys().next().value!);
      this.windows.set(from, { session, top: seq, lo: 1, hi: 0 });
      return null;
    }
    if (session < w.session) return 'old_session';
    if (seq > w.top) {
      const d = seq - w.top;
      if (d >= 64) {
        w.lo = 0;
        w.hi = 0;
      } else if (d >= 32) {
        w.hi = (w.lo << (d - 32)) >>> 0;
        w.lo = 0;
      } else {
        w.hi = ((w.hi << d) | (w.lo >>> (32 - d))) >>> 0;
        w.lo = (w.lo << d) >>> 0;
      }
      w.lo = (w.lo | 1) >>> 0;
      w.top = seq;
      return null;
    }
    const i = w.top - seq;
    if (i >= 64) return 'replayed';
    if (i < 32) {
      if ((w.lo >>> i) & 1) return 'replayed';
      w.lo = (w.lo | (1 << i)) >>> 0;
    } else {
      if ((w.hi >>> (i - 32)) & 1) return 'replayed';
      w.hi = (w.hi | (1 << (i - 32))) >>> 0;
    }
    return null;
  }

  private dispatch(from: Addr, m: Message): void {
    if ('endpoint' in m) {
      const r = this.applyRecord(m.endpoint);
      if (r === 'applied') this.queue.queue(`e:${m.endpoint.network}\u0000${m.endpoint.id}`, encodeMessageField(m));
    } else this.membership.handle(from, m);
  }

  /** Apply a remote record; keeps our own records authoritative. */
  private applyRecord(r: EndpointRecord): ApplyResult | 'own' {
    if (r.owner === this.name) {
      // Only a record we once signed (before a restart) may make us re-issue or keep a tombstone;
      // anything else naming us as owner is a forgery and must not be signed over or stored.
      const bad = !wellFormed(r) ? 'malformed' : !verifyRecord(r, this.signPublic) ? 'bad_signature' : null;
      if (bad) {
        this.drop(`record_${bad}`);
        return bad;
      }
      this.reassertOwn(r);
      return 'own';
    }
    const res = this.table.apply(r);
    if (res === 'applied') {
      this.counters.recordsApplied++;
      this.indexOwner(r);
      this.reprogram(r);
      this.o.events?.onEndpoint?.(r);
    } else if (res !== 'stale') this.drop(`record_${res}`);
    return res;
  }

  /**
   * Someone holds a version of one of our records (we restarted and lost state, or it is old).
   * If theirs is not older than ours, re-issue ours above it: the live endpoint again, or a
   * tombstone for an endpoint we no longer have. This is how a returning node's records win.
   */
  private reassertOwn(r: EndpointRecord): void {
    if (r.version > this.table.lamport) this.table.lamport = r.version;
    const key = `${r.network}\u0000${r.id}`;
    const mine = this.local.get(key);
    const stored = this.table.get(r.network, r.id)?.rec;
    const same = (x: EndpointRecord) => x.version === r.version && Buffer.compare(Buffer.from(x.sig), Buffer.from(r.sig)) === 0;
    if (stored && stored.owner === this.name && (stored.version > r.version || same(stored))) return;
    if (mine) {
      if (mine.version > r.version || same(mine)) return;
      const rec = this.sign({ ...mine, version: this.nextVersion() });
      this.local.set(key, rec);
      this.storeOwn(rec);
    } else if (!r.deleted) {
      this.storeOwn(this.sign({ ...r, vtep: r.vtep, version: this.nextVersion(), deleted: true }));
    } else if (!stored) {
      this.table.putOwn(r); // keep the tombstone so the digest matches the cluster's
    }
  }

  private indexOwner(r: EndpointRecord): void {
    const key = `${r.network}\u0000${r.id}`;
    let s = this.byOwner.get(r.owner);
    if (!s) this.byOwner.set(r.owner, (s = new Set()));
    s.add(key);
  }

  // ---- programming -------------------------------------------------------------------------

  private wanted(r: EndpointRecord): Programmed | null {
    if (r.deleted || r.owner === this.name) return null;
    const vni = this.networks.get(r.network);
    if (vni === undefined || vni !== r.vni) return null;
    const st = this.membership.stateOf(r.owner);
    if (st !== 'alive' && st !== 'suspect') return null;
    const meta = this.membership.metaOf(r.owner)!;
    const ips: string[] = [];
    if (r.ipv4.length === 4) ips.push(formatIpAddress(4, r.ipv4));
    if (r.ipv6.length === 16) ips.push(formatIpAddress(6, r.ipv6));
    return { vni, mac: formatMac(readMac(r.mac, 0)), ips, vtep: { address: r.vtep || meta.vtep, port: meta.vtepPort || 4789 } };
  }

  private reprogram(r: EndpointRecord): void {
    this.program.reconcile(`${r.network}\u0000${r.id}`, this.wanted(r));
  }

  private memberChanged(m: Member): void {
    const keys = this.byOwner.get(m.name);
    if (keys) {
      for (const k of keys) {
        const [net, id] = k.split('\u0000');
        const e = this.table.get(net, id);
        if (e && e.rec.owner === m.name) this.reprogram(e.rec);
      }
    }
    const t = this.o.tunnel;
    if (t && m.meta.wgKey) {
      try {
        if (m.state === 'alive' || m.state === 'suspect') t.setPeer({ publicKey: m.meta.wgKey, endpoint: { address: m.meta.vtep, port: m.meta.wgPort } });
        else t.removePeer(m.meta.wgKey);
      } catch {
        this.drop('tunnel_program_failed');
      }
    }
  }

  /** TOFU pin of each member's signing key: a name cannot be taken over with a new key. */
  private acceptMeta(name: string, meta: NodeMeta): boolean {
    if (meta.signKey.length !== 32) {
      this.drop('bad_member_meta');
      return false;
    }
    const pinned = this.pinnedKeys.get(name);
    if (!pinned) {
      this.pinnedKeys.set(name, meta.signKey);
      return true;
    }
    if (Buffer.compare(Buffer.from(pinned), Buffer.from(meta.signKey)) !== 0) {
      this.drop('sign_key_changed');
      return false;
    }
    return true;
  }

  private keyOf(owner: string): Uint8Array | undefined {
    if (owner === this.name) return this.signPublic;
    return this.membership.metaOf(owner)?.signKey;
  }

  // ---- gossip and anti-entropy -------------------------------------------------------------

  private scheduleGossip(): void {
    if (!this.running) return;
    this.gossipTimer = this.o.clock.setTimeout(() => {
      this.gossipRound();
      this.scheduleGossip();
    }, this.cfg.gossipIntervalMs);
  }

  private gossipRound(): void {
    if (this.queue.size === 0) return;
    const n = this.membership.aliveCount();
    for (const to of this.membership.gossipTargets()) {
      const head = this.header();
      const fields = this.queue.take(this.cfg.maxPacketBytes - head.length - this.o.sealer.overhead, n);
      if (fields.length === 0) break;
      this.emit(to, head, fields);
    }
  }

  private schedulePushPull(first = false): void {
    if (!this.running) return;
    const base = pushPullScale(this.cfg.pushPullIntervalMs, this.membership.aliveCount());
    // Random phase so agents started together do not exchange in lockstep.
    const delay = first ? this.random() * base : base * (0.75 + 0.5 * this.random());
    this.pushPullTimer = this.o.clock.setTimeout(() => {
      const peer = this.membership.randomLive();
      const target: Addr | undefined = peer ? { ip: peer.ip, port: peer.port } : this.seeds[Math.floor(this.random() * this.seeds.length)];
      if (target) this.pushPull(target, !peer, 10_000).catch(() => this.counters.pushPullFailures++);
      this.schedulePushPull();
    }, delay);
  }

  /** One full state exchange with `to` (join = as a joining node). */
  pushPull(to: Addr, join: boolean, timeoutMs: number): Promise<void> {
    this.counters.pushPulls++;
    return new Promise((resolve, reject) => {
      this.o.streams.exchange(to, this.stateChunks(join), timeoutMs, (err, reply) => {
        if (err || !reply) return reject(err ?? new Error('no reply'));
        if (!this.running) return resolve();
        if (this.mergeChunks(reply)) resolve();
        else reject(new Error('bad push-pull reply'));
      });
    });
  }

  private pingChunk(target: string): Uint8Array[] {
    return [this.o.sealer.seal(encodeStateChunk({ pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: this.name, join: false, nodes: [], endpoints: [], last: true, ping: true, target }))];
  }

  /** Reliable ping over the stream transport; true when `target` itself answered. */
  streamPing(to: Addr, target: string, timeoutMs: number, done: (ok: boolean) => void): void {
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

  /** Responder side of push-pull: merge the peer's state, answer with ours. */
  handleExchange(from: Addr, chunks: Uint8Array[]): Uint8Array[] {
    if (!this.running) return [];
    if (chunks.length === 1 && chunks[0].length < 512) {
      // Possibly a stream ping: answer without touching state.
      const plain = this.o.sealer.open(chunks[0]);
      if (plain) {
        try {
          const c = decodeStateChunk(plain);
          if (c.ping) return c.target === this.name ? this.pingChunk(this.name) : [];
        } catch {
          // fall through: mergeChunks counts it
        }
      }
    }
    const ok = this.mergeChunks(chunks);
    if (!ok) return [];
    try {
      return this.stateChunks(false);
    } catch {
      this.drop('pushpull_state_too_big');
      return [];
    }
  }

  /** Our full state as sealed chunks, each ≤ MAX_CHUNK_BYTES before sealing. */
  stateChunks(join: boolean): Uint8Array[] {
    const out: StateChunk[] = [];
    const mk = (): StateChunk => ({ pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: this.name, join, nodes: [], endpoints: [], last: false });
    let cur = mk();
    let size = 64;
    const flush = () => {
      out.push(cur);
      cur = mk();
      size = 64;
    };
    const self = this.membership.selfAlive();
    cur.nodes.push({ alive: self, state: 0 });
    for (const m of this.membership.all()) {
      if (m.name === this.name) continue;
      const a: AliveMsg = { name: m.name, incarnation: m.incarnation, ip: m.ip, port: m.port, meta: m.meta };
      const s = estimateAlive(a);
      if (size + s > MAX_CHUNK_BYTES) flush();
      cur.nodes.push({ alive: a, state: m.state === 'alive' ? 0 : m.state === 'suspect' ? 1 : m.state === 'dead' ? 2 : 3 });
      size += s;
    }
    for (const r of this.table.records()) {
      const s = estimateRecord(r);
      if (size + s > MAX_CHUNK_BYTES) flush();
      cur.endpoints.push(r);
      size += s;
    }
    cur.last = true;
    flush();
    if (out.length > MAX_CHUNKS) throw new Error('state exceeds the push-pull cap');
    return out.map((c) => this.o.sealer.seal(encodeStateChunk(c)));
  }

  /** Open, decode and merge a peer's chunks. Returns false (counted) if any chunk is bad. */
  private mergeChunks(chunks: Uint8Array[]): boolean {
    if (chunks.length === 0 || chunks.length > MAX_CHUNKS) {
      this.drop('pushpull_bad_stream');
      return false;
    }
    const decoded: StateChunk[] = [];
    for (const c of chunks) {
      if (c.length > MAX_CHUNK_BYTES + this.o.sealer.overhead) return (this.drop('pushpull_oversized'), false);
      const plain = this.o.sealer.open(c);
      if (!plain) return (this.drop('pushpull_auth_failed'), false);
      try {
        const d = decodeStateChunk(plain);
        if (d.pmax < PROTOCOL_MIN || d.pmin > PROTOCOL_MAX) return (this.drop('pushpull_protocol_mismatch'), false);
        decoded.push(d);
      } catch {
        return (this.drop('pushpull_malformed'), false);
      }
    }
    // Members first, so records can be verified against the keys they advertise.
    for (const d of decoded) for (const n of d.nodes) this.membership.merge(n.alive, n.state, n.alive.name !== d.from);
    for (const d of decoded) for (const r of d.endpoints) this.applyRecord(r);
    return true;
  }

  // ---- reaping -----------------------------------------------------------------------------

  private reapPeriod(): number {
    return Math.max(1000, Math.min(60_000, (this.o.tombstoneReapMs ?? 1_800_000) / 10));
  }

  private reapTick(): void {
    if (!this.running) return;
    this.reap();
    this.reapTimer = this.o.clock.setTimeout(() => this.reapTick(), this.reapPeriod());
  }

  /** Forget old tombstones, and members (with their records) dead longer than deadNodeReapMs. */
  reap(): void {
    const now = this.o.clock.now();
    const deadMs = this.o.deadNodeReapMs ?? 3_600_000;
    const gone = (owner: string) => {
      if (owner === this.name) return false;
      const m = this.membership.get(owner);
      return !m || ((m.state === 'dead' || m.state === 'left') && now - m.since > deadMs);
    };
    for (const r of this.table.reap(this.o.tombstoneReapMs ?? 1_800_000, gone)) {
      this.byOwner.get(r.owner)?.delete(`${r.network}\u0000${r.id}`);
      this.program.reconcile(`${r.network}\u0000${r.id}`, null);
    }
    for (const name of this.membership.reap(deadMs)) {
      this.byOwner.delete(name);
      this.pinnedKeys.delete(name);
    }
  }

  // ---- introspection -----------------------------------------------------------------------

  /** A JSON-safe snapshot for `agent status`. Contains no secrets. */
  status(): AgentStatus {
    const members = this.membership.all().map((m) => ({ name: m.name, address: addrKey(m), state: m.state, incarnation: m.incarnation, vtep: m.meta.vtep, wireguard: m.meta.wgKey || undefined }));
    const networks: AgentStatus['networks'] = {};
    for (const net of this.table.networks()) {
      networks[net] = [...this.table.entries(net)].map(({ rec: r }) => ({
        id: r.id, mac: formatMac(readMac(r.mac, 0)), ipv4: r.ipv4.length ? formatIpAddress(4, r.ipv4) : undefined, ipv6: r.ipv6.length ? formatIpAddress(6, r.ipv6) : undefined,
        owner: r.owner, vtep: r.vtep, version: r.version, deleted: r.deleted,
      }));
    }
    return {
      name: this.name,
      incarnation: this.membership.incarnation,
      awareness: this.membership.awareness,
      members,
      networks,
      digest: this.table.digest(),
      counters: { ...this.counters, ...this.membership.counters, queued: this.queue.size, programmed: this.program.size, programFailures: this.program.failures },
      drops: { ...this.drops },
      peers: this.o.tunnel?.peers?.().map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint ? `${p.endpoint.address}:${p.endpoint.port}` : null, up: p.up, handshakeAgeMs: p.lastHandshake ? Date.now() - p.lastHandshake : null })),
    };
  }
}

export interface AgentStatus {
  name: string;
  incarnation: number;
  awareness: number;
  members: { name: string; address: string; state: string; incarnation: number; vtep: string; wireguard?: string }[];
  networks: Record<string, { id: string; mac: string; ipv4?: string; ipv6?: string; owner: string; vtep: string; version: number; deleted: boolean }[]>;
  digest: string;
  counters: Record<string, number>;
  drops: Record<string, number>;
  peers?: { publicKey: string; endpoint: string | null; up: boolean; handshakeAgeMs: number | null }[];
}

function blen(s: string): number {
  return Buffer.byteLength(s) + 3;
}
function estimateAlive(a: AliveMsg): number {
  return 40 + blen(a.name) + blen(a.ip) + blen(a.meta.vtep) + blen(a.meta.wgKey) + a.meta.signKey.length + 3;
}
function estimateRecord(r: EndpointRecord): number {
  return 48 + blen(r.network) + blen(r.id) + blen(r.owner) + blen(r.vtep) + r.mac.length + r.ipv4.length + r.ipv6.length + r.sig.length + 12;
}
