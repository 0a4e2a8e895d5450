/**
 * The gossip EndpointStore: the agent's signed record table (records.ts) behind the store
 * interface, so code written against @overlay/store runs on gossip (the default), memory or etcd.
 *
 * - Keys: `endpoints/<net>/<node>/<id>` ↔ endpoint records (kind 1), `services/<net>/<node>/<id>`
 *   ↔ service instance records (kind 2); other areas are not carried by gossip (STORE_UNSUPPORTED).
 * - A key is present while its record is live (not a tombstone) and its owner is alive or suspect
 *   in membership: membership is the lease. An owner declared dead or gone takes its keys with it
 *   (delete events), as an etcd lease would; its return brings them back.
 * - Values are sealed signed records (`sealSigned` of @overlay/store): every value read here was
 *   verified by the table against its owner's key.
 * - Writes: only this node's own keys (the key's <node> is this agent). `put` takes a record sealed
 *   by this node, checks it names the key, and publishes its data: the agent signs a new version
 *   (above every version the cluster has seen), so the stored value is a newer signature of the
 *   same content. `delete` publishes a tombstone; compare-and-set compares against this node's own
 *   view (no one else writes these keys). Leases are local groups of keys: revoke deletes them; a
 *   lease never lapses while the agent lives (other nodes see a dead agent's keys go).
 * - Revisions are local: a counter of visible changes on this node. There is no history: a watch
 *   from a past revision starts with a `resync` (the current state), then live changes.
 *
 * Wiring: `const gs = new GossipStore({ cluster }); new Agent({ ..., events: gs.events(user) });
 * gs.attach(agent)`. Single-threaded; owned by one agent.
 */
import { type CasResult, type EndpointStore, type Expected, type KeyValue, type Lease, type ListResult, type PutOptions, type RecordCodec, type WatchEvent, type WatchOptions, Keys, MAX_VALUE_BYTES, StoreError, WatchQueue, checkKey, openSealed, parseKey, sealSigned } from '@overlay/store';
import type { Agent, AgentEvents } from './agent.js';
import { ENDPOINTS, ENDPOINT_KIND } from './endpoints.js';
import type { Member } from './membership.js';
import { type RecordKind, type SignedRecord, verifyRecord } from './records.js';
import { SERVICES, SERVICE_KIND } from './services.js';
import { allocateVips } from './services-vip.js';
import { decodeRecordBody } from './wire.js';

/** The agent's record body names its owner: the codec a VerifyingStore needs for agent records. */
export const agentRecordCodec: RecordCodec = {
  ownerOf(body: Uint8Array): string | undefined {
    try {
      const owner = decodeRecordBody(body).head.owner;
      return owner.length > 0 ? owner : undefined;
    } catch {
      return undefined;
    }
  },
};

const AREA_KIND: Record<string, RecordKind<unknown>> = { endpoints: ENDPOINTS as RecordKind<unknown>, services: SERVICES as RecordKind<unknown> };
const KIND_AREA = new Map<number, 'endpoints' | 'services'>([
  [ENDPOINT_KIND, 'endpoints'],
  [SERVICE_KIND, 'services'],
]);

export interface GossipStoreOptions {
  cluster: string;
  watchQueueLimit?: number;
}

interface Entry extends KeyValue {
  readonly owner: string;
  readonly sig: Uint8Array;
}

/** Counters of the gossip store (append-only names). */
export interface GossipStoreCounters {
  /** Records whose network, owner or id cannot be a key segment (not visible through the store). */
  unmapped_records: number;
  watch_overflows: number;
}

export class GossipStore implements EndpointStore {
  readonly kind = 'gossip';
  readonly keys: Keys;
  readonly counters: GossipStoreCounters = { unmapped_records: 0, watch_overflows: 0 };
  private agent: Agent | undefined;
  private readonly view = new Map<string, Entry>();
  private readonly watchers = new Set<{ prefix: string; queue: WatchQueue }>();
  private readonly leases = new Map<string, Set<string>>();
  private nextLease = 1;
  private rev = 0;
  private closed = false;

  constructor(private readonly o: GossipStoreOptions) {
    this.keys = new Keys(o.cluster);
  }

  /** Agent events that keep the store's view current, forwarding to `user`'s. */
  events(user?: AgentEvents): AgentEvents {
    const member = (m: Member) => this.ownerChanged(m.name);
    return {
      onJoin: (m) => (member(m), user?.onJoin?.(m)),
      onLeave: (m) => (member(m), user?.onLeave?.(m)),
      onUpdate: (m) => (member(m), user?.onUpdate?.(m)),
      onSuspect: (m) => (member(m), user?.onSuspect?.(m)),
      onRecord: (r) => (this.refresh(r), user?.onRecord?.(r)),
    };
  }

  /** Bind the agent whose `events` came from `events()`; loads what its table already holds. */
  attach(agent: Agent): this {
    this.agent = agent;
    for (const r of agent.table.records()) this.refresh(r);
    return this;
  }

  get revision(): number {
    return this.rev;
  }

  private live(): Agent {
    if (this.closed) throw StoreError.closed();
    if (!this.agent) throw new StoreError('STORE_CLOSED', 'gossip store not attached to an agent');
    return this.agent;
  }

  private keyOf(r: SignedRecord): string | undefined {
    const area = KIND_AREA.get(r.kind);
    if (!area) return undefined;
    try {
      return area === 'endpoints' ? this.keys.endpoint(r.network, r.owner, r.id) : this.keys.service(r.network, r.owner, r.id);
    } catch {
      this.counters.unmapped_records++;
      return undefined;
    }
  }

  private visible(r: SignedRecord): boolean {
    if (r.deleted) return false;
    const a = this.agent!;
    if (r.owner === a.name) return true;
    const st = a.membership.stateOf(r.owner);
    return st === 'alive' || st === 'suspect';
  }

  /** Bring one record's key in the view up to date (a change is one revision and one event). */
  private refresh(r: SignedRecord): void {
    if (!this.agent || this.closed) return;
    const key = this.keyOf(r);
    if (key === undefined) return;
    // The table holds the winner; a record handed to onRecord is the one just stored.
    const cur = this.view.get(key);
    if (this.visible(r)) {
      // The same signed version (the table may hold its own copy of the bytes): no change.
      if (cur && Buffer.compare(cur.sig, r.sig) === 0) return;
      const rev = ++this.rev;
      const value = sealSigned(r);
      const lease = cur?.lease;
      this.view.set(key, { key, value, revision: rev, createRevision: cur ? cur.createRevision : rev, lease, owner: r.owner, sig: r.sig });
      this.emit({ type: 'put', key, value, revision: rev });
    } else if (cur) {
      this.view.delete(key);
      if (cur.lease !== undefined) this.leases.get(cur.lease)?.delete(key);
      this.emit({ type: 'delete', key, revision: ++this.rev });
    }
  }

  private ownerChanged(owner: string): void {
    if (!this.agent || this.closed) return;
    for (const r of this.agent.table.records()) if (r.owner === owner) this.refresh(r);
  }

  private emit(ev: WatchEvent & { key: string }): void {
    for (const w of this.watchers) if (ev.key.startsWith(w.prefix)) w.queue.push(ev);
  }

  private snapshot(prefix: string): KeyValue[] {
    const out: KeyValue[] = [];
    for (const e of this.view.values()) if (e.key.startsWith(prefix)) out.push(this.kv(e));
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private kv(e: Entry): KeyValue {
    return { key: e.key, value: e.value, revision: e.revision, createRevision: e.createRevision, lease: e.lease };
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.live();
    const e = this.view.get(checkKey(key));
    return e && this.kv(e);
  }

  async list(prefix: string): Promise<ListResult> {
    this.live();
    return { entries: this.snapshot(checkKey(prefix, true)), revision: this.rev };
  }

  /** The record `key` names, when it is one of ours gossip can carry. */
  private ownKey(key: string): { kind: RecordKind<unknown>; network: string; id: string } {
    const a = this.live();
    checkKey(key);
    const p = parseKey(key);
    if (!p || p.cluster !== this.o.cluster) throw StoreError.badKey(key, `not a key of cluster ${this.o.cluster}`);
    const kind = AREA_KIND[p.area];
    if (!kind) throw new StoreError('STORE_UNSUPPORTED', `gossip carries endpoints and services, not ${p.area}`);
    if (p.owner !== a.name) throw new StoreError('STORE_UNSUPPORTED', `gossip writes only this node's keys (${a.name}), not ${p.owner}'s`);
    return { kind, network: p.parts[0], id: p.parts[2] };
  }

  async put(key: string, value: Uint8Array, opts: PutOptions = {}): Promise<number> {
    this.write(key, value, opts);
    return this.rev;
  }

  private write(key: string, value: Uint8Array, opts: PutOptions): void {
    const a = this.live();
    const k = this.ownKey(key);
    if (!(value instanceof Uint8Array)) throw new StoreError('STORE_BAD_RECORD', `${key}: value must be bytes`);
    if (value.length > MAX_VALUE_BYTES) throw new StoreError('STORE_VALUE_TOO_LARGE', `${key}: ${value.length} bytes > ${MAX_VALUE_BYTES}`);
    if (opts.lease !== undefined && !this.leases.has(opts.lease)) throw StoreError.leaseNotFound(opts.lease);
    const sealed = openSealed(value);
    const rec = sealed && a.table.open(sealed);
    if (!rec || rec.deleted || rec.data === undefined) throw new StoreError('STORE_BAD_RECORD', `${key}: not a sealed live record`);
    if (rec.owner !== a.name || rec.kind !== k.kind.code || rec.network !== k.network || rec.id !== k.id) throw new StoreError('STORE_BAD_RECORD', `${key}: the record names another key`);
    const pub = a.membership.metaOf(a.name)?.signKey;
    if (!pub || !verifyRecord(rec, pub)) throw new StoreError('STORE_BAD_RECORD', `${key}: not signed by this node`);
    a.publishRecord(k.kind, k.network, k.id, rec.data);
    const e = this.view.get(key);
    if (e) {
      if (e.lease !== undefined && e.lease !== opts.lease) this.leases.get(e.lease)?.delete(key);
      if (opts.lease !== undefined) this.leases.get(opts.lease)!.add(key);
      this.view.set(key, { ...e, lease: opts.lease });
    }
  }

  async compareAndSet(key: string, expected: Expected, value: Uint8Array, opts: PutOptions = {}): Promise<CasResult> {
    this.ownKey(key);
    const cur = this.view.get(key);
    const ok = expected === 'absent' ? cur === undefined : cur !== undefined && cur.revision === expected;
    if (!ok) return { ok: false, revision: this.rev, current: cur && this.kv(cur) };
    this.write(key, value, opts);
    return { ok: true, revision: this.rev };
  }

  async delete(key: string): Promise<boolean> {
    const k = this.ownKey(key);
    if (!this.view.has(key)) return false;
    return this.agent!.unpublishRecord(k.kind.code, k.network, k.id);
  }

  watch(prefix: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    if (this.closed) throw StoreError.closed();
    checkKey(prefix, true);
    const w = {
      prefix,
      queue: new WatchQueue(
        () => this.watchers.delete(w),
        () => {
          this.counters.watch_overflows++;
          w.queue.push({ type: 'resync', entries: this.snapshot(prefix), revision: this.rev });
        },
        this.o.watchQueueLimit,
        opts.signal,
      ),
    };
    if (w.queue.closed) return w.queue;
    if (opts.fromRevision !== undefined && opts.fromRevision < this.rev) w.queue.push({ type: 'resync', entries: this.snapshot(prefix), revision: this.rev });
    this.watchers.add(w);
    return w.queue;
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.live();
    const id = (this.nextLease++).toString(16);
    this.leases.set(id, new Set());
    return { id, ttlMs };
  }

  async keepAlive(lease: string): Promise<boolean> {
    this.live();
    return this.leases.has(lease);
  }

  async revokeLease(lease: string): Promise<boolean> {
    const a = this.live();
    const ks = this.leases.get(lease);
    if (!ks) return false;
    this.leases.delete(lease);
    for (const key of [...ks].sort()) {
      const p = parseKey(key)!;
      a.unpublishRecord(AREA_KIND[p.area].code, p.parts[0], p.parts[2]);
    }
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watchers]) w.queue.end();
  }
}

/**
 * VIP allocation in gossip mode: no compare-and-set, so the agent's deterministic rule
 * (services-vip.ts `allocateVips`) decides: from the same names and taken addresses every host
 * computes the same addresses; of two names that hash to one address the smaller gets it.
 */
export function gossipAllocate(subnet: string, names: readonly string[], taken?: ReadonlySet<number>): Map<string, string> {
  return allocateVips(subnet, names, taken);
}
