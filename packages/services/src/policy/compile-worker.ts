/**
 * The worker that compiles a large policy (compile-off-thread.ts starts one per compile): one
 * message in — the policy as given (JSON text), the ids the main thread's registry gave its group
 * names, the compile options — and one out: the compiled policy (its head and tables, buffers
 * transferred), or the error (a PolicyError's path and message).
 */
import { parentPort } from 'node:worker_threads';
import { buildTables, policyHead, tableBuffers, type BuiltPolicy, type CompileOptions } from './compile-tables.js';
import { PolicyError, validatePolicy } from './rules.js';

export interface CompileRequest {
  /** The policy as JSON text (a string crosses threads as one copy; an object graph is cloned field by field). */
  policy: string;
  groups: [string, number][];
  options: CompileOptions;
}

export type CompileAnswer = { ok: true; built: BuiltPolicy } | { ok: false; path?: string; message: string };

const port = parentPort;
if (port) {
  port.once('message', (m: CompileRequest) => {
    try {
      const normal = validatePolicy(JSON.parse(m.policy));
      const ids = new Map(m.groups);
      const tables = buildTables(
        normal.rules,
        (g) => {
          const id = ids.get(g);
          if (id === undefined) throw new Error(`group ${JSON.stringify(g)} was given no id`);
          return id;
        },
        m.options,
      );
      const built: BuiltPolicy = { head: policyHead(normal), tables };
      port.postMessage({ ok: true, built } satisfies CompileAnswer, [...tableBuffers(tables), built.head.action.buffer as ArrayBuffer, built.head.log.buffer as ArrayBuffer]);
    } catch (e) {
      const answer: CompileAnswer = e instanceof PolicyError ? { ok: false, path: e.path, message: e.message } : { ok: false, message: (e as Error)?.message ?? String(e) };
      port.postMessage(answer);
    }
  });
}
