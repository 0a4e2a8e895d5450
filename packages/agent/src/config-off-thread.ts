/**
 * A large config file loaded off the event loop (`agent apply`, SIGHUP: LiveConfig.applyAsync).
 * loadConfig parses the YAML, runs the JSON Schema and the semantic pass (every policy validated)
 * on the calling thread: a file with 10 000 policy rules held the agent's loop for seconds
 * (docs/policy.md "Large configs"), and while it is held no packet of any network is handled. So
 * a file of OFF_THREAD_MIN_BYTES or more is loaded in a worker started for that one load (as the
 * policy compile is, compile-off-thread.ts; spawnWorker), which posts the AgentConfig back (a
 * structured clone: this thread only deserializes it). Errors are the ones loadConfig throws in
 * place: the same AgentConfigError with the same problems (paths and messages), or the same
 * code and message; a worker that fails itself is a ConfigWorkerError. Smaller files load in
 * place: starting a worker costs more than they take.
 */
import { statSync } from 'node:fs';
import { OverlayError, askWorker, spawnWorker } from '@overlay/dataplane';
import { loadConfig } from './config.js';
import type { ConfigProblem } from './config-schema.js';
import { AgentConfigError, type AgentConfig } from './config-types.js';

/** File size from which applyAsync loads a config in a worker (≈ 300 policy rules written one field a line). */
export const CONFIG_OFF_THREAD_MIN_BYTES = 64 * 1024;
const LOAD_TIMEOUT_MS = 120_000;

export interface ConfigRequest { path: string; host?: string }
export type ConfigAnswer =
  | { ok: true; cfg: AgentConfig }
  | { ok: false; problems: readonly ConfigProblem[] }
  | { ok: false; problems?: undefined; name: string; code?: string; message: string };

/** A config load in a worker that gave no answer: `causeCode` TIMEOUT, CRASHED or EXITED. */
export class ConfigWorkerError extends OverlayError {
  readonly causeCode: string;
  constructor(causeCode: string, detail: string) {
    super('OVL_ERR_CONFIG_WORKER', `config load worker: ${causeCode}: ${detail}`);
    this.causeCode = causeCode;
  }
}

/** An error the worker reported that is not an AgentConfigError: same name, code and message. */
class RelayedError extends Error {
  constructor(readonly code: string | undefined, name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Buffers arrive as plain Uint8Arrays: give the ones loadConfig makes (key bytes) their class back. */
function revive(cfg: AgentConfig): AgentConfig {
  cfg.signingKey = Buffer.from(cfg.signingKey.buffer, cfg.signingKey.byteOffset, cfg.signingKey.byteLength);
  return cfg;
}

/** loadConfig(path, { host }) in a worker started for it. */
export function loadConfigOffThread(path: string, host?: string): Promise<AgentConfig> {
  return askWorker<ConfigAnswer, AgentConfig>(
    spawnWorker(import.meta.url, './config-worker'),
    { path, host } satisfies ConfigRequest,
    LOAD_TIMEOUT_MS,
    (m: ConfigAnswer) =>
      m.ok ? revive(m.cfg) : m.problems ? new AgentConfigError(m.problems[0].path, m.problems[0].message, m.problems.slice(1)) : new RelayedError(m.code, m.name, m.message),
    (why, detail) => new ConfigWorkerError(why, detail),
  );
}

/**
 * Load `path` as loadConfig does; a file of CONFIG_OFF_THREAD_MIN_BYTES or more in a worker
 * (`minBytes` for tests). A file that cannot be stat'ed loads in place (loadConfig names why).
 */
export async function loadConfigAsync(path: string, o: { host?: string; minBytes?: number } = {}): Promise<AgentConfig> {
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    // loadConfig reports it, in place
  }
  if (size < (o.minBytes ?? CONFIG_OFF_THREAD_MIN_BYTES)) return loadConfig(path, { host: o.host });
  return loadConfigOffThread(path, o.host);
}
