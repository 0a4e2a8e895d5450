export * from './errors.js';
export * from './pool.js';
export type * from './io.js';
export * from './codec/index.js';
export { createDataplane, type Dataplane, type DataplaneOptions, type FdbEntry } from './dataplane.js';
export type { NetworkOptions } from './network.js';
export type { Vtep } from './vtep.js';
export { DROP_REASONS, dropChannel, type DataplaneStats, type DropEvent, type DropReason } from './counters.js';
export { PairTable } from './table.js';
