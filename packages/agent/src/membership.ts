/**
 * SWIM membership with the Lifeguard extensions, as a state machine over an injected clock and
 * message sink (no I/O here).
 *
 * - Probing (membership-probe.ts): round-robin over a shuffled member list; direct ping, then after the probe timeout
 *   indirect pings through `indirectChecks` random members, who answer ack or, Lifeguard, nack
 *   when the target stayed silent (so the requester can tell "target down" from "I am slow").
 * - Local health awareness (Lifeguard LHA): a score 0..max-1; probe interval and timeout are
 *   scaled by (score+1). Missed nacks and failed probes raise it, successful probes lower it,
 *   having to refute a suspicion about ourselves raises it.
 * - Suspicion (Lifeguard dynamic suspicion): timeout starts at max and shrinks towards min with
 *   each independent confirmation (a suspect message from another member), logarithmically.
 *   With `confirmationProbes`, members hearing a suspicion probe the suspect at once (about k+1
 *   of them), so confirmations of a real failure arrive within one probe, not one probe pass.
 *   A probe of a suspect carries the suspicion (buddy system), so a live suspect refutes at once.
 * - Incarnation refutation: a member suspected or declared dead at its current incarnation
 *   broadcasts alive with a higher one. A restarted node starts at 0 and refutes its own old
 *   death as soon as it hears of it (through the seed's push-pull), rejoining at a higher number.
 *
 * Single-threaded: all methods run on the owner's event loop.
 */
import type { Addr } from './env.js';
import type { AliveMsg, DeadMsg, Message, NodeMeta, SuspectMsg } from './wire.js';
import { encodeMessageField } from './wire.js';
import { type MembershipConfig, suspicionTimeoutMs } from './presets.js';
import { MAX_NAME_LEN } from './wire.js';
import { type MembershipCounters, createMembershipCounters } from './counters.js';
import { Prober, type ProbeHost } from './membership-probe.js';
import { ANSWER_EVERY_MS, AnswerLimiter, DEFAULT_MAX_MEMBERS, LEAVE_DIRECT_MAX, lifeguardTimeout, metaEqual, snapshot, type Member, type MemberRec, type MembershipDeps, type MemberState } from './membership-types.js';

export type { Member, MemberState, MembershipEvents, MembershipDeps } from './membership-types.js';
export { DEFAULT_MAX_MEMBERS, metaEqual } from './membership-types.js';


export class Membership {
  readonly name: string;
  incarnation = 0;
  /** Lifeguard local health score, 0..awarenessMaxMultiplier-1. */
  awareness = 0;
  /** Probes, nacks, refutations, suspicions, deaths declared, unusable alive entries (counters.ts). */
  readonly counters: MembershipCounters = createMembershipCounters();

  private readonly members = new Map<string, MemberRec>();
  /** Same members as an array, for O(1) random picks. */
  private readonly list: MemberRec[] = [];
  /** Probe rounds, pending acks, answers to pings (membership-probe.ts). */
  private readonly prober: Prober;
  /** Members we hold suspect (with a suspicion timer). */
  private readonly suspects = new Set<MemberRec>();
  /** Address → clock time we last sent our alive straight to it (answer()). */
  private readonly answered = new AnswerLimiter(ANSWER_EVERY_MS);
  private running = false;
  private leaving = false;
  private readonly d: MembershipDeps;
  private self: MemberRec;

  constructor(deps: MembershipDeps) {
    this.d = deps;
    this.name = deps.self.name;
    this.self = { ...deps.self, incarnation: 0, state: 'alive', since: deps.clock.now() };
    this.insert(this.self);
    const host: ProbeHost = {
      name: this.name,
      d: deps,
      counters: this.counters,
      self: this.self,
      list: this.list,
      suspects: this.suspects,
      running: () => this.running,
      current: (m) => this.members.get(m.name) === m,
      aliveCount: () => this.live,
      scale: (ms) => this.scale(ms),
      awareness: (delta) => this.applyAwareness(delta),
      helpers: (k, target) => this.pickRandom(k, (m) => m !== target && m.state === 'alive'),
      failed: (t) => this.suspect({ name: t.name, incarnation: t.incarnation, from: this.name }),
    };
    this.prober = new Prober(host);
  }

  get config(): MembershipConfig {
    return this.d.config;
  }

  /** Number of members not dead or left, self included. */
  aliveCount(): number {
    return this.live;
  }
  /** Members alive or suspect, self included; kept incrementally (read per packet). */
  private live = 0;
  get(name: string): Member | undefined {
    const m = this.members.get(name);
    return m && snapshot(m);
  }
  /** Live reference for hot internal checks; do not mutate. */
  stateOf(name: string): MemberState | undefined {
    return this.members.get(name)?.state;
  }
  metaOf(name: string): NodeMeta | undefined {
    return this.members.get(name)?.meta;
  }
  all(): Member[] {
    return this.list.map(snapshot);
  }
  selfAlive(): AliveMsg {
    return { name: this.name, incarnation: this.incarnation, ip: this.self.ip, port: this.self.port, meta: this.self.meta };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.prober.start();
  }

  stop(): void {
    this.running = false;
    this.prober.stop();
    for (const m of this.list) if (m.suspicion) this.clearSuspicion(m);
  }

  /** Addresses of the live members (alive or suspect, not us): all of them up to `max`, else `max` picked at random. */
  liveAddrs(max: number): { ip: string; port: number }[] {
    const live = (x: MemberRec) => x !== this.self && (x.state === 'alive' || x.state === 'suspect');
    const all = this.list.filter(live);
    return (all.length <= max ? all : this.pickRandom(max, live)).map((m) => ({ ip: m.ip, port: m.port }));
  }

  /** Broadcast our own graceful leave. The caller lets gossip carry it, then stops. */
  leave(): void {
    if (this.leaving) return; // a second call must not count self out of `live` twice
    this.leaving = true;
    const dead: DeadMsg = { name: this.name, incarnation: this.incarnation, from: this.name };
    this.self.state = 'left';
    this.live--;
    const field = encodeMessageField({ dead });
    // Gossip alone picks random targets, recently dead ones included: a live member could miss
    // the leave, find us gone by probing and hold us as dead. So tell live members straight away
    // (at most LEAVE_DIRECT_MAX; in a larger cluster gossip carries it to the rest). Sent before
    // it is queued, so these packets do not carry it twice or spend its gossip budget.
    for (const to of this.liveAddrs(LEAVE_DIRECT_MAX)) this.d.send(to, [field]);
    this.d.broadcast(`n:${this.name}`, field);
  }

  /** Scale a timeout by local health (Lifeguard). */
  scale(ms: number): number {
    return ms * (this.awareness + 1);
  }
  private applyAwareness(delta: number): void {
    const max = this.d.config.awarenessMaxMultiplier - 1;
    this.awareness = Math.max(0, Math.min(max, this.awareness + delta));
  }

  /** Announce ourselves (after start or meta change). */
  announce(): void {
    this.d.broadcast(`n:${this.name}`, encodeMessageField({ alive: this.selfAlive() }));
  }

  /** Change our advertised meta: bumps incarnation so it wins everywhere. */
  setMeta(meta: NodeMeta): void {
    this.self.meta = meta;
    this.incarnation++;
    this.self.incarnation = this.incarnation;
    this.announce();
  }

  private pickRandom(k: number, ok: (m: MemberRec) => boolean): MemberRec[] {
    const out: MemberRec[] = [];
    const n = this.list.length;
    for (let tries = 0; tries < 3 * n && out.length < k; tries++) {
      const m = this.list[Math.floor(this.d.random() * n)];
      if (m === this.self || !ok(m) || out.includes(m)) continue;
      out.push(m);
    }
    return out;
  }

  /** Members to gossip to this round: alive/suspect, or dead within gossipToTheDead. */
  gossipTargets(): Addr[] {
    const now = this.d.clock.now();
    const dtd = this.d.config.gossipToTheDeadMs;
    return this.pickRandom(this.d.config.gossipNodes, (m) => m.state === 'alive' || m.state === 'suspect' || now - m.since < dtd).map((m) => ({ ip: m.ip, port: m.port }));
  }

  /** A random member declared dead (not left), for reconnect attempts after a partition. */
  randomDead(): Member | undefined {
    const m = this.pickRandom(1, (x) => x.state === 'dead')[0];
    return m && snapshot(m);
  }

  /** A random live member for push-pull. */
  randomLive(): Member | undefined {
    const m = this.pickRandom(1, (x) => x.state === 'alive')[0];
    return m && snapshot(m);
  }

  // ---- incoming ----------------------------------------------------------------------------

  /** Handle one membership message from `from` (the datagram's source). */
  handle(from: Addr, m: Message): void {
    if ('ping' in m) this.prober.onPing(from, m.ping);
    else if ('indirectPing' in m) this.prober.onIndirectPing(from, m.indirectPing);
    else if ('ack' in m) this.prober.ack(m.ack.seqNo);
    else if ('nack' in m) this.prober.nack(m.nack.seqNo);
    else if ('alive' in m) this.alive(m.alive);
    else if ('suspect' in m) {
      this.suspect(m.suspect);
      if (m.suspect.name === this.name) this.answer(from);
    } else if ('dead' in m) {
      this.dead(m.dead);
      if (m.dead.name === this.name) this.answer(from);
    }
  }

  /**
   * Whoever sent us a suspicion or death of ours (the accuser, a confirmer's probe, or a member
   * still gossiping it) holds that view: send it our alive straight away rather than only into
   * gossip, whose few retransmissions can all miss one member on a lossy path. Once per address
   * per ANSWER_EVERY_MS; stale news (an incarnation we already refuted) is answered too.
   */
  private answer(to: Addr): void {
    if (this.leaving || !this.running) return;
    if (!this.answered.allow(to, this.d.clock.now())) return;
    this.counters.add(this.counters.at.alive_sent_direct);
    this.d.send(to, [encodeMessageField({ alive: this.selfAlive() })]);
  }

  /** Apply an alive message (also used for push-pull merges). */
  alive(a: AliveMsg, bootstrap = false): void {
    if (!this.usable(a)) return;
    if (a.name === this.name) {
      if (this.leaving) return;
      // Someone holds a newer or different view of us (we restarted): refute with a higher number.
      if (a.incarnation > this.incarnation || (a.incarnation === this.incarnation && (a.ip !== this.self.ip || a.port !== this.self.port))) {
        this.refute(a.incarnation);
      }
      return;
    }
    const cur = this.members.get(a.name);
    if (!cur && !this.room()) return;
    if (this.d.acceptMeta && !this.d.acceptMeta(a.name, a.meta, cur?.meta)) return;
    const now = this.d.clock.now();
    if (!cur) {
      const m: MemberRec = { name: a.name, ip: a.ip, port: a.port, incarnation: a.incarnation, state: 'alive', since: now, meta: a.meta };
      this.insert(m);
      this.prober.added(m);
      if (!bootstrap) this.d.broadcast(`n:${a.name}`, encodeMessageField({ alive: a }));
      this.d.events?.onJoin?.(snapshot(m));
      return;
    }
    if (a.incarnation <= cur.incarnation) return;
    const wasLive = cur.state === 'alive' || cur.state === 'suspect';
    const changed = cur.ip !== a.ip || cur.port !== a.port || !metaEqual(cur.meta, a.meta);
    const wasSuspect = cur.state === 'suspect';
    this.clearSuspicion(cur);
    cur.incarnation = a.incarnation;
    cur.ip = a.ip;
    cur.port = a.port;
    cur.meta = a.meta;
    if (cur.state !== 'alive') {
      cur.state = 'alive';
      cur.since = now;
      if (!wasLive) this.live++;
    }
    this.d.broadcast(`n:${a.name}`, encodeMessageField({ alive: a }));
    if (!wasLive) this.d.events?.onJoin?.(snapshot(cur));
    else if (changed || wasSuspect) this.d.events?.onUpdate?.(snapshot(cur));
  }

  /** Whether `a` can name a member; a counted drop when not. */
  private usable(a: AliveMsg): boolean {
    if (a.name !== '' && a.name.length <= MAX_NAME_LEN && a.ip !== '' && a.port > 0 && a.port <= 65535) return true;
    this.counters.add(this.counters.at.bad_alive);
    return false;
  }

  /** Whether one more member fits under the cap; a counted refusal when not. */
  private room(): boolean {
    if (this.members.size < (this.d.maxMembers ?? DEFAULT_MAX_MEMBERS)) return true;
    this.counters.add(this.counters.at.members_refused);
    return false;
  }

  private refute(incarnation: number): void {
    this.incarnation = Math.max(this.incarnation, incarnation) + 1;
    this.self.incarnation = this.incarnation;
    this.counters.add(this.counters.at.refutations);
    this.applyAwareness(1);
    this.announce();
  }

  /**
   * Apply a suspicion. `echo`: it came from a push-pull peer's table, not from a failed probe, so it
   * starts a local suspicion (and a confirmation probe) but is neither gossiped as ours nor counted
   * as a confirmation: only members whose own probe failed confirm.
   */
  suspect(s: SuspectMsg, echo = false): void {
    const cur = this.members.get(s.name);
    if (!cur || s.incarnation < cur.incarnation) return;
    if (s.name === this.name) {
      if (!this.leaving) this.refute(s.incarnation);
      return;
    }
    if (cur.state === 'dead' || cur.state === 'left') return;
    if (cur.state === 'suspect') {
      if (echo) return;
      const sp = cur.suspicion;
      // An independent confirmation shortens the timeout (Lifeguard); re-gossip only new ones.
      if (sp && s.incarnation === cur.incarnation && !sp.from.has(s.from)) {
        sp.from.add(s.from);
        this.rearmSuspicion(cur);
        this.d.broadcast(`n:${s.name}`, encodeMessageField({ suspect: s }));
      }
      return;
    }
    const now = this.d.clock.now();
    cur.incarnation = s.incarnation;
    cur.state = 'suspect';
    cur.since = now;
    this.counters.add(this.counters.at.suspicions);
    const n = this.aliveCount();
    // Expect suspicionConfirmations, none in clusters too small to provide them.
    const want = this.d.config.suspicionConfirmations;
    const k = n - 2 < want ? 0 : want;
    const min = suspicionTimeoutMs(this.d.config, n);
    const max = this.d.config.suspicionMaxTimeoutMult * min;
    cur.suspicion = { from: new Set([s.from]), k, min, max, start: now, timer: null, probed: false, ours: s.from === this.name && !echo };
    this.suspects.add(cur);
    this.rearmSuspicion(cur);
    if (!echo) this.d.broadcast(`n:${s.name}`, encodeMessageField({ suspect: s }));
    this.d.events?.onSuspect?.(snapshot(cur));
    // Confirmation probe: someone else suspects it, so check it ourselves now rather than when
    // our round-robin gets there; a failure is the independent confirmation Lifeguard counts.
    // Each member does so with probability (k+1)/(N-2), so about k+1 extra probes per suspicion.
    if (this.d.config.confirmationProbes && (echo || s.from !== this.name) && this.running && k > 0 && this.d.random() * Math.max(1, n - 2) < k + 1) {
      this.prober.probe(cur, this.scale(this.d.config.probeIntervalMs));
    }
  }

  /** (Re)start the suspicion timer at Lifeguard's timeout for the confirmations so far. */
  private rearmSuspicion(m: MemberRec): void {
    const sp = m.suspicion!;
    if (sp.timer) this.d.clock.clearTimeout(sp.timer);
    const due = sp.start + lifeguardTimeout(sp);
    const inc = m.incarnation;
    const expire = () => {
      if (m.suspicion !== sp || m.state !== 'suspect' || m.incarnation !== inc || this.members.get(m.name) !== m) return;
      const interval = this.scale(this.d.config.probeIntervalMs);
      if (m.heardAt !== undefined && m.heardAt >= sp.start) {
        // It answered one of our probes after the suspicion began: alive, only its refutation has
        // not reached us. Suspect it afresh (max timeout, no confirmations) and tell it by probe.
        this.counters.add(this.counters.at.deaths_held);
        sp.start = this.d.clock.now();
        sp.from = new Set([this.name]);
        this.rearmSuspicion(m);
        if (this.running) this.prober.probe(m, interval);
        return;
      }
      // Our own failed probe counts as the look once k others confirmed it (a real failure: no delay).
      const confirmed = sp.ours && sp.from.size - 1 >= sp.k;
      if (!sp.probed && !confirmed && this.running) {
        // We only heard of this suspicion: look ourselves before declaring (one probe, carrying
        // the suspicion), and decide once its verdict is in. A refutation that gossip lost comes
        // back with the ack or as the suspect's direct answer.
        this.prober.probe(m, interval);
        const verdict = this.scale(this.d.config.probeTimeoutMs) + Math.min(this.scale(this.d.config.indirectTimeoutMs), interval - this.scale(this.d.config.probeTimeoutMs));
        const again = this.d.clock.now() + verdict + 1;
        sp.timer = this.d.clock.setTimeout(() => {
          sp.timer = null;
          this.prober.afterIo(again, expire);
        }, verdict + 1);
        return;
      }
      this.dead({ name: m.name, incarnation: inc, from: this.name });
    };
    sp.timer = this.d.clock.setTimeout(() => {
      sp.timer = null;
      this.prober.afterIo(due, expire);
    }, Math.max(0, due - this.d.clock.now()));
  }

  private clearSuspicion(m: MemberRec): void {
    if (m.suspicion?.timer) this.d.clock.clearTimeout(m.suspicion.timer);
    m.suspicion = undefined;
    this.suspects.delete(m);
  }

  dead(d: DeadMsg): void {
    const cur = this.members.get(d.name);
    if (!cur || d.incarnation < cur.incarnation) return;
    if (cur.state === 'left') return;
    if (cur.state === 'dead') {
      // Its own leave, after we found it gone: it left, it did not fail. Pass the correction on.
      if (d.from !== d.name) return;
      cur.state = 'left';
      cur.incarnation = d.incarnation;
      this.d.broadcast(`n:${d.name}`, encodeMessageField({ dead: d }));
      return;
    }
    if (d.name === this.name) {
      if (!this.leaving) this.refute(d.incarnation);
      return;
    }
    this.clearSuspicion(cur);
    cur.incarnation = d.incarnation;
    cur.state = d.from === d.name ? 'left' : 'dead';
    this.live--;
    cur.since = this.d.clock.now();
    if (cur.state === 'dead') this.counters.add(this.counters.at.declared_dead);
    this.d.broadcast(`n:${d.name}`, encodeMessageField({ dead: d }));
    this.d.events?.onLeave?.(snapshot(cur));
  }

  /**
   * Merge one member from a push-pull peer. Remote "dead" is only a suspicion here (memberlist's
   * rule): we must see it fail ourselves or hear a dead broadcast; "left" is taken as is.
   */
  merge(a: AliveMsg, state: number, bootstrap = false): void {
    switch (state) {
      case 0:
        this.alive(a, bootstrap);
        break;
      case 3:
        if (!this.members.has(a.name) && a.name !== this.name) return this.learnGone(a, 'left');
        this.dead({ name: a.name, incarnation: a.incarnation, from: a.name });
        break;
      default:
        if (!this.members.has(a.name) && a.name !== this.name) {
          // Unknown here: remember it as dead (no event), so its records can be verified and
          // tables stay identical across the cluster; it comes alive with a higher incarnation.
          if (state === 2) return this.learnGone(a, 'dead');
          return this.alive(a, true);
        }
        this.suspect({ name: a.name, incarnation: a.incarnation, from: this.name }, true);
    }
  }

  private learnGone(a: AliveMsg, state: 'dead' | 'left'): void {
    if (!this.usable(a) || !this.room()) return;
    if (this.d.acceptMeta && !this.d.acceptMeta(a.name, a.meta, undefined)) return;
    this.insert({ name: a.name, ip: a.ip, port: a.port, incarnation: a.incarnation, state, since: this.d.clock.now(), meta: a.meta });
  }

  /** Remove members dead/left for longer than `olderThanMs`. Returns removed names. */
  reap(olderThanMs: number): string[] {
    const now = this.d.clock.now();
    const out: string[] = [];
    for (let i = this.list.length - 1; i >= 0; i--) {
      const m = this.list[i];
      if ((m.state === 'dead' || m.state === 'left') && now - m.since > olderThanMs) {
        this.members.delete(m.name);
        this.list[i] = this.list[this.list.length - 1];
        this.list.pop();
        out.push(m.name);
      }
    }
    return out;
  }

  private insert(m: MemberRec): void {
    if (m.state === 'alive' || m.state === 'suspect') this.live++;
    this.members.set(m.name, m);
    this.list.push(m);
  }
}

