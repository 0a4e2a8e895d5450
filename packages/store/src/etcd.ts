/**
 * The etcd v3 store (etcd-server 3.4 and later) over the `etcd3` client's raw gRPC services, which
 * is an optional dependency: `EtcdStore.connect` loads it and fails with STORE_UNSUPPORTED when it
 * is not installed.
 *
 * - Revisions are etcd's cluster revisions; compare-and-set is one transaction comparing the key's
 *   create revision (absent: 0) or mod revision.
 * - Leases are etcd leases (whole seconds, rounded up); keepAlive sends one refresh on a shared
 *   keep-alive stream (KEEPALIVE_MS is the agent's interval; see LeaseKeeper).
 * - Watches are our own, one gRPC watch stream each, so the resume point is exact: after each
 *   response the watch knows the last revision it delivered, and every reconnect (etcd restarted,
 *   connection lost) creates the watch again from the next one; events at or below it are never
 *   delivered twice. When etcd answers that the revision is compacted, the watch lists the prefix,
 *   yields a `resync` with that list and goes on from the list's revision.
 * - The client's own retry and circuit-breaker policies are replaced by one attempt per call with a
 *   deadline (`callTimeoutMs`): a failed write is a STORE_UNAVAILABLE the caller sees at once (it
 *   may or may not have taken effect: only the caller knows how to find out). Reads (get, list)
 *   change nothing, so one that fails with UNAVAILABLE (connection dropped or refused) is tried
 *   again after 50, 100, 200 … ms until the call's deadline, as etcd's own Go client does for its
 *   repeatable requests; `read_retries` counts those attempts. Watches reconnect with a capped backoff.
 */
import type { Etcd3, IOptions, IWatchRequest, IWatchResponse, IKeyValue, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { StoreError } from './errors.js';
import { checkKey } from './keys.js';
import { type CasResult, type EndpointStore, type Expected, type KeyValue, type Lease, type ListResult, type PutOptions, MAX_VALUE_BYTES, type WatchEvent, type WatchOptions } from './store.js';
import { WatchQueue } from './watch-queue.js';

export interface EtcdStoreOptions {
  /** 'host:port' or a list of them (http only here; TLS via `etcd`). */
  hosts: string | string[];
  /** Deadline of one call (ms, default 5000). */
  callTimeoutMs?: number;
  /** Watch reconnect backoff: first and maximum delay (ms; default 100 and 2000). */
  reconnectMs?: [number, number];
  /** Extra client options (credentials, auth). */
  etcd?: Partial<IOptions>;
  watchQueueLimit?: number;
}

/** Counters of the etcd store (append-only names). */
export interface EtcdStoreCounters {
  watch_reconnects: number;
  watch_resyncs: number;
  watch_overflows: number;
  keepalive_stream_errors: number;
  /** Reads tried again after an UNAVAILABLE answer (connection dropped or refused). */
  read_retries: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const buf = (s: string) => Buffer.from(enc.encode(s));

/** The first key after every key starting with `prefix` (etcd range_end). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(buf(prefix));
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      b[i]++;
      return b.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

const num = (s: string | number | undefined): number => Number(s ?? 0);

function kvOf(kv: IKeyValue): KeyValue {
  const lease = num(kv.lease);
  return { key: dec.decode(kv.key), value: new Uint8Array(kv.value), revision: num(kv.mod_revision), createRevision: num(kv.create_revision), lease: lease === 0 ? undefined : lease.toString(16) };
}

function mapError(what: string, e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/lease not found/i.test(msg)) return new StoreError('STORE_LEASE_NOT_FOUND', what, { cause: e });
  return StoreError.unavailable(`${what}: ${msg}`, e);
}

/** gRPC status 14 (UNAVAILABLE): the request did not reach etcd or its answer was lost. */
const isUnavailable = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === 14 || /\bUNAVAILABLE\b/.test(e instanceof Error ? e.message : '');

/** A one-attempt policy (the client's IPolicy shape) instead of its retries and circuit breaker. */
const once = () => ({
  onSuccess: () => ({ dispose() {} }),
  onFailure: () => ({ dispose() {} }),
  execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => Promise<T> | T, signal?: AbortSignal) => Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal, attempt: 0 })),
});

export class EtcdStore implements EndpointStore {
  readonly kind = 'etcd';
  readonly counters: EtcdStoreCounters = { watch_reconnects: 0, watch_resyncs: 0, watch_overflows: 0, keepalive_stream_errors: 0, read_retries: 0 };
  private closed = false;
  private readonly watches = new Set<{ stop(): void }>();
  private ka: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  private kaOpening: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> | undefined;
  private readonly kaWaiting = new Map<string, ((ttl: number) => void)[]>();
  private readonly timeout: number;
  private readonly backoff: [number, number];

  private constructor(
    private readonly client: Etcd3,
    private readonly opts: EtcdStoreOptions,
  ) {
    this.timeout = opts.callTimeoutMs ?? 5000;
    this.backoff = opts.reconnectMs ?? [100, 2000];
  }

  /** Load the optional `etcd3` client and build a store (no round trip yet). */
  static async connect(opts: EtcdStoreOptions): Promise<EtcdStore> {
    let mod: typeof import('etcd3');
    try {
      mod = await import('etcd3');
    } catch (e) {
      throw new StoreError('STORE_UNSUPPORTED', "the etcd store needs the optional dependency 'etcd3'", { cause: e });
    }
    const Ctor = (mod.Etcd3 ?? (mod as unknown as { default: typeof mod }).default.Etcd3) as typeof Etcd3;
    const client = new Ctor({
      hosts: opts.hosts,
      dialTimeout: opts.callTimeoutMs ?? 5000,
      ...opts.etcd,
      // Reconnect soon after etcd comes back (gRPC's default backoff grows to 120 s); ping an idle
      // connection so a silently dead peer is noticed (etcd accepts pings every 5 s or more).
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 2000, 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000, ...opts.etcd?.grpcOptions },
      faultHandling: { host: () => once() as never, global: once() as never, ...opts.etcd?.faultHandling },
    });
    return new EtcdStore(client, opts);
  }

  private call() {
    if (this.closed) throw StoreError.closed();
    return { deadline: Date.now() + this.timeout };
  }

  /** One read (a range request) retried on UNAVAILABLE until the deadline; see the header. */
  private async read(what: string, req: Parameters<Etcd3['kv']['range']>[0]) {
    const { deadline } = this.call();
    for (let wait = 50; ; wait *= 2) {
      try {
        return await this.client.kv.range(req, { deadline });
      } catch (e) {
        const left = deadline - Date.now();
        if (this.closed || !isUnavailable(e) || left <= wait) throw mapError(what, e);
        this.counters.read_retries++;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    checkKey(key);
    const r = await this.read(`get ${key}`, { key: buf(key) });
    return r.kvs.length > 0 ? kvOf(r.kvs[0]) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    checkKey(prefix, true);
    const r = await this.read(`list ${prefix}`, { key: buf(prefix), range_end: prefixEnd(prefix), sort_order: 'Ascend', sort_target: 'Key' });
    return { entries: r.kvs.map(kvOf), revision: num(r.header.revision) };
  }

  private putReq(key: string, value: Uint8Array, opts: PutOptions) {
    checkKey(key);
    if (!(value instanceof Uint8Array)) throw new StoreError('STORE_BAD_RECORD', `${key}: value must be bytes`);
    if (value.length > MAX_VALUE_BYTES) throw new StoreError('STORE_VALUE_TOO_LARGE', `${key}: ${value.length} bytes > ${MAX_VALUE_BYTES}`);
    let lease: string | undefined;
    if (opts.lease !== undefined) {
      if (!/^[0-9a-f]{1,16}$/.test(opts.lease)) throw StoreError.leaseNotFound(opts.lease);
      lease = BigInt('0x' + opts.lease).toString();
    }
    return { key: buf(key), value: Buffer.from(value.buffer, value.byteOffset, value.length), lease };
  }

  async put(key: string, value: Uint8Array, opts: PutOptions = {}): Promise<number> {
    const req = this.putReq(key, value, opts);
    try {
      const r = await this.client.kv.put(req, this.call());
      return num(r.header.revision);
    } catch (e) {
      throw mapError(`put ${key}`, e);
    }
  }

  async compareAndSet(key: string, expected: Expected, value: Uint8Array, opts: PutOptions = {}): Promise<CasResult> {
    const req = this.putReq(key, value, opts);
    const compare = expected === 'absent' ? { key: req.key, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 } : { key: req.key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expected };
    try {
      const r = await this.client.kv.txn({ compare: [compare], success: [{ request_put: req }], failure: [{ request_range: { key: req.key } }] }, this.call());
      if (r.succeeded) return { ok: true, revision: num(r.header.revision) };
      const kvs = r.responses[0]?.response_range?.kvs ?? [];
      return { ok: false, revision: num(r.header.revision), current: kvs.length > 0 ? kvOf(kvs[0]) : undefined };
    } catch (e) {
      throw mapError(`compareAndSet ${key}`, e);
    }
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key);
    try {
      const r = await this.client.kv.deleteRange({ key: buf(key) }, this.call());
      return num(r.deleted) > 0;
    } catch (e) {
      throw mapError(`delete ${key}`, e);
    }
  }

  /** Compact etcd's history up to `revision` (tests and operators; etcd can also auto-compact). */
  async compact(revision: number): Promise<void> {
    try {
      await this.client.kv.compact({ revision, physical: true }, this.call());
    } catch (e) {
      throw mapError(`compact ${revision}`, e);
    }
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    const ttl = Math.ceil(ttlMs / 1000);
    if (!(ttl >= 1 && ttl <= 24 * 3600)) throw new StoreError('STORE_UNSUPPORTED', `lease ttl ${ttlMs} ms: must be 1 s .. 24 h`);
    try {
      const r = await this.client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 }, this.call());
      if (r.error) throw StoreError.unavailable(`grant lease: ${r.error}`);
      return { id: BigInt(r.ID).toString(16), ttlMs: num(r.TTL) * 1000 };
    } catch (e) {
      throw mapError('grant lease', e);
    }
  }

  private async kaStream() {
    if (this.ka) return this.ka;
    if (!this.kaOpening) {
      this.kaOpening = this.client.leaseClient.leaseKeepAlive().then((s) => {
        const fail = () => {
          if (this.ka !== s) return;
          this.ka = undefined;
          this.counters.keepalive_stream_errors++;
          for (const ws of this.kaWaiting.values()) for (const w of ws) w(-2);
          this.kaWaiting.clear();
        };
        s.on('data', (r: ILeaseKeepAliveResponse) => {
          const id = BigInt(r.ID).toString(16);
          const ws = this.kaWaiting.get(id);
          const w = ws?.shift();
          if (ws && ws.length === 0) this.kaWaiting.delete(id);
          w?.(num(r.TTL));
        });
        s.on('error', fail);
        s.on('end', fail);
        this.ka = s;
        return s;
      });
      this.kaOpening.then(
        () => (this.kaOpening = undefined),
        () => (this.kaOpening = undefined),
      );
    }
    return this.kaOpening;
  }

  async keepAlive(lease: string): Promise<boolean> {
    if (this.closed) throw StoreError.closed();
    if (!/^[0-9a-f]{1,16}$/.test(lease)) return false;
    let ttl: number;
    try {
      const s = await this.kaStream();
      ttl = await new Promise<number>((resolve) => {
        const timer = setTimeout(() => done(-1), this.timeout);
        const done = (t: number) => {
          clearTimeout(timer);
          resolve(t);
        };
        let ws = this.kaWaiting.get(lease);
        if (!ws) this.kaWaiting.set(lease, (ws = []));
        ws.push(done);
        s.write({ ID: BigInt('0x' + lease).toString() });
      });
    } catch (e) {
      throw mapError(`keep-alive ${lease}`, e);
    }
    if (ttl < 0) throw StoreError.unavailable(`keep-alive ${lease}: ${ttl === -1 ? 'no answer' : 'stream lost'}`);
    return ttl > 0;
  }

  async revokeLease(lease: string): Promise<boolean> {
    if (!/^[0-9a-f]{1,16}$/.test(lease)) return false;
    try {
      await this.client.leaseClient.leaseRevoke({ ID: BigInt('0x' + lease).toString() }, this.call());
      return true;
    } catch (e) {
      const m = mapError(`revoke ${lease}`, e);
      if (m.code === 'STORE_LEASE_NOT_FOUND') return false;
      throw m;
    }
  }

  watch(prefix: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    if (this.closed) throw StoreError.closed();
    checkKey(prefix, true);
    return new EtcdWatch(this, this.client, prefix, opts, this.backoff, this.opts.watchQueueLimit).queue;
  }

  /** @internal */
  track(w: { stop(): void }, on: boolean): void {
    if (on) this.watches.add(w);
    else this.watches.delete(w);
  }
  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches]) w.stop();
    this.ka?.cancel();
    this.ka = undefined;
    this.client.close();
  }
}

/**
 * One watch: a gRPC watch stream, re-created from `last + 1` after any failure. `last` is the
 * highest revision delivered (every event of a revision arrives in one response: we never ask
 * for fragments), so nothing is lost or repeated across reconnects.
 */
class EtcdWatch {
  readonly queue: WatchQueue;
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private last: number | undefined;
  private delay: number;
  private stopped = false;
  /** Set while re-listing: events are not pushed until the resync is in the queue. */
  private resyncing = false;

  constructor(
    private readonly store: EtcdStore,
    private readonly client: Etcd3,
    private readonly prefix: string,
    opts: WatchOptions,
    private readonly backoff: [number, number],
    limit: number | undefined,
  ) {
    this.last = opts.fromRevision;
    this.delay = backoff[0];
    this.queue = new WatchQueue(
      () => this.stop(),
      () => {
        store.counters.watch_overflows++;
        void this.resync();
      },
      limit,
      opts.signal,
    );
    if (this.queue.closed) return;
    store.track(this, true);
    void this.open();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.store.track(this, false);
    this.stream?.cancel();
    this.stream = undefined;
    this.queue.end();
  }

  private retry(): void {
    if (this.stopped) return;
    this.stream?.cancel();
    this.stream = undefined;
    this.store.counters.watch_reconnects++;
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, this.backoff[1]);
    setTimeout(() => void this.open(), d).unref();
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    try {
      if (this.last === undefined) {
        const r = await this.client.kv.range({ key: buf(this.prefix), limit: 1, keys_only: true }, { deadline: Date.now() + 5000 });
        this.last = num(r.header.revision);
      }
      const s = await this.client.watchClient.watch();
      if (this.stopped) {
        s.cancel();
        return;
      }
      this.stream = s;
      let failed = false;
      const fail = () => {
        if (failed || this.stream !== s) return;
        failed = true;
        this.retry();
      };
      s.on('data', (res: IWatchResponse) => this.onResponse(s, res));
      s.on('error', fail);
      s.on('end', fail);
      s.write({ create_request: { key: buf(this.prefix), range_end: prefixEnd(this.prefix), start_revision: this.last + 1 } });
    } catch {
      this.retry();
    }
  }

  private onResponse(s: IDuplexStream<IWatchRequest, IWatchResponse>, res: IWatchResponse): void {
    if (this.stream !== s || this.stopped) return;
    if (res.canceled) {
      if (num(res.compact_revision) > 0) {
        s.cancel();
        this.stream = undefined;
        void this.resync();
      } else this.retry();
      return;
    }
    if (res.created) this.delay = this.backoff[0];
    if (!res.events || res.events.length === 0 || this.resyncing) return;
    const floor = this.last ?? 0;
    let top = floor;
    for (const ev of res.events) {
      const rev = num(ev.kv.mod_revision);
      if (rev <= floor) continue;
      if (rev > top) top = rev;
      const key = dec.decode(ev.kv.key);
      this.queue.push(ev.type === 'Delete' ? { type: 'delete', key, revision: rev } : { type: 'put', key, value: new Uint8Array(ev.kv.value), revision: rev });
      if (this.stopped || this.resyncing) return;
    }
    this.last = top;
  }

  /** List the prefix, yield it as a resync, and watch again from the list's revision. */
  private async resync(): Promise<void> {
    if (this.stopped || this.resyncing) return;
    this.resyncing = true;
    this.stream?.cancel();
    this.stream = undefined;
    for (;;) {
      if (this.stopped) return;
      try {
        const r = await this.store.list(this.prefix);
        this.store.counters.watch_resyncs++;
        this.last = r.revision;
        this.resyncing = false;
        this.queue.push({ type: 'resync', entries: r.entries, revision: r.revision });
        void this.open();
        return;
      } catch {
        await new Promise((res) => setTimeout(res, this.delay).unref());
        this.delay = Math.min(this.delay * 2, this.backoff[1]);
      }
    }
  }
}
