/**
 * Store errors: one class, a stable `code` per failure (callers switch on the code, never on the
 * message). Watches never throw for a lost revision: they re-list and say so with a `resync` event.
 */
export type StoreErrorCode =
  /** A key outside `/<cluster>/v1/`, empty, too long, or with an empty or illegal segment. */
  | 'STORE_BAD_KEY'
  /** A value larger than the store accepts (MAX_VALUE_BYTES). */
  | 'STORE_VALUE_TOO_LARGE'
  /** put/compareAndSet named a lease that does not exist (never granted, expired, revoked). */
  | 'STORE_LEASE_NOT_FOUND'
  /** The store is closed (or was never opened). */
  | 'STORE_CLOSED'
  /** The backend could not be reached or failed the request (etcd down, timeout). */
  | 'STORE_UNAVAILABLE'
  /** The operation is not possible in this backend (e.g. writing another node's record in gossip). */
  | 'STORE_UNSUPPORTED'
  /** A value is not a well-formed signed record. */
  | 'STORE_BAD_RECORD';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
  static badKey(key: string, why: string): StoreError {
    return new StoreError('STORE_BAD_KEY', `${JSON.stringify(key.slice(0, 200))}: ${why}`);
  }
  static leaseNotFound(lease: string): StoreError {
    return new StoreError('STORE_LEASE_NOT_FOUND', `lease ${lease}`);
  }
  static closed(): StoreError {
    return new StoreError('STORE_CLOSED', 'store is closed');
  }
  static unavailable(what: string, cause?: unknown): StoreError {
    return new StoreError('STORE_UNAVAILABLE', what, { cause });
  }
}

export const isStoreError = (e: unknown, code?: StoreErrorCode): e is StoreError => e instanceof StoreError && (code === undefined || e.code === code);
