/**
 * The worker of config-off-thread.ts: loads one config file (read, YAML, schema, semantic checks:
 * loadConfig as it is) and posts the AgentConfig back, or the error's class, code, message and
 * problems so the main thread throws what loadConfig in place throws.
 *
 * loadConfig reaches @overlay/services' index, which imports raw-socket (the ICMP probe); that
 * addon is not context-aware, so a second thread cannot load it. A resolve hook gives this thread
 * an empty stand-in first (nothing here probes), then the config modules are imported.
 */
import { register } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { ConfigAnswer, ConfigRequest } from './config-off-thread.js';

const port = parentPort;
if (!port) throw new Error('config-worker.ts runs as a worker thread of loadConfigOffThread');
const HOOKS = "export async function resolve(s, c, next) { return s === 'raw-socket' ? { url: 'data:text/javascript,export default {}', shortCircuit: true } : next(s, c); }";
register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);
const { loadConfig } = await import('./config.js');
const { AgentConfigError } = await import('./config-types.js');
port.once('message', (req: ConfigRequest) => {
  let answer: ConfigAnswer;
  try {
    answer = { ok: true, cfg: loadConfig(req.path, { host: req.host }) };
  } catch (e) {
    const err = e as Error & { code?: string };
    answer = e instanceof AgentConfigError
      ? { ok: false, problems: e.problems }
      : { ok: false, name: err.name, code: err.code, message: String(err.message ?? e) };
  }
  port.postMessage(answer);
});
