/**
 * The agent: membership + signed record table + dataplane programming, over injected I/O
 * (env.ts). The same class runs in the one-process simulation and in the real daemon. It wires
 * the concerns that live in their own files and owns the timers:
 *
 * - envelope.ts: building, sealing, opening and replay-checking gossip packets;
 * - membership.ts: SWIM/Lifeguard; pushpull.ts: state exchange and stream ping;
 * - records.ts: the signed record table (LWW, verification, owner index); endpoints.ts: the
 *   endpoint kind and what it programs (program.ts);
 * - here: lifecycle, joining (retried with backoff), our own records, gossip rounds, reaping,
 *   TOFU pinning of signing keys, tunnel peers and status.
 *
 * Ownership/threading: one event loop. Public methods must not be called from inside an event
 * callback of the same agent (queue work instead).
 */
import nacl from 'tweetnacl';
import { formatIpAddress, formatMac, readMac } from '@overlay/dataplane';
import type { WireGuardDevice } from '@overlay/crypto';
import type { Addr, Clock, PacketNet, StreamNet, TimerHandle } from './env.js';
import { addrKey } from './env.js';
import { BroadcastQueue } from './broadcast.js';
import { Membership, type Member, type MembershipEvents } from './membership.js';
import { type MembershipConfig, LAN, pushPullScale } from './presets.js';
import { type AgentCounters, type AgentDrops, createAgentCounters, createAgentDrops } from './counters.js';
import { Envelopes } from './envelope.js';
import { PushPull } from './pushpull.js';
import { type KindContext, type RecordKind, type SignedRecord, RecordTable, recordKey, signRecord, verifyRecord } from './records.js';
import { type EndpointData, type EndpointRecord, ENDPOINT_KIND, endpointKind } from './endpoints.js';
import { type DataplaneControl, Programmer } from './program.js';
import type { Sealer } from './keyring.js';
import { type Message, type NodeMeta, type RecordBytes, PROTOCOL_MAX, PROTOCOL_MIN, encodeMessageField } from './wire.js';

/**
 * WireGuard peer programming: the crypto package's `WireGuardDevice` satisfies this directly.
 * Each live member that advertises a WireGuard key becomes a peer at its VTEP address and
 * advertised port; a dead or departed member's peer is removed. `peers()` feeds `agent status`.
 */
export type TunnelPeers = Pick<WireGuardDevice, 'setPeer' | 'removePeer'> & Partial<Pick<WireGuardDevice, 'peers'>>;

/** Record change events; `rec` is the stored record (treat as read-only). */
export interface AgentEvents extends MembershipEvents {
  onRecord?(rec: SignedRecord): void;
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
  /** Record kinds besides endpoints (one RecordKind each, e.g. service instances). */
  kinds?: RecordKind<unknown>[];
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
  /**
   * Encoded protobuf fields appended to the body of every record this node signs, as a newer
   * version that added fields would: for wire-compatibility tests only.
   */
  recordExtension?: Uint8Array;
}

/** First join retry after this, doubling per failed round up to JOIN_RETRY_MAX_MS (±25 % jitter). */
export const JOIN_RETRY_BASE_MS = 1000;
export const JOIN_RETRY_MAX_MS = 8000;

export class Agent {
  readonly name: string;
  readonly membership: Membership;
  readonly table: RecordTable;
  readonly queue: BroadcastQueue;
  /** What the agent did: packets, bytes, exchanges, records applied, join attempts. */
  readonly counters: AgentCounters = createAgentCounters();
  /** Dropped packets, exchanges and records by reason (channel 'overlay.agent.drop'). */
  readonly drops: AgentDrops = createAgentDrops();

  private readonly o: AgentOptions;
  private readonly cfg: MembershipConfig;
  private readonly random: () => number;
  private readonly envelopes: Envelopes;
  private readonly pushPulls: PushPull;
  private readonly program: Programmer;
  private readonly kinds = new Map<number, RecordKind<unknown>>();
  /** Our own live records by table key: what we re-issue when the cluster holds an older copy. */
  private readonly local = new Map<string, SignedRecord>();
  private readonly signPublic: Uint8Array;
  private readonly pinnedKeys = new Map<string, Uint8Array>();
  private seeds: Addr[] = [];
  private joinTimeoutMs = 5000;
  private gossipTimer: TimerHandle | null = null;
  private pushPullTimer: TimerHandle | null = null;
  private reapTimer: TimerHandle | null = null;
  private reconnectTimer: TimerHandle | null = null;
  private joinTimer: TimerHandle | null = null;
  private running = false;

  constructor(o: AgentOptions) {
    this.o = o;
    this.name = o.name;
    this.cfg = o.config ?? LAN;
    this.random = o.random ?? Math.random;
    const session = o.session ?? o.clock.now();
    const maxClockSkewMs = o.maxClockSkewMs ?? 120_000;
    this.signPublic = nacl.sign.keyPair.fromSecretKey(o.signingKey).publicKey;
    this.queue = new BroadcastQueue(this.cfg.retransmitMult);
    this.program = new Programmer(o.dataplane);
    this.envelopes = new Envelopes({ name: o.name, session, clock: o.clock, sealer: o.sealer, maxPacketBytes: this.cfg.maxPacketBytes, maxClockSkewMs, drops: this.drops });
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
      streamPing: (to, target, timeoutMs, done) => this.pushPulls.ping(to, target, timeoutMs, done),
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
    const networks = new Map((o.networks ?? []).map((n) => [n.name, n.vni]));
    const kinds: RecordKind<unknown>[] = [endpointKind(this.program, networks), ...(o.kinds ?? [])];
    for (const k of kinds) this.kinds.set(k.code, k);
    const ms = this.membership;
    const ctx: KindContext = { self: o.name, stateOf: (n) => ms.stateOf(n), metaOf: (n) => ms.metaOf(n) };
    this.table = new RecordTable(kinds, (owner) => this.keyOf(owner), () => o.clock.now(), ctx);
    this.pushPulls = new PushPull({
      name: o.name, session, clock: o.clock, sealer: o.sealer, streams: o.streams, maxClockSkewMs, membership: ms,
      drops: this.drops, counters: this.counters,
      records: () => this.table.records(),
      applyRecord: (r) => void this.applyRecord(r),
      running: () => this.running,
    });
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
      if (dead) this.pushPull({ ip: dead.ip, port: dead.port }, false, 5000).catch(() => this.counters.add(this.counters.at.push_pull_failures));
      this.scheduleReconnect();
    }, every * (0.75 + 0.5 * this.random()));
  }

  /**
   * Join through seeds: a push-pull with each. Resolves with the number of seeds that answered.
   * When none did, the agent keeps running and retries them with backoff (JOIN_RETRY_BASE_MS
   * doubling up to JOIN_RETRY_MAX_MS, each ±25 %) until it knows another live member.
   */
  join(seeds: Addr[], timeoutMs = 5000): Promise<number> {
    this.seeds = seeds.filter((s) => s.ip !== this.o.advertise.ip || s.port !== this.o.advertise.port);
    this.joinTimeoutMs = timeoutMs;
    return new Promise((resolve) =>
      this.joinRound((ok) => {
        if (ok === 0) this.scheduleJoinRetry(0);
        resolve(ok);
      }),
    );
  }

  /** One push-pull with each seed in turn; callbacks, not promises, so simulated time drives it. */
  private joinRound(done: (ok: number) => void, i = 0, ok = 0): void {
    if (i >= this.seeds.length || !this.running) return done(ok);
    this.counters.add(this.counters.at.join_attempts);
    this.pushPulls.run(this.seeds[i], true, this.joinTimeoutMs, (err) => {
      if (err) this.counters.add(this.counters.at.push_pull_failures);
      this.joinRound(done, i + 1, err ? ok : ok + 1);
    });
  }

  private scheduleJoinRetry(round: number): void {
    if (!this.running || this.seeds.length === 0 || this.joinTimer) return;
    const delay = Math.min(JOIN_RETRY_MAX_MS, JOIN_RETRY_BASE_MS * 2 ** round) * (0.75 + 0.5 * this.random());
    this.joinTimer = this.o.clock.setTimeout(() => {
      this.joinTimer = null;
      if (!this.running || this.membership.aliveCount() > 1) return; // someone reached us meanwhile
      this.joinRound((ok) => {
        if (ok === 0 && this.membership.aliveCount() <= 1) this.scheduleJoinRetry(round + 1);
      });
    }, delay);
  }

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
    for (const t of [this.gossipTimer, this.pushPullTimer, this.reapTimer, this.reconnectTimer, this.joinTimer]) if (t) this.o.clock.clearTimeout(t);
    this.gossipTimer = this.pushPullTimer = this.reapTimer = this.reconnectTimer = this.joinTimer = null;
  }

  get isRunning(): boolean {
    return this.running;
  }

  // ---- our own records ---------------------------------------------------------------------

  /** Create or update one of our endpoints: a new signed version, gossiped to everyone. */
  publish(network: NetworkSpec, ep: LocalEndpoint): EndpointRecord {
    const data: EndpointData = { vni: network.vni, mac: ep.mac, ipv4: ep.ipv4 ?? new Uint8Array(0), ipv6: ep.ipv6 ?? new Uint8Array(0), vtep: this.membership.selfAlive().meta.vtep };
    return this.publishRecord(this.kindOf(ENDPOINT_KIND) as RecordKind<EndpointData>, network.name, ep.id, data);
  }

  /** Delete one of our endpoints: a signed tombstone. Returns false if it is not ours. */
  unpublish(network: string, id: string): boolean {
    return this.unpublishRecord(ENDPOINT_KIND, network, id);
  }

  /** Create or update one of our records of any kind the agent was given. */
  publishRecord<D>(kind: RecordKind<D>, network: string, id: string, data: D): SignedRecord<D> {
    const rec = this.sign(kind, { network, id, owner: this.name, version: this.nextVersion(), deleted: false }, data);
    this.local.set(recordKey(kind.code, network, id), rec);
    this.storeOwn(rec);
    return rec;
  }

  /** Delete one of our records (a signed tombstone). Returns false if it is not ours. */
  unpublishRecord(kind: number, network: string, id: string): boolean {
    const key = recordKey(kind, network, id);
    const cur = this.local.get(key);
    if (!cur) return false;
    this.local.delete(key);
    this.storeOwn(this.sign(this.kindOf(kind), { ...cur, version: this.nextVersion(), deleted: true }, cur.data));
    return true;
  }

  /** The stored endpoint record (any owner), tombstones included. */
  endpoint(network: string, id: string): EndpointRecord | undefined {
    return this.table.get<EndpointData>(ENDPOINT_KIND, network, id)?.rec;
  }

  /**
   * Versions are a hybrid logical clock: above every version seen (Lamport) and never below the
   * clock in ms, so a node restarted without state never reissues a version it used before.
   */
  private nextVersion(): number {
    this.table.lamport = Math.max(this.table.lamport + 1, Math.floor(this.o.clock.now()));
    return this.table.lamport;
  }

  private kindOf(code: number): RecordKind<unknown> {
    // A kind we do not know can only be tombstoned (no data field).
    return this.kinds.get(code) ?? { code, field: '', decode: () => null };
  }

  private sign<D>(kind: RecordKind<D>, head: Omit<SignedRecord, 'kind' | 'data' | 'body' | 'sig'>, data: D | undefined): SignedRecord<D> {
    return signRecord(kind, head, data, this.o.signingKey, this.o.recordExtension);
  }

  private storeOwn(rec: SignedRecord): void {
    this.table.putOwn(rec);
    this.gossipRecord(rec);
    this.o.events?.onRecord?.(rec);
  }

  /** Queue a record for gossip: its exact signed bytes, as received or signed. */
  private gossipRecord(r: SignedRecord): void {
    this.queue.queue(`r:${recordKey(r.kind, r.network, r.id)}`, encodeMessageField({ record: { body: r.body, sig: r.sig } }));
  }

  /** Apply a received record (gossip or push-pull); keeps our own records authoritative. */
  private applyRecord(raw: RecordBytes): SignedRecord | null {
    const d = this.drops;
    const r = this.table.open(raw);
    if (!r) return (d.add(d.at.record_malformed), null);
    if (r.owner === this.name) {
      // Only a record we once signed (before a restart) may make us re-issue or keep a tombstone;
      // anything else naming us as owner is a forgery and must not be signed over or stored.
      if (!verifyRecord(r, this.signPublic)) return (d.add(d.at.record_bad_signature), null);
      this.reassertOwn(r);
      return null;
    }
    const res = this.table.apply(r);
    if (res === 'applied') {
      this.counters.add(this.counters.at.records_applied);
      this.o.events?.onRecord?.(r);
      return r;
    }
    if (res !== 'stale') d.add(d.at[`record_${res}`]);
    return null;
  }

  /**
   * Someone holds a version of one of our records (we restarted and lost state, or it is old).
   * If theirs is not older than ours, re-issue ours above it: the live record again, or a
   * tombstone for a record we no longer have. This is how a returning node's records win.
   */
  private reassertOwn(r: SignedRecord): void {
    if (r.version > this.table.lamport) this.table.lamport = r.version;
    const key = recordKey(r.kind, r.network, r.id);
    const mine = this.local.get(key);
    const stored = this.table.get(r.kind, r.network, r.id)?.rec;
    const same = (x: SignedRecord) => x.version === r.version && Buffer.compare(x.sig, r.sig) === 0;
    if (stored && stored.owner === this.name && (stored.version > r.version || same(stored))) return;
    const kind = this.kindOf(r.kind);
    if (mine) {
      if (mine.version > r.version || same(mine)) return;
      const rec = this.sign(kind, { ...mine, version: this.nextVersion() }, mine.data);
      this.local.set(key, rec);
      this.storeOwn(rec);
    } else if (!r.deleted) {
      this.storeOwn(this.sign(kind, { ...r, version: this.nextVersion(), deleted: true }, r.data));
    } else if (!stored) {
      this.table.putOwn(r); // keep the tombstone so the digest matches the cluster's
    }
  }

  // ---- packets -----------------------------------------------------------------------------

  /** Send `fields` plus as many piggybacked broadcasts as fit the packet budget. */
  private sendPacket(to: Addr, fields: Uint8Array[]): void {
    if (!this.running) return;
    const head = this.envelopes.header();
    let room = this.envelopes.room(head);
    for (const f of fields) room -= f.length;
    const all = fields.slice();
    this.queue.take(room, this.membership.aliveCount(), all);
    this.emit(to, head, all);
  }

  private emit(to: Addr, head: Uint8Array, fields: Uint8Array[]): void {
    const sealed = this.envelopes.seal(head, fields);
    this.counters.add(this.counters.at.packets_sent);
    this.counters.add(this.counters.at.bytes_sent, sealed.length);
    this.o.packets.send(to, sealed);
  }

  /** Entry point for every received datagram. Never throws; failures are counted drops. */
  handlePacket(from: Addr, bytes: Uint8Array): void {
    if (!this.running) return;
    this.counters.add(this.counters.at.packets_received);
    this.counters.add(this.counters.at.bytes_received, bytes.length);
    const env = this.envelopes.open(bytes);
    if (!env) return;
    for (const m of env.msgs) {
      try {
        this.dispatch(from, m);
      } catch {
        // A bug must not take gossip down: count it and go on with the next message.
        this.drops.add(this.drops.at.handler_error);
      }
    }
  }

  private dispatch(from: Addr, m: Message): void {
    if ('record' in m) {
      const r = this.applyRecord(m.record);
      if (r) this.gossipRecord(r);
    } else this.membership.handle(from, m);
  }

  // ---- members -----------------------------------------------------------------------------

  private memberChanged(m: Member): void {
    this.table.ownerChanged(m);
    const t = this.o.tunnel;
    if (t && m.meta.wgKey) {
      try {
        if (m.state === 'alive' || m.state === 'suspect') t.setPeer({ publicKey: m.meta.wgKey, endpoint: { address: m.meta.vtep, port: m.meta.wgPort } });
        else t.removePeer(m.meta.wgKey);
      } catch {
        this.drops.add(this.drops.at.tunnel_program_failed);
      }
    }
  }

  /** TOFU pin of each member's signing key: a name cannot be taken over with a new key. */
  private acceptMeta(name: string, meta: NodeMeta): boolean {
    if (meta.signKey.length !== 32) {
      this.drops.add(this.drops.at.bad_member_meta);
      return false;
    }
    const pinned = this.pinnedKeys.get(name);
    if (!pinned) {
      this.pinnedKeys.set(name, meta.signKey);
      return true;
    }
    if (Buffer.compare(pinned, meta.signKey) !== 0) {
      this.drops.add(this.drops.at.sign_key_changed);
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
      const head = this.envelopes.header();
      const fields = this.queue.take(this.envelopes.room(head), n);
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
      if (target) this.pushPull(target, !peer, 10_000).catch(() => this.counters.add(this.counters.at.push_pull_failures));
      this.schedulePushPull();
    }, delay);
  }

  /** One full state exchange with `to` (join = as a joining node). Rejects with PushPullError. */
  pushPull(to: Addr, join: boolean, timeoutMs: number): Promise<void> {
    return this.pushPulls.exchange(to, join, timeoutMs);
  }

  /** Responder side of push-pull and stream pings (the stream transport calls this). */
  handleExchange(_from: Addr, chunks: Uint8Array[]): Uint8Array[] {
    if (!this.running) return [];
    return this.pushPulls.handle(chunks);
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
    this.table.reap(this.o.tombstoneReapMs ?? 1_800_000, gone);
    for (const name of this.membership.reap(deadMs)) {
      this.pinnedKeys.delete(name);
      this.envelopes.forget(name);
      this.pushPulls.forget(name);
    }
  }

  // ---- introspection -----------------------------------------------------------------------

  /** A JSON-safe snapshot for `agent status`. Contains no secrets. */
  status(): AgentStatus {
    const members = this.membership.all().map((m) => ({ name: m.name, address: addrKey(m), state: m.state, incarnation: m.incarnation, vtep: m.meta.vtep, wireguard: m.meta.wgKey || undefined }));
    const networks: AgentStatus['networks'] = {};
    for (const r of this.table.records()) {
      if (r.kind !== ENDPOINT_KIND) continue;
      const d = r.data as EndpointData | undefined;
      (networks[r.network] ??= []).push({
        id: r.id, mac: d ? formatMac(readMac(d.mac, 0)) : '', ipv4: d?.ipv4.length ? formatIpAddress(4, d.ipv4) : undefined, ipv6: d?.ipv6.length ? formatIpAddress(6, d.ipv6) : undefined,
        owner: r.owner, vtep: d?.vtep ?? '', version: r.version, deleted: r.deleted,
      });
    }
    return {
      name: this.name,
      incarnation: this.membership.incarnation,
      awareness: this.membership.awareness,
      members,
      networks,
      digest: this.table.digest(),
      counters: { ...this.counters.snapshot(), ...this.membership.counters, queued: this.queue.size, programmed: this.program.size, programFailures: this.program.failures },
      drops: this.drops.snapshot(),
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
