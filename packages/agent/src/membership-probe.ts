/**
 * SWIM probing for Membership (membership.ts keeps the member states and suspicions): the probe
 * round over a shuffled member list, a probe's direct ping then indirect pings (and the TCP
 * fallback), pending acks, and the answers we owe others' pings and indirect pings.
 *
 * The verdict goes back to Membership: `failed(target)` when nobody heard the target, and the
 * Lifeguard awareness adjustments (a nack missing, an ack received) through `awareness`.
 */
import type { Addr, TimerHandle } from './env.js';
import type { IndirectPingMsg, PingMsg } from './wire.js';
import { encodeMessageField } from './wire.js';
import type { MembershipCounters } from './counters.js';
import { STALL_MS, type AckWait, type MemberRec, type MembershipDeps } from './membership-types.js';

/** What the prober needs from Membership. */
export interface ProbeHost {
  readonly name: string;
  readonly d: MembershipDeps;
  readonly counters: MembershipCounters;
  readonly self: MemberRec;
  /** Every member, self included, in insertion order. */
  readonly list: readonly MemberRec[];
  /** Members held suspect. */
  readonly suspects: ReadonlySet<MemberRec>;
  running(): boolean;
  /** Still the record Membership holds for its name (not replaced or reaped). */
  current(m: MemberRec): boolean;
  aliveCount(): number;
  /** Scale a timeout by local health (Lifeguard). */
  scale(ms: number): number;
  /** Raise (+) or lower (−) the local health score. */
  awareness(delta: number): void;
  /** Up to k random live members other than `target`, to ask for indirect pings. */
  helpers(k: number, target: MemberRec): MemberRec[];
  /** Nobody heard `target` within the probe's time. */
  failed(target: MemberRec): void;
}

export class Prober {
  private probeOrder: MemberRec[] = [];
  private probeIndex = 0;
  private seq = 0;
  /** Probes and indirect pings waiting for an ack, by sequence number. */
  readonly acks = new Map<number, AckWait>();
  private probeTimer: TimerHandle | null = null;

  constructor(private readonly h: ProbeHost) {}

  start(): void {
    this.schedule(this.h.d.random() * this.h.d.config.probeIntervalMs);
  }

  stop(): void {
    if (this.probeTimer) this.h.d.clock.clearTimeout(this.probeTimer);
    this.probeTimer = null;
    for (const w of this.acks.values()) this.h.d.clock.clearTimeout(w.timer);
    this.acks.clear();
  }

  /** A member new to us: at a random place of the rest of this pass, so it is probed soon. */
  added(m: MemberRec): void {
    const pos = Math.floor(this.h.d.random() * (this.probeOrder.length - this.probeIndex + 1)) + this.probeIndex;
    this.probeOrder.splice(pos, 0, m);
  }

  ack(seqNo: number): void {
    this.acks.get(seqNo)?.onAck();
  }

  nack(seqNo: number): void {
    this.acks.get(seqNo)?.onNack?.();
  }

  /** Run `fn` now, or, when its timer fired late (event loop stalled), after pending I/O is read. */
  afterIo(due: number, fn: () => void): void {
    if (this.h.d.clock.now() - due > STALL_MS) this.h.d.clock.setTimeout(fn, 0);
    else fn();
  }

  private schedule(delay: number): void {
    if (!this.h.running()) return;
    this.probeTimer = this.h.d.clock.setTimeout(() => this.round(), delay);
  }

  private round(): void {
    this.probeTimer = null;
    if (!this.h.running()) return;
    const interval = this.h.scale(this.h.d.config.probeIntervalMs);
    const target = this.suspectToProbe() ?? this.nextTarget();
    if (target) this.probe(target, interval);
    this.schedule(interval);
  }

  private nextTarget(): MemberRec | null {
    for (let tries = 0; tries < 2; tries++) {
      while (this.probeIndex < this.probeOrder.length) {
        const m = this.probeOrder[this.probeIndex++];
        if (m !== this.h.self && this.h.current(m) && (m.state === 'alive' || m.state === 'suspect')) return m;
      }
      // Reshuffle once per pass over the members (SWIM's round-robin with random order).
      this.probeOrder = this.h.list.slice();
      for (let i = this.probeOrder.length - 1; i > 0; i--) {
        const j = Math.floor(this.h.d.random() * (i + 1));
        const t = this.probeOrder[i];
        this.probeOrder[i] = this.probeOrder[j];
        this.probeOrder[j] = t;
      }
      this.probeIndex = 0;
    }
    return null;
  }

  /**
   * While we hold suspects, a probe round goes to one of them instead, with the confirmation
   * probes' probability (k+1)/(N−2): about k+1 probes a second reach a suspect cluster-wide, each
   * carrying the suspicion (buddy system), so a live suspect hears it again every second and a
   * dead one collects confirmations. The probe rate stays one per interval. Part of
   * `confirmationProbes` (off: the plain round-robin of WAN and LOCAL).
   */
  private suspectToProbe(): MemberRec | null {
    const { suspects, d } = this.h;
    if (suspects.size === 0 || !d.config.confirmationProbes) return null;
    const n = this.h.aliveCount();
    if (d.random() * Math.max(1, n - 2) >= d.config.suspicionConfirmations + 1) return null;
    let i = Math.floor(d.random() * suspects.size);
    for (const m of suspects) if (i-- === 0) return m;
    return null;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  /** One probe of `target`: ping, then indirect pings and the TCP ping, then the verdict. */
  probe(target: MemberRec, interval: number): void {
    const { d, counters } = this.h;
    counters.add(counters.at.probes);
    if (target.suspicion) target.suspicion.probed = true;
    const seqNo = this.nextSeq();
    const timeout = this.h.scale(d.config.probeTimeoutMs);
    let acked = false;
    let expectedNacks = 0;
    let nacks = 0;
    let finished = false;
    const clock = d.clock;
    const wait: AckWait = {
      onAck: () => {
        if (acked || finished) return;
        acked = true;
        // Done: forget the wait and its pending step (indirect probes or finish), which is the
        // only other place that would delete it — an acked probe must not stay in `acks`.
        this.acks.delete(seqNo);
        if (wait.timer !== null) clock.clearTimeout(wait.timer);
        wait.timer = null;
        target.heardAt = clock.now();
        this.h.awareness(-1);
      },
      onNack: () => {
        nacks++;
        counters.add(counters.at.nacks_received);
      },
      timer: null,
    };
    this.acks.set(seqNo, wait);
    const fields: Uint8Array[] = [];
    // Lifeguard's buddy system: a suspect hears it in the probe itself and refutes at once, rather
    // than waiting for gossip (whose retransmissions may all miss it) or the next push-pull. The
    // suspicion goes before the ping: the suspect refutes first, so its ack piggybacks the alive.
    if (target.state === 'suspect') fields.push(encodeMessageField({ suspect: { name: target.name, incarnation: target.incarnation, from: this.h.name } }));
    fields.push(encodeMessageField({ ping: { seqNo, target: target.name, replyIp: '', replyPort: 0 } }));
    d.send({ ip: target.ip, port: target.port }, fields);

    const indirect = () => {
      if (acked || !this.h.running()) return;
      const helpers = this.h.helpers(d.config.indirectChecks, target);
      counters.add(counters.at.indirect_probes, helpers.length);
      const req: IndirectPingMsg = { seqNo, target: target.name, targetIp: target.ip, targetPort: target.port, nack: true };
      const field = encodeMessageField({ indirectPing: req });
      for (const h of helpers) {
        expectedNacks++;
        d.send({ ip: h.ip, port: h.port }, [field]);
      }
      // The verdict comes indirectTimeoutMs after this, and never after the next probe is due.
      const window = Math.max(0, Math.min(this.h.scale(d.config.indirectTimeoutMs), interval - timeout));
      // memberlist's TCP fallback: a reliable ping survives UDP loss that kills the probes.
      if (d.streamPing) {
        d.streamPing({ ip: target.ip, port: target.port }, target.name, Math.max(1, window), (ok) => {
          if (ok) wait.onAck();
        });
      }
      const due = clock.now() + window;
      wait.timer = clock.setTimeout(() => this.afterIo(due, finish), window);
    };
    const finish = () => {
      finished = true;
      this.acks.delete(seqNo);
      if (acked || !this.h.running()) return;
      counters.add(counters.at.probes_failed);
      // Lifeguard: if helpers did not even nack, the problem may be us; otherwise nobody heard
      // the target, which is the case SWIM suspects on.
      if (expectedNacks > 0) {
        if (nacks < expectedNacks) this.h.awareness(expectedNacks - nacks);
      } else {
        this.h.awareness(1);
      }
      if (this.h.current(target) && (target.state === 'alive' || target.state === 'suspect')) this.h.failed(target);
    };
    wait.timer = clock.setTimeout(indirect, timeout);
  }

  /** Answer a ping with an ack (to the reply address an indirect ping asked for, if any). */
  onPing(from: Addr, p: PingMsg): void {
    if (p.target !== '' && p.target !== this.h.name) return; // meant for a previous owner of this address
    const to = p.replyIp ? { ip: p.replyIp, port: p.replyPort } : from;
    this.h.d.send(to, [encodeMessageField({ ack: { seqNo: p.seqNo } })]);
  }

  /** Ping the target for a requester; relay its ack, or nack in time when it stays silent. */
  onIndirectPing(from: Addr, r: IndirectPingMsg): void {
    const { d, counters } = this.h;
    const localSeq = this.nextSeq();
    let done = false;
    const clock = d.clock;
    const wait: AckWait = {
      onAck: () => {
        if (done) return;
        done = true;
        this.acks.delete(localSeq);
        clock.clearTimeout(wait.timer);
        d.send(from, [encodeMessageField({ ack: { seqNo: r.seqNo } })]);
      },
      timer: null,
    };
    this.acks.set(localSeq, wait);
    d.send({ ip: r.targetIp, port: r.targetPort }, [encodeMessageField({ ping: { seqNo: localSeq, target: r.target, replyIp: '', replyPort: 0 } })]);
    const timeout = d.config.probeTimeoutMs;
    // Nack at 80 % of the probe timeout so it arrives before the requester gives up.
    wait.timer = clock.setTimeout(() => {
      if (done) return;
      if (r.nack) {
        counters.add(counters.at.nacks_sent);
        d.send(from, [encodeMessageField({ nack: { seqNo: r.seqNo } })]);
      }
      wait.timer = clock.setTimeout(() => {
        done = true;
        this.acks.delete(localSeq);
      }, timeout * 0.2);
    }, timeout * 0.8);
  }
}
