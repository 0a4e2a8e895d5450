/**
 * Start a worker thread whose module sits beside the caller: `spawnWorker(import.meta.url,
 * './compile-worker')` runs the compiled `compile-worker.js` when the caller runs from dist/, or
 * the `.ts` source through tsx's loader when it runs from sources (tests, benchmarks run with
 * `--import tsx`: a worker does not inherit the parent's loader hooks). One place for what the
 * host's data-path workers, the policy compile and the agent's config load each did alike.
 *
 * node:worker_threads is loaded by the first call, so a process that never starts a worker does not
 * hold it (docs/agent-memory.md). The caller passes its own `import.meta.url` (the agent's bundle
 * rewrites each file's to that file's dist path, so the worker is still found beside it).
 */
import { createRequire } from 'node:module';
import type { Worker, WorkerOptions } from 'node:worker_threads';

/** A new Worker running `entry` (relative to `callerUrl`, without extension) with `options`. */
export function spawnWorker(callerUrl: string, entry: string, options: WorkerOptions = {}): Worker {
  const { Worker: W } = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
  if (callerUrl.endsWith('.js')) return new W(new URL(`${entry}.js`, callerUrl), options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(new URL(`${entry}.ts`, callerUrl).href)});`;
  return new W(code, { ...options, eval: true });
}

/** Why a worker started for one job gave no answer. */
export type WorkerFailure = 'TIMEOUT' | 'CRASHED' | 'EXITED';

/**
 * Post `request` to `w` and settle on its first message, mapped by `answer` to a value or an
 * Error (rejected); no message within `timeoutMs`, an error thrown in the worker or its exit
 * first reject with `fail(why, detail)`. The worker is terminated once settled, either way.
 */
export function askWorker<M, T>(w: Worker, request: unknown, timeoutMs: number, answer: (m: M) => T | Error, fail: (why: WorkerFailure, detail: string) => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err: Error | undefined, value?: T) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void w.terminate();
      if (err) reject(err);
      else resolve(value as T);
    };
    const timer = setTimeout(() => finish(fail('TIMEOUT', `no answer in ${timeoutMs} ms`)), timeoutMs);
    w.once('message', (m: M) => {
      const v = answer(m);
      if (v instanceof Error) finish(v);
      else finish(undefined, v);
    });
    w.once('error', (e) => finish(fail('CRASHED', e.message)));
    w.once('exit', (code) => finish(fail('EXITED', `exited (${code}) before it answered`)));
    w.postMessage(request);
  });
}
