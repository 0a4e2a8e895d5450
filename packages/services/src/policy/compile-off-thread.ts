/**
 * A policy compiled off the event loop. A 10 000-rule policy takes 0.1–0.5 s of CPU to compile
 * (docs/policy.md), and while the main thread compiles, no packet of any network is handled. So
 * PolicyFilter.preparePolicy validates and compiles a large policy (`OFF_THREAD_MIN_RULES` rules
 * or more) in a worker started for that one compile: the main thread gives every group name its
 * id (the registry lives here), sends the policy as JSON text, and gets the compiled policy back:
 * its tables and per-rule arrays by transfer (typed arrays, nothing to copy), the rule ids and
 * tiers as two string arrays. CompiledPolicy takes them as they are (compile.ts), the same object
 * shape as a compile on the main thread. Smaller policies compile in place: a worker
 * costs more to start (tens of ms) than they take.
 *
 * What the main thread still does: collect the policy's group names and give them ids, write the
 * policy as JSON, start the worker and take its answer — against the whole validation and
 * compile before.
 */
import type { Worker } from 'node:worker_threads';
import { OverlayError, askWorker, spawnWorker } from '@overlay/dataplane';
import type { BuiltPolicy, CompileOptions } from './compile-tables.js';
import type { CompileAnswer, CompileRequest } from './compile-worker.js';
import { GROUP_RE, PolicyError, validatePolicy, type NormalPolicy, type Policy } from './rules.js';

/** Rule count from which preparePolicy compiles in a worker. */
export const OFF_THREAD_MIN_RULES = 256;
const COMPILE_TIMEOUT_MS = 120_000;

/** A compile in a worker that did not give tables back: `causeCode` TIMEOUT, CRASHED, EXITED or FAILED. */
export class PolicyCompileError extends OverlayError {
  readonly causeCode: string;
  constructor(causeCode: string, detail: string) {
    super('OVL_ERR_POLICY_COMPILE', `policy compile worker: ${causeCode}: ${detail}`);
    this.causeCode = causeCode;
  }
}

/** The compile worker: compile-worker.js beside this file, or its .ts source through tsx (spawnWorker). */
function spawn(): Worker {
  // node:worker_threads is loaded by the first off-thread compile: an agent without a large policy does not hold it (docs/agent-memory.md).
  return spawnWorker(import.meta.url, './compile-worker');
}

/** How many rules a policy as given has (0 when it is not shaped like one: validation will say why). */
function ruleCount(policy: unknown): number {
  const tiers = (policy as { tiers?: unknown } | null)?.tiers;
  if (typeof tiers !== 'object' || tiers === null) return 0;
  let n = 0;
  for (const t of Object.values(tiers)) if (Array.isArray(t)) n += t.length;
  return n;
}

/** The group names a policy as given names (well-formed ones only: a bad one fails validation in the worker). */
function groupNames(policy: unknown): Set<string> {
  const out = new Set<string>();
  for (const t of Object.values((policy as { tiers: Record<string, unknown> }).tiers)) {
    if (!Array.isArray(t)) continue;
    for (const r of t as { from?: { groups?: unknown }; to?: { groups?: unknown } }[]) {
      for (const side of [r?.from, r?.to]) {
        const gs = side?.groups;
        if (Array.isArray(gs)) for (const g of gs) if (typeof g === 'string' && GROUP_RE.test(g)) out.add(g);
      }
    }
  }
  return out;
}

/**
 * Validate and compile `policy` in a worker. `groupId` is called here, for every group name the
 * policy gives, before the worker starts (ids are the main thread's). Rejects with PolicyError
 * (as validatePolicy would) or PolicyCompileError.
 */
export function compileOffThread(policy: unknown, groupId: (name: string) => number, options: CompileOptions = {}): Promise<BuiltPolicy> {
  const req: CompileRequest = { policy: JSON.stringify(policy), groups: [...groupNames(policy)].map((g) => [g, groupId(g)]), options };
  return askWorker<CompileAnswer, BuiltPolicy>(
    spawn(),
    req,
    COMPILE_TIMEOUT_MS,
    (m: CompileAnswer) => (m.ok ? m.built : m.path !== undefined ? new PolicyError(m.path, m.message.slice(m.path.length + 2)) : new PolicyCompileError('FAILED', m.message)),
    (why, detail) => new PolicyCompileError(why, detail),
  );
}

/** A policy validated and compiled for PolicyFilter.installPolicy: `built` by a worker, or `normal` to compile in place. */
export interface PreparedPolicy {
  readonly built: BuiltPolicy | undefined;
  readonly normal: NormalPolicy | undefined;
  /** True when it was validated and compiled in a worker. */
  readonly offThread: boolean;
}

/** Validate `policy` (rejects with PolicyError) and, when it is large, compile it in a worker. */
export async function preparePolicy(policy: Policy, groupId: (name: string) => number, options: CompileOptions = {}): Promise<PreparedPolicy> {
  if (ruleCount(policy) < OFF_THREAD_MIN_RULES) return { built: undefined, normal: validatePolicy(policy), offThread: false };
  return { built: await compileOffThread(policy, groupId, options), normal: undefined, offThread: true };
}
