/**
 * The in-memory store: the reference the conformance suite holds the others to, and a store an
 * embedder (or a test) can run a whole cluster on in one process. Revisions count every change
 * from 1, as etcd's do; history is kept for watches until `compact(revision)`; leases expire by an
 * injectable clock (`now`) — with a virtual clock call `expireLeases()` after advancing it; with
 * the real clock a sweep timer (`sweepMs`) does.
 *
 * Single-threaded; every method completes synchronously behind its promise.
 */
import { StoreError } from './errors.js';
import { checkKey } from './keys.js';
import { type CasResult, type EndpointStore, type Expected, type KeyValue, type Lease, type ListResult, type PutOptions, MAX_VALUE_BYTES, type WatchEvent, type WatchOptions } from './store.js';
import { WatchQueue } from './watch-queue.js';

export interface MemoryStoreOptions {
  /** Milliseconds clock for leases (default Date.now). */
  now?: () => number;
  /** Real-time lease sweep interval in ms (0: none; call expireLeases()). Default 200. */
  sweepMs?: number;
  /** Watch queue bound per watcher (tests). */
  watchQueueLimit?: number;
}

interface LeaseState {
  ttlMs: number;
  expiresAt: number;
  keys: Set<string>;
}

type Change = Exclude<WatchEvent, { type: 'resync' }>;

interface Watcher {
  prefix: string;
  queue: WatchQueue;
}

export class MemoryStore implements EndpointStore {
  readonly kind = 'memory';
  private readonly data = new Map<string, KeyValue>();
  private readonly leases = new Map<string, LeaseState>();
  private readonly watchers = new Set<Watcher>();
  /** Changes with revision > compacted, in order. */
  private history: Change[] = [];
  private rev = 0;
  private compacted = 0;
  private nextLease = 1;
  private closed = false;
  private readonly now: () => number;
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private readonly queueLimit: number | undefined;

  constructor(opts: MemoryStoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.queueLimit = opts.watchQueueLimit;
    const sweep = opts.sweepMs ?? 200;
    if (sweep > 0) {
      this.timer = setInterval(() => this.expireLeases(), sweep);
      this.timer.unref();
    }
  }

  /** Current store revision. */
  get revision(): number {
    return this.rev;
  }
  /** Revision up to which history is gone. */
  get compactedRevision(): number {
    return this.compacted;
  }

  private live(): void {
    if (this.closed) throw StoreError.closed();
    this.expireLeases();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.live();
    return this.data.get(checkKey(key));
  }

  async list(prefix: string): Promise<ListResult> {
    this.live();
    return { entries: this.snapshot(checkKey(prefix, true)), revision: this.rev };
  }

  private snapshot(prefix: string): KeyValue[] {
    const out: KeyValue[] = [];
    for (const kv of this.data.values()) if (kv.key.startsWith(prefix)) out.push(kv);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async put(key: string, value: Uint8Array, opts: PutOptions = {}): Promise<number> {
    this.live();
    this.checkWrite(checkKey(key), value, opts);
    return this.write(key, value, opts.lease);
  }

  async compareAndSet(key: string, expected: Expected, value: Uint8Array, opts: PutOptions = {}): Promise<CasResult> {
    this.live();
    this.checkWrite(checkKey(key), value, opts);
    const cur = this.data.get(key);
    const ok = expected === 'absent' ? cur === undefined : cur !== undefined && cur.revision === expected;
    if (!ok) return { ok: false, revision: this.rev, current: cur };
    return { ok: true, revision: this.write(key, value, opts.lease) };
  }

  async delete(key: string): Promise<boolean> {
    this.live();
    return this.remove(checkKey(key));
  }

  private checkWrite(key: string, value: Uint8Array, opts: PutOptions): void {
    if (!(value instanceof Uint8Array)) throw new StoreError('STORE_BAD_RECORD', `${key}: value must be bytes`);
    if (value.length > MAX_VALUE_BYTES) throw new StoreError('STORE_VALUE_TOO_LARGE', `${key}: ${value.length} bytes > ${MAX_VALUE_BYTES}`);
    if (opts.lease !== undefined && !this.leases.has(opts.lease)) throw StoreError.leaseNotFound(opts.lease);
  }

  private write(key: string, value: Uint8Array, lease: string | undefined): number {
    const rev = ++this.rev;
    const cur = this.data.get(key);
    if (cur?.lease !== undefined && cur.lease !== lease) this.leases.get(cur.lease)?.keys.delete(key);
    if (lease !== undefined) this.leases.get(lease)!.keys.add(key);
    const copy = Uint8Array.from(value);
    this.data.set(key, { key, value: copy, revision: rev, createRevision: cur ? cur.createRevision : rev, lease });
    this.emit({ type: 'put', key, value: copy, revision: rev });
    return rev;
  }

  private remove(key: string): boolean {
    const cur = this.data.get(key);
    if (!cur) return false;
    this.data.delete(key);
    if (cur.lease !== undefined) this.leases.get(cur.lease)?.keys.delete(key);
    this.emit({ type: 'delete', key, revision: ++this.rev });
    return true;
  }

  private emit(ev: Change): void {
    this.history.push(ev);
    for (const w of this.watchers) if (ev.key.startsWith(w.prefix)) w.queue.push(ev);
  }

  /** Drop history up to `revision` (default: all); watches from before it get a resync. */
  compact(revision = this.rev): void {
    const r = Math.min(revision, this.rev);
    if (r <= this.compacted) return;
    this.compacted = r;
    let i = 0;
    while (i < this.history.length && this.history[i].revision <= r) i++;
    this.history = this.history.slice(i);
  }

  watch(prefix: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    if (this.closed) throw StoreError.closed();
    checkKey(prefix, true);
    const w: Watcher = {
      prefix,
      queue: new WatchQueue(
        () => this.watchers.delete(w),
        () => w.queue.push({ type: 'resync', entries: this.snapshot(prefix), revision: this.rev }),
        this.queueLimit,
        opts.signal,
      ),
    };
    if (w.queue.closed) return w.queue;
    const from = opts.fromRevision ?? this.rev;
    if (from < this.compacted) {
      w.queue.push({ type: 'resync', entries: this.snapshot(prefix), revision: this.rev });
    } else {
      for (const ev of this.history) if (ev.revision > from && ev.key.startsWith(prefix)) w.queue.push(ev);
    }
    this.watchers.add(w);
    return w.queue;
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.live();
    if (!(ttlMs >= 1000 && ttlMs <= 24 * 3600_000)) throw new StoreError('STORE_UNSUPPORTED', `lease ttl ${ttlMs} ms: must be 1 s .. 24 h`);
    const id = (this.nextLease++).toString(16);
    this.leases.set(id, { ttlMs, expiresAt: this.now() + ttlMs, keys: new Set() });
    return { id, ttlMs };
  }

  async keepAlive(lease: string): Promise<boolean> {
    this.live();
    const l = this.leases.get(lease);
    if (!l) return false;
    l.expiresAt = this.now() + l.ttlMs;
    return true;
  }

  async revokeLease(lease: string): Promise<boolean> {
    this.live();
    return this.dropLease(lease);
  }

  private dropLease(id: string): boolean {
    const l = this.leases.get(id);
    if (!l) return false;
    this.leases.delete(id);
    for (const k of [...l.keys].sort()) this.remove(k);
    return true;
  }

  /** Expire every lease whose time has come (their keys are deleted, one revision each). */
  expireLeases(): number {
    const t = this.now();
    let n = 0;
    for (const [id, l] of this.leases) if (l.expiresAt <= t && this.dropLease(id)) n++;
    return n;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const w of [...this.watchers]) w.queue.end();
  }
}
