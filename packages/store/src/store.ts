/**
 * The endpoint store: one small interface over memory (tests, embedders), gossip (the agent's
 * signed record table, packages/agent/src/store-gossip.ts) and etcd v3 (etcd.ts).
 *
 * Keys are strings under `/<cluster>/v1/` (keys.ts); values are bytes, normally a signed record
 * (signed.ts) so the store cannot forge what it carries. Every change has a revision, increasing
 * by store (etcd: the cluster revision; memory: a counter; gossip: a local change counter).
 *
 * Watches are async iterators that start after `fromRevision` (exclusive: pass the revision a list
 * returned to see every change after it). When that revision is gone (compacted, or a gossip
 * table that has no history), the watch re-lists and yields one `resync` event carrying the full
 * current state under the prefix at a revision; changes after it follow. A consumer that replaces
 * its view with a resync's entries and applies the rest in order loses and duplicates nothing.
 *
 * Concurrency: every method may be called at any time from the one event loop; a watch's iterator
 * is consumed by one reader. `close()` ends every watch (their iterators return) and fails later calls
 * with STORE_CLOSED.
 */

/** One stored key. */
export interface KeyValue {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the last change to this key. */
  readonly revision: number;
  /** Revision that created this key (compare-and-set on "this exact incarnation"). */
  readonly createRevision: number;
  /** Lease holding the key, or undefined. */
  readonly lease?: string;
}

export interface ListResult {
  /** Sorted by key. */
  readonly entries: KeyValue[];
  /** Store revision at which the list was taken: watch from here to miss nothing. */
  readonly revision: number;
}

export type WatchEvent =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array; readonly revision: number }
  | { readonly type: 'delete'; readonly key: string; readonly value?: undefined; readonly revision: number }
  /**
   * The requested history is gone: `entries` is the whole current state under the prefix at
   * `revision`; the consumer replaces its view with it. Later events have revision > `revision`.
   */
  | { readonly type: 'resync'; readonly entries: KeyValue[]; readonly revision: number; readonly key?: undefined; readonly value?: undefined };

export interface PutOptions {
  /** Lease id from grantLease: the key goes when the lease expires or is revoked. */
  readonly lease?: string;
}

/** `absent`: the key must not exist; a number: the key's revision (KeyValue.revision) must equal it. */
export type Expected = 'absent' | number;

export interface CasResult {
  readonly ok: boolean;
  /** The store revision after the write (ok) or at the failed comparison. */
  readonly revision: number;
  /** On failure: the entry that is there now (undefined when absent). */
  readonly current?: KeyValue;
}

export interface WatchOptions {
  /**
   * Exclusive: deliver changes with revision > fromRevision. Default: from when the watch is
   * established, which for etcd is a round trip later: pass the revision of a list (or of a
   * write) to miss nothing.
   */
  readonly fromRevision?: number;
  readonly signal?: AbortSignal;
}

export interface Lease {
  readonly id: string;
  readonly ttlMs: number;
}

export interface EndpointStore {
  /** Backend name: 'memory' | 'gossip' | 'etcd' (status and logs). */
  readonly kind: string;
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key starting with `prefix`, sorted by key. */
  list(prefix: string): Promise<ListResult>;
  /** Returns the new revision. */
  put(key: string, value: Uint8Array, opts?: PutOptions): Promise<number>;
  compareAndSet(key: string, expected: Expected, value: Uint8Array, opts?: PutOptions): Promise<CasResult>;
  /** True when the key existed. */
  delete(key: string): Promise<boolean>;
  watch(prefix: string, opts?: WatchOptions): AsyncIterableIterator<WatchEvent>;
  grantLease(ttlMs: number): Promise<Lease>;
  /** Refresh once; false when the lease no longer exists. */
  keepAlive(lease: string): Promise<boolean>;
  /** Revoke: its keys go now. False when it no longer existed. */
  revokeLease(lease: string): Promise<boolean>;
  close(): Promise<void>;
}

/** Values larger than this are refused (STORE_VALUE_TOO_LARGE): etcd's default request cap is 1.5 MiB. */
export const MAX_VALUE_BYTES = 64 * 1024;
/** Defaults from the issue: a lease of 10 s refreshed every 3 s. */
export const LEASE_TTL_MS = 10_000;
export const KEEPALIVE_MS = 3_000;
