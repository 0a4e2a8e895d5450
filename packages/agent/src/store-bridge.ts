/**
 * An agent's records through an external EndpointStore (etcd: config `store: {kind: etcd}`), next
 * to gossip: this node's own endpoint and service records are written to the store under a lease,
 * and every other node's records are read from it (verified: `VerifyingStore` drops what is not
 * signed by the key's owner) into the agent's table, which programs them as gossip would.
 *
 * - Out: every change of one of our records (`recordChanged`, from the agent's onRecord) is a put
 *   of the sealed record under our lease, or a delete for a tombstone. A new lease (the first, or
 *   after the old one was lost) re-writes all our live records. A graceful stop revokes the lease
 *   (our keys go at once); a killed agent's keys go when the lease lapses (LEASE_TTL_MS).
 * - In: list, then watch from the list's revision; puts and resync entries are handed to
 *   `Agent.receiveRecord` (LWW, signature against the owner's key from membership). A delete
 *   (lease lapsed, `etcdctl del`) withdraws another owner's live record from the table and the
 *   dataplane (`RecordTable.withdraw`: no tombstone, only owners sign those); that version arriving
 *   again by gossip or push-pull is stale until the store holds the key again (a put readmits it).
 *   A resync (or the first list) withdraws the live records of other owners it does not hold.
 *   Our own keys are left to the lease keeper (a new lease re-writes them).
 * - A value whose owner is not (yet) a member — read at start, before this agent joined — is kept
 *   (at most MAX_PENDING, oldest dropped) and handed over once membership knows its owner.
 *
 * Owners must be members (their signing key comes from membership meta); a store shared by sites
 * that do not gossip with each other needs the PKI's certificates for that (not done here).
 * Single-threaded; owned by the runner.
 */
import { type EndpointStore, EtcdStore, Keys, LeaseKeeper, VerifyingStore, type WatchEvent, isStoreError, openSealed, parseKey, sealSigned } from '@overlay/store';
import type { Agent } from './agent.js';
import { ENDPOINT_KIND } from './endpoints.js';
import type { SignedRecord } from './records.js';
import { SERVICE_KIND } from './services.js';
import { agentRecordCodec } from './store-gossip.js';

export interface StoreBridgeOptions {
  agent: Agent;
  store: EndpointStore;
  keys: Keys;
  ttlMs?: number;
  keepAliveMs?: number;
  log?(msg: string, err?: unknown): void;
}

/** What the bridge did (append-only names). */
export interface StoreBridgeCounters {
  puts: number;
  deletes: number;
  write_errors: number;
  received: number;
  received_applied: number;
  resyncs: number;
  leases: number;
  /** Values kept until their owner became a member, then handed over. */
  pending_fed: number;
  /** Values that waited for an unknown owner and were dropped (bound reached, or deleted). */
  pending_dropped: number;
  /** Live records of other owners taken out of the table because the store no longer holds them. */
  withdrawn: number;
}

const AREAS = ['endpoints', 'services'] as const;
const KIND_OF_AREA: Record<string, number> = { endpoints: ENDPOINT_KIND, services: SERVICE_KIND };
/** Values waiting for their owner to become a member. */
export const MAX_PENDING = 10_000;
const PENDING_RETRY_MS = 1_000;
/**
 * The first lease is asked for this many times (each call has the store's 5 s deadline), 1 s
 * apart, while the store answers STORE_UNAVAILABLE: on a loaded machine the gRPC channel's first
 * connection alone can outlast one deadline (50 agents starting at once, bench/propagation.ts).
 */
export const START_ATTEMPTS = 5;

export class StoreBridge {
  readonly counters: StoreBridgeCounters = { puts: 0, deletes: 0, write_errors: 0, received: 0, received_applied: 0, resyncs: 0, leases: 0, pending_fed: 0, pending_dropped: 0, withdrawn: 0 };
  private readonly pending = new Map<string, Uint8Array>();
  private pendingTimer: ReturnType<typeof setInterval> | undefined;
  readonly store: VerifyingStore;
  private readonly keeper: LeaseKeeper;
  private readonly watches: AsyncIterator<WatchEvent>[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private started = false;
  private stopped = false;

  constructor(private readonly o: StoreBridgeOptions) {
    const agent = o.agent;
    this.store = new VerifyingStore(o.store, {
      codec: agentRecordCodec,
      keyOf: (owner) => agent.membership.metaOf(owner)?.signKey,
      onDrop: (key, why, value) => {
        if (why !== 'unknown_owner' || this.stopped) return;
        this.pending.delete(key);
        this.pending.set(key, value);
        if (this.pending.size > MAX_PENDING) {
          this.pending.delete(this.pending.keys().next().value!);
          this.counters.pending_dropped++;
        }
      },
    });
    this.keeper = new LeaseKeeper(o.store, {
      ttlMs: o.ttlMs,
      intervalMs: o.keepAliveMs,
      onLease: async () => {
        this.counters.leases++;
        for (const r of agent.table.records()) if (r.owner === agent.name && !r.deleted) this.recordChanged(r);
        await this.chain;
      },
      onError: (e) => o.log?.('store lease refresh failed', e),
    });
  }

  /** Drops of the verifying reader, by reason. */
  get drops(): VerifyingStore['drops'] {
    return this.store.drops;
  }

  private keyOf(r: SignedRecord): string | undefined {
    try {
      if (r.kind === ENDPOINT_KIND) return this.o.keys.endpoint(r.network, r.owner, r.id);
      if (r.kind === SERVICE_KIND) return this.o.keys.service(r.network, r.owner, r.id);
    } catch {
      /* a name that cannot be a key segment: gossip only */
    }
    return undefined;
  }

  /** One of the agent's records changed (the agent's onRecord): write ours to the store. */
  recordChanged(r: SignedRecord): void {
    if (!this.started || this.stopped || r.owner !== this.o.agent.name) return;
    const key = this.keyOf(r);
    const lease = this.keeper.lease;
    if (key === undefined || !lease) return;
    const value = r.deleted ? undefined : sealSigned(r);
    // Writes go out in order (a put then its tombstone must not be reordered).
    this.chain = this.chain.then(async () => {
      try {
        if (value) {
          await this.o.store.put(key, value, { lease: lease.id });
          this.counters.puts++;
        } else {
          await this.o.store.delete(key);
          this.counters.deletes++;
        }
      } catch (e) {
        // A lost lease is re-granted by the keeper, which re-writes every live record.
        this.counters.write_errors++;
        if (!isStoreError(e, 'STORE_LEASE_NOT_FOUND')) this.o.log?.(`store write ${key} failed`, e);
      }
    });
  }

  private feed(value: Uint8Array): void {
    const rec = openSealed(value);
    if (!rec) return;
    this.counters.received++;
    // (Only verified values get here: the store holds this record, so a withdrawn version is back.)
    const h = this.o.agent.table.open(rec);
    if (h) this.o.agent.table.readmit(h.kind, h.network, h.id);
    if (this.o.agent.receiveRecord(rec)) this.counters.received_applied++;
  }

  /** The store no longer holds `key`: take another owner's live record out of the table. */
  private removed(key: string): void {
    const k = parseKey(key);
    const kind = k && KIND_OF_AREA[k.area];
    if (!k || kind === undefined || k.owner === undefined || k.owner === this.o.agent.name) return;
    if (this.o.agent.table.withdraw(kind, k.parts[0], k.parts[2], k.owner)) this.counters.withdrawn++;
  }

  /** A full view of `area` (first list, resync): withdraw other owners' live records it lacks. */
  private absentFrom(area: (typeof AREAS)[number], keys: Set<string>): void {
    const gone: string[] = [];
    for (const r of this.o.agent.table.records()) {
      if (r.kind !== KIND_OF_AREA[area] || r.deleted || r.owner === this.o.agent.name) continue;
      const key = this.keyOf(r);
      if (key !== undefined && !keys.has(key)) gone.push(key);
    }
    for (const key of gone) this.removed(key);
  }

  /** Hand over the waiting values whose owner membership now knows. */
  private retryPending(): void {
    for (const [key, value] of this.pending) {
      const why = this.store.check(key, value);
      if (why === 'unknown_owner') continue;
      this.pending.delete(key);
      if (why === undefined) {
        this.counters.pending_fed++;
        this.feed(value);
      } else this.counters.pending_dropped++;
    }
  }

  /** Take a lease, write our records, read everyone's and follow changes. */
  async start(): Promise<void> {
    this.started = true;
    this.pendingTimer = setInterval(() => this.pending.size > 0 && this.retryPending(), PENDING_RETRY_MS);
    this.pendingTimer.unref();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.keeper.start();
        break;
      } catch (e) {
        if (!isStoreError(e, 'STORE_UNAVAILABLE') || attempt >= START_ATTEMPTS || this.stopped) throw e;
        this.o.log?.(`store not answering (attempt ${attempt} of ${START_ATTEMPTS}); trying again`, e);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    for (const area of AREAS) {
      const prefix = this.o.keys.prefix(area);
      const l = await this.store.list(prefix);
      for (const kv of l.entries) this.feed(kv.value);
      this.absentFrom(area, new Set(l.entries.map((kv) => kv.key)));
      const w = this.store.watch(prefix, { fromRevision: l.revision });
      this.watches.push(w);
      void (async () => {
        try {
          for (let r = await w.next(); !r.done; r = await w.next()) {
            const ev = r.value;
            if (ev.type === 'put') {
              this.pending.delete(ev.key);
              this.feed(ev.value);
            } else if (ev.type === 'delete') {
              if (this.pending.delete(ev.key)) this.counters.pending_dropped++;
              this.removed(ev.key);
            } else if (ev.type === 'resync') {
              // (Entries of unknown owners were put in pending by the reader's filter.)
              this.counters.resyncs++;
              for (const kv of ev.entries) this.feed(kv.value);
              this.absentFrom(area, new Set(ev.entries.map((kv) => kv.key)));
            }
          }
        } catch (e) {
          this.o.log?.(`store watch ${prefix} ended`, e);
        }
      })();
    }
  }

  /** Stop: revoke our lease when leaving gracefully (our keys go now), close the store. */
  async stop(revoke = true): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.pendingTimer) clearInterval(this.pendingTimer);
    this.pending.clear();
    await this.chain;
    await this.keeper.stop(revoke);
    for (const w of this.watches) await w.return?.();
    await this.store.close();
  }
}

/**
 * The runner's entry (config `store: {kind: etcd, endpoints, prefix}`): connect, start the bridge.
 * The agent's onRecord must call `recordChanged` (records published before this are written when
 * the first lease is granted). Undefined for `kind: gossip`.
 */
export async function openStoreBridge(store: { kind: 'gossip' } | { kind: 'etcd'; endpoints: string[]; prefix: string }, agent: Agent, log?: StoreBridgeOptions['log']): Promise<StoreBridge | undefined> {
  if (store.kind !== 'etcd') return undefined;
  const keys = Keys.fromPrefix(store.prefix);
  const etcd = await EtcdStore.connect({ hosts: store.endpoints.map((u) => u.replace(/^http:\/\//, '')) });
  const bridge = new StoreBridge({ agent, store: etcd, keys, log });
  try {
    await bridge.start();
  } catch (e) {
    await bridge.stop(false).catch(() => undefined);
    throw e;
  }
  return bridge;
}
