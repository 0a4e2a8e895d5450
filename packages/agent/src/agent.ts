/**
 * The agent: membership + signed record table + dataplane programming, over injected I/O
 * (env.ts). The same class runs in the one-process simulation and in the real daemon. It wires
 * the concerns that live in their own files and owns the timers:
 *
 * - envelope.ts: building, sealing, opening and replay-checking gossip packets;
 * - membership.ts: SWIM/Lifeguard; pushpull.ts: state exchange and stream ping;
 * - records.ts: the signed record table (LWW, verification, owner index); endpoints.ts: the
 *   endpoint kind and what it programs (program.ts);
 * - agent-types.ts: the options and event types (re-exported here);
 * - here: lifecycle, joining (retried with backoff), our own records, gossip rounds, reaping,
 *   TOFU pinning of signing keys, tunnel peers and status.
 *
 * Ownership/threading: one event loop. Public methods must not be called from inside an event
 * callback of the same agent (queue work instead).
 */
import nacl from 'tweetnacl';
import { OverlayError, formatIpAddress, formatMac, readMac } from '@overlay/dataplane';
import type { Addr, TimerHandle } from './env.js';
import type { AgentOptions, LocalEndpoint, NetworkSpec } from './agent-types.js';
import { addrKey } from './env.js';
import { GossipQueues } from './gossip-queues.js';
import { NetworkGossip } from './networks-gossip.js';
import { Membership, type Member } from './membership.js';
import { type MembershipConfig, LAN } from './presets.js';
import { type AgentCounters, type AgentDrops, createAgentCounters, createAgentDrops } from './counters.js';
import { Envelopes } from './envelope.js';
import { PushPull } from './pushpull.js';
import { type KindContext, type RecordKind, type SignedRecord, RecordTable, recordKey } from './records.js';
import { RecordSync } from './record-sync.js';
import { Joiner } from './join.js';
import { SigningKeys } from './signing-keys.js';
import { type EndpointData, type EndpointRecord, ENDPOINT_KIND, endpointKind } from './endpoints.js';
import { Programmer } from './program.js';
import { type Message, type NodeMeta, PROTOCOL_MAX, PROTOCOL_MIN, encodeMessageField } from './wire.js';
import { LEAVE_DIRECT_MAX } from './membership-types.js';
import { AgentAdmission, isAdopter, REVOCATION_KIND, REVOCATION_NETWORK, type RevocationData, revocationId } from './pki-admission.js';
import { parseRevocation } from '@overlay/pki';

/**
 * How many times a revocation is sent straight to each live member (sendStraight). With 5 %
 * loss each way a copy is lost with p ≈ 0.1; five copies all lost: ≈ 1e-5, and gossip still runs.
 */
const DIRECT_COPIES = 5;

export type { AgentEvents, AgentOptions, LocalEndpoint, NetworkSpec, TunnelPeers } from './agent-types.js';

/** Records learned by push-pull and signed less than this long ago are gossiped on (see PushPull applyRecord). */
export const FRESH_RECORD_MS = 30_000;

export class Agent {
  readonly name: string;
  readonly membership: Membership;
  readonly table: RecordTable;
  /** Membership and record news, sharing each packet's budget fairly (gossip-queues.ts). */
  readonly queue: GossipQueues;
  /** Which networks each member takes records of, and ours (networks-gossip.ts). */
  readonly networkGossip: NetworkGossip;
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
  private readonly sync: RecordSync;
  private readonly joiner: Joiner;
  private readonly signPublic: Uint8Array;
  private readonly keys: SigningKeys;
  /** Admission by certificate, when `pki` is given. */
  readonly pki: AgentAdmission | undefined;
  private gossipTimer: TimerHandle | null = null;
  private reapTimer: TimerHandle | null = null;
  private running = false;
  /** Networks we are attached to (name → VNI): what the endpoint kind programs. */
  private readonly networkMap: Map<string, number>;

  constructor(o: AgentOptions) {
    this.o = o;
    this.name = o.name;
    this.cfg = o.config ?? LAN;
    this.random = o.random ?? Math.random;
    const session = o.session ?? o.clock.now();
    const maxClockSkewMs = o.maxClockSkewMs ?? 120_000;
    this.signPublic = nacl.sign.keyPair.fromSecretKey(o.signingKey).publicKey;
    this.queue = new GossipQueues({ retransmitMult: this.cfg.retransmitMult });
    this.program = new Programmer(o.dataplane);
    this.envelopes = new Envelopes({ name: o.name, session, clock: o.clock, sealer: o.sealer, maxPacketBytes: this.cfg.maxPacketBytes, maxClockSkewMs, drops: this.drops });
    this.networkGossip = new NetworkGossip(o.name, o.gossipScope ? o.gossipScope === 'network' : o.networks !== undefined);
    const meta: NodeMeta = {
      ...this.networkGossip.metaFields((o.networks ?? []).map((n) => n.name)),
      signKey: this.signPublic,
      vtep: o.vtep ?? o.advertise.ip,
      vtepPort: o.vtepPort ?? 4789,
      wgKey: o.wireguard?.publicKey ?? '',
      wgPort: o.wireguard?.port ?? 0,
      pmin: PROTOCOL_MIN,
      pmax: PROTOCOL_MAX,
      ...(o.pki ? { cert: o.pki.cert } : {}),
    };
    this.pki = o.pki && new AgentAdmission({ ...o.pki, self: o.name, clock: o.clock, drops: this.drops, evict: (names) => o.clock.setTimeout(() => this.evict(names), 0) });
    const selfAdmitted = this.pki?.admitSelf(meta);
    if (selfAdmitted && !selfAdmitted.ok) throw new PkiAdmissionError(selfAdmitted.code);
    const user = o.events;
    const changed = (then: (m: Member) => void) => (m: Member) => {
      this.memberChanged(m);
      then(m);
    };
    this.membership = new Membership({
      self: { name: o.name, ip: o.advertise.ip, port: o.advertise.port, meta },
      config: this.cfg,
      clock: o.clock,
      random: this.random,
      send: (to, fields) => this.sendPacket(to, fields),
      broadcast: (key, field) => this.queue.queue(key, field),
      // With pki the certificate decides first, so a refused name pins no key.
      acceptMeta: (name, m, prev) => (!this.pki || this.pki.acceptMeta(name, m, prev)) && this.keys.accept(name, m),
      streamPing: (to, target, timeoutMs, done) => this.pushPulls.ping(to, target, timeoutMs, done),
      maxMembers: o.maxMembers,
      events: {
        onJoin: changed((m) => user?.onJoin?.(m)),
        onLeave: changed((m) => user?.onLeave?.(m)),
        onUpdate: changed((m) => user?.onUpdate?.(m)),
        onSuspect: (m) => user?.onSuspect?.(m),
      },
    });
    const networks = (this.networkMap = new Map((o.networks ?? []).map((n) => [n.name, n.vni])));
    const kinds: RecordKind<unknown>[] = [endpointKind(this.program, networks), ...(o.kinds ?? []), ...(this.pki ? [this.pki.revocationKind as RecordKind<unknown>] : [])];
    const ms = this.membership;
    const ctx: KindContext = { self: o.name, stateOf: (n) => ms.stateOf(n), metaOf: (n) => ms.metaOf(n) };
    this.keys = new SigningKeys(o.name, this.signPublic, this.drops, (n) => ms.metaOf(n)?.signKey);
    this.table = new RecordTable(kinds, (owner) => this.keys.keyOf(owner), () => o.clock.now(), ctx, this.pki && ((r) => this.pki!.checkRecord(r)));
    this.pushPulls = new PushPull({
      name: o.name, session, clock: o.clock, random: this.random, sealer: o.sealer, streams: o.streams, maxClockSkewMs, membership: ms,
      intervalMs: this.cfg.pushPullIntervalMs, reconnectIntervalMs: o.reconnectIntervalMs ?? 30_000,
      drops: this.drops, counters: this.counters,
      recordsFor: (peer) => this.networkGossip.recordsFor(this.table.records(), peer),
      delta: o.deltaPushPull,
      // News that reached us only by push-pull (a joiner's records land at its seed this way) is
      // gossiped on like news from gossip, if it is fresh: versions are hybrid clocks in ms, so a
      // record signed within FRESH_RECORD_MS is recent news; older ones (a joiner's whole
      // download, anti-entropy) are not re-spread, so a join costs no burst of old records.
      applyRecord: (r) => {
        const rec = this.sync.receive(r);
        if (rec && o.clock.now() - rec.version < FRESH_RECORD_MS) this.gossipRecord(rec);
      },
      running: () => this.running,
    });
    this.sync = new RecordSync({
      name: o.name, signingKey: o.signingKey, signPublic: this.signPublic, recordExtension: o.recordExtension, clock: o.clock, table: this.table,
      kinds: new Map(kinds.map((k) => [k.code, k])), drops: this.drops, counters: this.counters,
      gossip: (r) => this.gossipRecord(r),
      stored: (r) => o.events?.onRecord?.(r),
    });
    this.joiner = new Joiner({
      self: o.advertise, clock: o.clock, random: this.random, pushPull: this.pushPulls, counters: this.counters,
      joined: () => ms.aliveCount() > 1,
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
    this.pushPulls.start(() => this.joiner.seeds);
    this.reapTimer = this.o.clock.setTimeout(() => this.reapTick(), this.reapPeriod());
  }

  /**
   * Join through seeds: a push-pull with each. Resolves with the number of seeds that answered.
   * When none did, the agent keeps running and retries them with backoff (join.ts) until it
   * knows another live member.
   */
  join(seeds: Addr[], timeoutMs = 5000): Promise<number> {
    return this.joiner.join(seeds, timeoutMs);
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
    this.joiner.stop();
    this.pushPulls.stop();
    this.pki?.stop();
    for (const t of [this.gossipTimer, this.reapTimer]) if (t) this.o.clock.clearTimeout(t);
    this.gossipTimer = this.reapTimer = null;
  }

  get isRunning(): boolean {
    return this.running;
  }

  // ---- our own records ---------------------------------------------------------------------

  /** Create or update one of our endpoints: a new signed version, gossiped to everyone. */
  publish(network: NetworkSpec, ep: LocalEndpoint): EndpointRecord {
    const data: EndpointData = { vni: network.vni, mac: ep.mac, ipv4: ep.ipv4 ?? new Uint8Array(0), ipv6: ep.ipv6 ?? new Uint8Array(0), vtep: this.membership.selfAlive().meta.vtep };
    return this.sync.publish(this.sync.kindOf(ENDPOINT_KIND) as RecordKind<EndpointData>, network.name, ep.id, data);
  }

  /**
   * Attach to exactly `list`: endpoints of these networks are programmed, the list is advertised
   * (new meta, so peers send us their records), and each network joined is pulled at once by a
   * push-pull with one of its members (networks-gossip.ts).
   */
  setNetworks(list: NetworkSpec[]): void {
    const added = list.filter((n) => !this.networkMap.has(n.name));
    this.networkMap.clear();
    for (const n of list) this.networkMap.set(n.name, n.vni);
    const ms = this.membership;
    ms.setMeta({ ...ms.selfAlive().meta, ...this.networkGossip.metaFields(list.map((n) => n.name)) });
    for (const m of ms.all()) this.table.ownerChanged(m);
    if (!this.running) return;
    for (const n of added) {
      const peer = this.networkGossip.index.pick(n.name, 1, this.random)[0];
      const m = peer === undefined ? undefined : ms.get(peer);
      if (m) this.pushPulls.run({ ip: m.ip, port: m.port }, false, 10_000, (err) => err && this.counters.add(this.counters.at.push_pull_failures), m.meta);
    }
  }

  /** Delete one of our endpoints: a signed tombstone. Returns false if it is not ours. */
  unpublish(network: string, id: string): boolean {
    return this.sync.unpublish(ENDPOINT_KIND, network, id);
  }

  /** Create or update one of our records of any kind the agent was given. */
  publishRecord<D>(kind: RecordKind<D>, network: string, id: string, data: D): SignedRecord<D> {
    return this.sync.publish(kind, network, id, data);
  }

  /** Delete one of our records (a signed tombstone). Returns false if it is not ours. */
  unpublishRecord(kind: number, network: string, id: string): boolean {
    return this.sync.unpublish(kind, network, id);
  }

  /**
   * Apply a record learned outside gossip (an external store, store-bridge.ts): opened, verified
   * against its owner's key, stored by LWW, counted, as one from gossip; not gossiped on (every
   * agent reads the store). Our own records make us re-assert ours. True when it was stored.
   */
  receiveRecord(raw: { body: Uint8Array; sig: Uint8Array }): boolean {
    return this.sync.receive(raw) !== null;
  }

  /** The stored endpoint record (any owner), tombstones included. */
  endpoint(network: string, id: string): EndpointRecord | undefined {
    return this.table.get<EndpointData>(ENDPOINT_KIND, network, id)?.rec;
  }

  /** Queue a record for gossip: its exact signed bytes, as received or signed. */
  private gossipRecord(r: SignedRecord): void {
    this.queue.queue(`r:${recordKey(r.kind, r.network, r.id)}`, encodeMessageField({ record: { body: r.body, sig: r.sig } }), this.networkGossip.queueOf(r));
  }

  // ---- packets -----------------------------------------------------------------------------

  /** Send `fields` plus as many piggybacked broadcasts as fit the packet budget. */
  private sendPacket(to: Addr, fields: Uint8Array[]): void {
    if (!this.running) return;
    const head = this.envelopes.header();
    let room = this.envelopes.room(head);
    for (const f of fields) room -= f.length;
    const all = fields.slice();
    this.queue.take(room, this.membership.aliveCount(), all, this.networkGossip.scopeFor(to));
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
    const admitted = !this.pki || this.pki.senderAdmitted(env.from);
    for (const m of env.msgs) {
      // With pki, a sender not admitted is heard only announcing itself (its alive carries its certificate).
      if (!admitted && !('alive' in m && m.alive.name === env.from)) {
        this.drops.add(this.drops.at.gossip_not_admitted);
        continue;
      }
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
      const r = this.sync.receive(m.record);
      if (r) this.gossipRecord(r);
    } else this.membership.handle(from, m);
  }

  // ---- members -----------------------------------------------------------------------------

  private memberChanged(m: Member): void {
    this.networkGossip.index.update(m);
    this.table.ownerChanged(m);
    const t = this.o.tunnel;
    if (t && m.meta.wgKey && (!this.pki || this.pki.isAdmitted(m.name) || (m.state !== 'alive' && m.state !== 'suspect'))) {
      try {
        if (m.state === 'alive' || m.state === 'suspect') t.setPeer({ publicKey: m.meta.wgKey, endpoint: { address: m.meta.vtep, port: m.meta.wgPort } });
        else t.removePeer(m.meta.wgKey);
      } catch {
        this.drops.add(this.drops.at.tunnel_program_failed);
      }
    }
  }

  /** Members a revocation or expiry evicted: no tunnel peer, no records, at once. */
  private evict(names: string[]): void {
    for (const name of names) {
      const m = this.membership.get(name);
      if (m?.meta.wgKey && this.o.tunnel) {
        try {
          this.o.tunnel.removePeer(m.meta.wgKey);
        } catch {
          this.drops.add(this.drops.at.tunnel_program_failed);
        }
      }
    }
    // Their records leave the table now (effects undone); copies arriving later are not_admitted.
    // Revocations they carried are adopted first by the rendezvous picks (the others get the copy).
    const gone = new Set(names);
    if (this.pki) this.adoptRevocations(() => false, gone);
    this.table.reap(Infinity, (owner) => gone.has(owner));
  }

  /**
   * Publish a CA-signed revocation (`agent revoke`): verified, applied here at once, and spread as
   * a record of kind 3. Throws PkiError when it does not verify, or when pki is off.
   */
  revoke(bytes: Uint8Array): { evicted: string[] } {
    if (!this.pki) throw new PkiAdmissionError('pki_off');
    const r = parseRevocation(bytes, this.pki.admission.trusted);
    const evicted = this.pki.applyRevocation(r.bytes);
    const rec = this.sync.publish(this.pki.revocationKind, REVOCATION_NETWORK, revocationId(r.kind, r.key), { revocation: r.bytes } satisfies RevocationData);
    this.sendStraight(encodeMessageField({ record: { body: rec.body, sig: rec.sig } }));
    return { evicted };
  }

  /**
   * A rare message that must arrive (a revocation): besides gossip, sent straight to every live
   * member (at most LEAVE_DIRECT_MAX; gossip carries it to the rest of a larger cluster),
   * DIRECT_COPIES times a gossip interval apart. Gossip alone spends a small budget on random
   * targets, recently dead members among them, and could miss a live member for seconds under loss
   * (test/pki-agents.test.ts saw 6.7 s at 5 % loss). Its own packets: nothing piggybacked, no
   * gossip budget spent. A copy that arrives twice is stale the second time.
   */
  private sendStraight(field: Uint8Array, copy = 0): void {
    if (!this.running) return;
    for (const to of this.membership.liveAddrs(LEAVE_DIRECT_MAX)) this.emit(to, this.envelopes.header(), [field]);
    if (copy + 1 < DIRECT_COPIES) this.o.clock.setTimeout(() => this.sendStraight(field, copy + 1), this.cfg.gossipIntervalMs);
  }

  /**
   * Swap in a renewed or re-issued certificate for our same keys (pki-renew.ts, pki-run.ts): checked,
   * admitted for ourselves, and announced in our meta (a higher incarnation), so every peer
   * re-admits us with its validity. Tunnels are untouched. Throws PkiAdmissionError when refused.
   */
  renewCert(cert: Uint8Array): void {
    if (!this.pki) throw new PkiAdmissionError('pki_off');
    const meta: NodeMeta = { ...this.membership.selfAlive().meta, cert: new Uint8Array(cert) };
    const r = this.pki.renewSelf(meta);
    if (!r.ok) throw new PkiAdmissionError(r.code);
    this.membership.setMeta(meta);
    // Besides the gossiped alive, a push-pull (TCP) with two live members: under loss the new
    // validity reaches them even if every gossip copy is lost (the rest hear it from them).
    if (!this.running) return;
    const ms = this.membership;
    const live = ms.all().filter((m) => m.name !== this.name && (m.state === 'alive' || m.state === 'suspect'));
    for (let k = 0; k < 2 && live.length > 0; k++) {
      const m = live.splice(Math.floor(this.random() * live.length), 1)[0];
      this.pushPulls.run({ ip: m.ip, port: m.port }, false, 10_000, (err) => err && this.counters.add(this.counters.at.push_pull_failures), m.meta);
    }
  }

  /**
   * Revocations outlive their publisher (docs/pki.md): a revocation record whose owner is not
   * alive, or no longer admitted (revoked, expired: `evicted`), is re-signed by us under the same
   * id (LWW keeps one copy), by the two members the rendezvous hash of its id picks at once, by
   * everyone when the reap would take it. Records past their keep horizon are let go (ours
   * tombstoned). A member not admitted itself adopts nothing.
   */
  private adoptRevocations(reapNow: (owner: string) => boolean, evicted?: ReadonlySet<string>): void {
    const pki = this.pki!;
    if (!pki.isAdmitted(this.name)) return; // our copy would be refused everywhere
    const ms = this.membership;
    const now = this.o.clock.now();
    let alive: string[] | undefined;
    for (const r of [...this.table.ofKind(pki.revocationKind, REVOCATION_NETWORK)]) {
      if (r.deleted || !r.data) continue;
      const expired = now >= pki.keepUntil(r.data.revocation);
      if (r.owner === this.name) {
        if (expired && this.sync.unpublish(REVOCATION_KIND, REVOCATION_NETWORK, r.id)) pki.counters.add(pki.counters.at.revocations_expired);
        continue;
      }
      const st = ms.stateOf(r.owner);
      if (expired || ((st === 'alive' || st === 'suspect') && pki.isAdmitted(r.owner) && !evicted?.has(r.owner))) continue;
      alive ??= ms.all().filter((m) => (m.state === 'alive' || m.state === 'suspect') && pki.isAdmitted(m.name)).map((m) => m.name);
      if (!reapNow(r.owner) && !isAdopter(r.id, this.name, alive)) continue;
      this.sync.publish(pki.revocationKind, REVOCATION_NETWORK, r.id, { revocation: r.data.revocation });
      pki.counters.add(pki.counters.at.revocations_adopted);
    }
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
    const ms = this.membership;
    const targets = this.networkGossip.targets(ms.gossipTargets(), this.queue.networksWithNews(), this.cfg.gossipNodes, this.random, (name) => ms.get(name));
    for (const to of targets) {
      const head = this.envelopes.header();
      const fields = this.queue.take(this.envelopes.room(head), n, [], this.networkGossip.scopeFor(to));
      if (fields.length === 0) continue;
      this.emit(to, head, fields);
    }
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
    if (this.pki) this.adoptRevocations(gone);
    this.table.reap(this.o.tombstoneReapMs ?? 1_800_000, gone);
    for (const name of this.membership.reap(deadMs)) {
      this.keys.forget(name);
      this.pki?.forget(name);
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
      counters: { ...this.counters.snapshot(), ...this.membership.counters.snapshot(), queued: this.queue.size, programmed: this.program.size, programFailures: this.program.failures },
      drops: this.drops.snapshot(),
      pki: this.pki?.status(),
      peers: this.o.tunnel?.peers?.().map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint ? `${p.endpoint.address}:${p.endpoint.port}` : null, up: p.up, handshakeAgeMs: p.lastHandshake ? Date.now() - p.lastHandshake : null })),
    };
  }

  /** Whether `frame` opens with the cluster keyring: runtime.ts admits a push-pull stream only then. */
  authenticateFrame(frame: Uint8Array): boolean {
    return this.o.sealer.open(frame) !== null;
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
  pki?: ReturnType<AgentAdmission['status']>;
}

/** Our own certificate is refused (code: the PkiError or admission code), or pki is off for `revoke`. */
export class PkiAdmissionError extends OverlayError {
  constructor(readonly reason: string) {
    super('OVL_ERR_AGENT_PKI', reason === 'pki_off' ? 'this agent runs without pki' : `this node's certificate is refused: ${reason}`);
  }
}
