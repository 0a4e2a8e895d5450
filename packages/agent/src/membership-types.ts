/**
 * Membership's types and pure helpers (membership.ts holds the state machine): members as the
 * embedder sees them, the internal record with its Lifeguard suspicion, the suspicion timeout,
 * and the rate limit on answering suspicions of ourselves.
 */
import type { Addr, Clock, TimerHandle } from './env.js';
import type { NodeMeta } from './wire.js';
import type { MembershipConfig } from './presets.js';

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** A member as this node sees it. Returned copies are snapshots. */
export interface Member {
  name: string;
  ip: string;
  port: number;
  incarnation: number;
  state: MemberState;
  /** Clock time of the last state change. */
  since: number;
  meta: NodeMeta;
}

/**
 * Membership events for embedders. Called synchronously on the agent's event loop right after
 * the state changed; must not block and must not call back into the agent re-entrantly (queue
 * work instead). `member` is a snapshot the callee may keep.
 */
export interface MembershipEvents {
  onJoin?(member: Member): void;
  /** Declared dead (state 'dead') or left gracefully ('left'). */
  onLeave?(member: Member): void;
  /** Meta or address changed, or suspicion was refuted. */
  onUpdate?(member: Member): void;
  onSuspect?(member: Member): void;
}

export interface MembershipDeps {
  self: { name: string; ip: string; port: number; meta: NodeMeta };
  config: MembershipConfig;
  clock: Clock;
  random: () => number;
  /** Send encoded message fields to one address (the agent adds piggyback and seals). */
  send(to: Addr, fields: Uint8Array[]): void;
  /** Queue a broadcast about `key`, replacing older news about it. */
  broadcast(key: string, field: Uint8Array): void;
  events?: MembershipEvents;
  /** Reliable (TCP) ping used in parallel with indirect probes; resolves true if answered. */
  streamPing?(to: Addr, target: string, timeoutMs: number, done: (ok: boolean) => void): void;
  /** Accept (true) or reject a new/changed meta, e.g. a changed signing key. */
  acceptMeta?(name: string, meta: NodeMeta, previous: NodeMeta | undefined): boolean;
  /** Members kept at most (any state, self included); default DEFAULT_MAX_MEMBERS. */
  maxMembers?: number;
}

/**
 * Cap on members one node keeps, whatever their state (dead and left ones stay until reaped).
 * Anyone holding the cluster key can announce names; without a cap they grow our state, probe
 * list and push-pull replies without bound. 10 000 is several times the largest clusters SWIM
 * deployments run, and its push-pull state (about 150 bytes a member) is ~1.5 MB, well inside
 * the exchange cap. A name beyond the cap is refused and counted (members_refused); members we
 * already know are updated as always, and reaping makes room again.
 */
export const DEFAULT_MAX_MEMBERS = 10_000;

export interface Suspicion {
  from: Set<string>;
  k: number;
  min: number;
  max: number;
  start: number;
  timer: TimerHandle;
  /** We probed the suspect ourselves since the suspicion began. */
  probed: boolean;
  /** The suspicion began with our own failed probe. */
  ours: boolean;
}

export interface MemberRec extends Member {
  suspicion?: Suspicion;
  /** Clock time this member last answered one of our probes (directly, through a helper or TCP). */
  heardAt?: number;
}

/** A timer that fires this much after its time found the event loop stalled: decide after I/O. */
export const STALL_MS = 100;
/** A graceful leave is sent straight to this many live members (gossip carries it further). */
export const LEAVE_DIRECT_MAX = 64;
/** At most one direct alive to one address this often (answers to suspicions of us). */
export const ANSWER_EVERY_MS = 250;

export interface AckWait {
  onAck: () => void;
  onNack?: () => void;
  timer: TimerHandle;
}

/** Lifeguard: timeout = max − (max − min)·log(C+1)/log(k+1), floored at min; C = confirmations. */
export function lifeguardTimeout(sp: Suspicion): number {
  const c = sp.from.size - 1; // the first suspecter is not a confirmation
  const frac = sp.k > 0 ? Math.log(c + 1) / Math.log(sp.k + 1) : 1;
  return Math.max(sp.min, Math.floor(sp.max - frac * (sp.max - sp.min)));
}

/** At most one answer per address per `everyMs`, over at most `cap` addresses at once. */
export class AnswerLimiter {
  private readonly last = new Map<string, number>();
  constructor(
    private readonly everyMs: number,
    private readonly cap = 256,
  ) {}
  /** Whether an answer to `to` may go now; if so it is recorded. */
  allow(to: Addr, now: number): boolean {
    const key = `${to.ip}:${to.port}`;
    const t = this.last.get(key);
    if (t !== undefined && now - t < this.everyMs) return false;
    if (this.last.size >= this.cap) for (const [k, x] of this.last) if (now - x >= this.everyMs) this.last.delete(k);
    if (this.last.size >= this.cap) return false;
    this.last.set(key, now);
    return true;
  }
}

export function snapshot(m: MemberRec): Member {
  return { name: m.name, ip: m.ip, port: m.port, incarnation: m.incarnation, state: m.state, since: m.since, meta: m.meta };
}

export function metaEqual(a: NodeMeta, b: NodeMeta): boolean {
  return a.vtep === b.vtep && a.vtepPort === b.vtepPort && a.wgKey === b.wgKey && a.wgPort === b.wgPort && Buffer.compare(Buffer.from(a.signKey), Buffer.from(b.signKey)) === 0 && Buffer.compare(Buffer.from(a.cert ?? []), Buffer.from(b.cert ?? [])) === 0 && sameNetworks(a, b);
}

/** Same per-network gossip scope (networks-gossip.ts): a node joining a network changes its meta. */
function sameNetworks(a: NodeMeta, b: NodeMeta): boolean {
  if ((a.scoped ?? false) !== (b.scoped ?? false)) return false;
  const x = a.networks ?? [];
  const y = b.networks ?? [];
  return x.length === y.length && x.every((n, i) => n === y[i]);
}
