/**
 * The agent's broadcast queues and the one per-packet budget they share.
 *
 * Two classes of news ride the same packets: membership (alive/suspect/dead, keys "n:<node>") and
 * signed records (keys "r:<kind/network/id>"). memberlist gives membership first pick and user
 * messages what is left, so at ~1 000 nodes, where membership churn alone fills packets, records
 * starve. Here the classes share each packet by deficit round robin (Shreedhar & Varghese): while
 * both have news, each class earns `budget × weight / Σweights` bytes of credit per packet and
 * spends it on its items; credit it cannot spend yet (an item larger than its share) is kept, up
 * to one packet, so a large item goes out once enough has accumulated. Room a class cannot use
 * goes to the other (work-conserving), and a class with nothing queued earns nothing. So
 * neither class can starve the other: each gets at least its share of every packet it competes
 * for, whatever the other queues.
 *
 * Records are queued per network (one BroadcastQueue each; '' holds records gossiped to everyone),
 * so a packet to a member carries only records of networks that member joins (`accepts`), and a
 * record's retransmit budget follows its network's size (`sizeOf`), not the cluster's.
 *
 * take() allocates nothing but the caller's `out` growth. Single-threaded; owned by one agent.
 */
import { BroadcastQueue, type QueuedBroadcast } from './broadcast.js';

export const MEMBERS_CLASS = 0;
export const RECORDS_CLASS = 1;

export interface GossipQueuesOptions {
  retransmitMult: number;
  /** Weights of membership and records in each packet's budget; default [1, 1]. */
  weights?: readonly [number, number];
}

/** Which networks' records a destination takes (null: every network) and each network's size. */
export interface RecordScope {
  accepts(network: string): boolean;
  sizeOf(network: string, clusterSize: number): number;
}

const EVERYONE: RecordScope = { accepts: () => true, sizeOf: (_n, size) => size };
/** Below this many bytes of room a packet is full (the smallest field is larger). */
const MIN_ROOM = 16;

export class GossipQueues {
  readonly members: BroadcastQueue;
  private readonly nets = new Map<string, BroadcastQueue>();
  private readonly netList: BroadcastQueue[] = [];
  private readonly netNames: string[] = [];
  private readonly quantum: [number, number];
  /** DRR credit per class, in bytes. */
  private readonly deficit = [0, 0];
  /** Which class goes first in the next contended packet (alternates). */
  private first = 0;
  /** Where the next record pass starts among the networks (round robin). */
  private netStart = 0;
  /** Bytes taken per class (MEMBERS_CLASS, RECORDS_CLASS), for tests and status. */
  readonly taken = [0, 0];

  constructor(private readonly o: GossipQueuesOptions) {
    this.members = new BroadcastQueue(o.retransmitMult);
    const [wm, wr] = o.weights ?? [1, 1];
    if (!(wm > 0 && wr > 0)) throw new RangeError('gossip queue weights must be positive');
    this.quantum = [wm / (wm + wr), wr / (wm + wr)];
  }

  /** Items queued in both classes. */
  get size(): number {
    let n = this.members.size;
    for (const q of this.netList) n += q.size;
    return n;
  }

  /** Records queued for `network` ('' = cluster-wide). */
  recordsQueued(network: string): number {
    return this.nets.get(network)?.size ?? 0;
  }

  /** Networks that have records queued (allocates; once per gossip round). */
  networksWithNews(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.netList.length; i++) if (this.netList[i].size > 0) out.push(this.netNames[i]);
    return out;
  }

  /** Queue membership news (membership.ts's broadcast) or, with `network`, a record. */
  queue(key: string, bytes: Uint8Array, network?: string): void {
    if (network === undefined) this.members.queue(key, bytes);
    else this.net(network).queue(key, bytes);
  }

  /** Drop news about `key` (from `network`'s records only, when given). */
  drop(key: string, network?: string): void {
    if (network !== undefined) return void this.nets.get(network)?.drop(key);
    this.members.drop(key);
    for (const q of this.netList) q.drop(key);
  }

  /** Snapshots of every queued item, membership first (tests and status); allocates. */
  peek(): QueuedBroadcast[] {
    const out = this.members.peek();
    for (const q of this.netList) out.push(...q.peek());
    return out;
  }

  private net(network: string): BroadcastQueue {
    let q = this.nets.get(network);
    if (!q) {
      q = new BroadcastQueue(this.o.retransmitMult);
      this.nets.set(network, q);
      this.netList.push(q);
      this.netNames.push(network);
    }
    return q;
  }

  /**
   * Fill one packet: up to `budget` bytes of membership and record news for a destination whose
   * networks `scope` describes, `n` members in the cluster. Appends the fields to `out`.
   */
  take(budget: number, n: number, out: Uint8Array[] = [], scope: RecordScope = EVERYONE): Uint8Array[] {
    const hasM = this.members.size > 0;
    const hasR = this.hasRecords(scope);
    if (!hasM) this.deficit[MEMBERS_CLASS] = 0;
    if (!hasR) this.deficit[RECORDS_CLASS] = 0;
    if (!hasM && !hasR) return out;
    if (!hasR) {
      this.takeClass(MEMBERS_CLASS, budget, n, out, scope);
      return out;
    }
    if (!hasM) {
      this.takeClass(RECORDS_CLASS, budget, n, out, scope);
      return out;
    }
    // Both have news. Each class is taken once per packet (a second take would send an item
    // twice): the first gets the room the second cannot use of its credit, the second the rest.
    const a = this.first;
    const b = a ^ 1;
    this.first = b;
    const d = this.deficit;
    d[a] = Math.min(d[a] + budget * this.quantum[a], budget);
    d[b] = Math.min(d[b] + budget * this.quantum[b], budget);
    const reserved = Math.min(d[b], this.queuedBytes(b, scope));
    const usedA = this.takeClass(a, Math.max(Math.min(d[a], budget), budget - reserved), n, out, scope);
    d[a] = Math.max(0, d[a] - usedA);
    const usedB = this.takeClass(b, budget - usedA, n, out, scope);
    d[b] = Math.max(0, d[b] - usedB);
    return out;
  }

  private queuedBytes(c: number, scope: RecordScope): number {
    if (c === MEMBERS_CLASS) return this.members.bytes;
    let n = 0;
    for (let i = 0; i < this.netList.length; i++) if (scope.accepts(this.netNames[i])) n += this.netList[i].bytes;
    return n;
  }

  private hasRecords(scope: RecordScope): boolean {
    for (let i = 0; i < this.netList.length; i++) if (this.netList[i].size > 0 && scope.accepts(this.netNames[i])) return true;
    return false;
  }

  /** Take up to `room` bytes of one class; returns the bytes taken. */
  private takeClass(c: number, room: number, n: number, out: Uint8Array[], scope: RecordScope): number {
    if (room < MIN_ROOM) return 0;
    const start = out.length;
    if (c === MEMBERS_CLASS) this.members.take(room, n, out);
    else {
      const k = this.netList.length;
      let left = room;
      for (let j = 0; j < k && left >= MIN_ROOM; j++) {
        const i = (this.netStart + j) % k;
        const q = this.netList[i];
        if (q.size === 0 || !scope.accepts(this.netNames[i])) continue;
        const before = out.length;
        q.take(left, scope.sizeOf(this.netNames[i], n), out);
        for (let x = before; x < out.length; x++) left -= out[x].length;
      }
      this.netStart = k > 0 ? (this.netStart + 1) % k : 0;
    }
    let used = 0;
    for (let x = start; x < out.length; x++) used += out[x].length;
    this.taken[c] += used;
    return used;
  }
}
