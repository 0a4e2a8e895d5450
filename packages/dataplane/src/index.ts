export * from './errors.js';
export * from './pool.js';
export type * from './io.js';
