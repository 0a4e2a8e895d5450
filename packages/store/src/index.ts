// @overlay/store: one interface over memory, gossip (in the agent) and etcd v3.
export { type CasResult, type EndpointStore, type Expected, type KeyValue, type Lease, type ListResult, type PutOptions, type WatchEvent, type WatchOptions, KEEPALIVE_MS, LEASE_TTL_MS, MAX_VALUE_BYTES } from './store.js';
export { StoreError, isStoreError, type StoreErrorCode } from './errors.js';
export { AREAS, Keys, LAYOUT_VERSION, MAX_SEGMENT, checkKey, parseKey, segmentOk, type Area, type ParsedKey } from './keys.js';
export { MemoryStore, type MemoryStoreOptions } from './memory.js';
export { EtcdStore, prefixEnd, type EtcdStoreCounters, type EtcdStoreOptions } from './etcd.js';
export { WATCH_QUEUE_LIMIT, WatchQueue } from './watch-queue.js';
export { SEALED_VERSION, VERIFY_DROP_REASONS, VerifyingStore, openSealed, sealRecord, sealSigned, verifySealed, type RecordCodec, type SealedRecord, type VerifyDropReason, type VerifyingStoreOptions } from './signed.js';
export { LeaseKeeper, type LeaseKeeperOptions } from './lease.js';
export { allocate, fnv1a, probeOrder, type AllocateOptions, type Allocation } from './allocate.js';
