/**
 * The messages between openHost's main thread (worker-host.ts) and its data-path workers
 * (worker-main.ts). Everything here crosses postMessage by structured clone; a port delivers in
 * order, and a worker handles a message between two batches (its event loop runs one callback at
 * a time), so a control-plane change needs no lock on the hot path.
 */
import type { FdbEntry } from '@overlay/dataplane';
import type { HostStats } from './host.js';
import type { HostOptions } from './options.js';

/** workerData of a worker. */
export interface WorkerInit {
  index: number;
  /** The validated host options (the worker reads underlay, batch, pool, TAP tuning, networks). */
  options: HostOptions;
  /** VXLAN port to bind with SO_REUSEPORT (worker 0 may be given 0 and report what it got). */
  port: number;
  /** Flow-hashed source ports to bind with SO_REUSEPORT; empty for worker 0, which picks them. */
  sourcePorts: number[];
  /** Per network, in options order: the TAP name to open a queue of, and its MTU. */
  taps: string[];
  mtus: number[];
  /**
   * Load the modules, then wait for an `open` message with port, source ports, TAP names and MTUs
   * (those of worker 0, known only once it is ready): the threads start in parallel.
   */
  wait?: boolean;
}

/** What worker 0 settles and the other workers join. */
export type Placement = Pick<WorkerInit, 'port' | 'sourcePorts' | 'taps' | 'mtus'>;

/** Dataplane control methods a worker applies as they come (the main thread validated them first). */
export const WORKER_OPS = ['setFdb', 'deleteFdb', 'setNeighbour', 'deleteNeighbour', 'addFloodVtep', 'removeFloodVtep', 'removeNetwork', 'removeStage'] as const;
export type WorkerOp = (typeof WORKER_OPS)[number];

/** An error as it crosses the thread boundary. */
export interface WorkerErrorInfo {
  name: string;
  code: string;
  message: string;
}

export type ToWorker =
  | ({ t: 'open' } & Placement)
  | { t: 'op'; op: WorkerOp; args: unknown[] }
  | { t: 'stats'; id: number }
  | { t: 'fdb'; id: number; vni: number }
  | { t: 'close'; id: number };

export type FromWorker =
  | { t: 'ready'; port: number; sourcePorts: number[]; taps: string[]; mtus: number[]; stats: HostStats }
  | { t: 'failed'; error: WorkerErrorInfo }
  /** id 0: the periodic report. */
  | { t: 'stats'; id: number; stats: HostStats }
  | { t: 'fdb'; id: number; entries: FdbEntry[] }
  | { t: 'closed'; id: number }
  /** A control op the worker refused although the main thread had taken it (not expected). */
  | { t: 'warn'; error: WorkerErrorInfo };

/** How often a worker reports its counters unasked (what the main thread's sync stats() shows). */
export const STATS_PUSH_MS = 250;

export function errorInfo(err: unknown): WorkerErrorInfo {
  const e = err as { name?: unknown; code?: unknown; message?: unknown };
  return { name: String(e?.name ?? 'Error'), code: typeof e?.code === 'string' ? e.code : 'UNKNOWN', message: String(e?.message ?? err) };
}
