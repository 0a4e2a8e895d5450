import { OverlayError } from '@overlay/dataplane';

/**
 * A data-path worker (HostOptions.workers > 1) could not open its sockets or TAP queues, or died
 * before it was ready. `causeCode` is the worker's error code (e.g. 'EINVAL' when the TAP exists
 * and is not multi-queue, 'TIMEOUT', 'EXITED').
 */
export class WorkerStartError extends OverlayError {
  readonly worker: number;
  readonly causeCode: string;
  constructor(worker: number, causeCode: string, detail: string) {
    super('OVL_ERR_HOST_WORKER_START', `data-path worker ${worker} did not start: ${causeCode}: ${detail}`);
    this.worker = worker;
    this.causeCode = causeCode;
  }
}

/**
 * A Dataplane method that cannot cross to worker threads: a stage is code with state, and a new
 * network needs a TAP queue per worker. Use `workers: 1` for stages (services, policy) and
 * networks added at run time.
 */
export class WorkersUnsupportedError extends OverlayError {
  readonly method: string;
  constructor(method: string) {
    super('OVL_ERR_HOST_WORKERS_UNSUPPORTED', `${method} is not available with workers > 1 (docs/multicore.md)`);
    this.method = method;
  }
}
