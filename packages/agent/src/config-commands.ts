/**
 * The config commands of the CLI (cli.ts parses the arguments): `plan`, `apply`, `import
 * compose`, `schema`, and the control socket's `config` / `apply PATH` answers a running agent
 * gives them.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { loadConfig } from './config.js';
import { AgentConfigError } from './config-types.js';
import { schemaText } from './config-schema.js';
import type { LiveConfig } from './apply.js';
import type { Explanation, FlowQuery } from '@overlay/services';
import { formatPlan, plan, planView, type Plan, type PlanView } from './plan.js';
import { queryControl } from './runtime.js';
import { importCompose } from './compose.js';

export interface Out { stdout: (s: string) => void; stderr: (s: string) => void }
interface ControlAnswer { view?: PlanView; ok?: boolean; plan?: Plan; error?: string; code?: string; explanation?: Explanation & { network: string } }

/** The running agent's answers to `config` and `apply PATH` (undefined: not ours). */
export async function controlCommand(live: LiveConfig, line: string): Promise<ControlAnswer | undefined> {
  if (line === 'config') return { view: planView(live.cfg) };
  if (line.startsWith('explain ')) {
    try {
      const q = JSON.parse(line.slice(8)) as FlowQuery & { network?: string };
      const net = live.cfg.networks.find((n) => n.name === q.network) ?? (q.network === undefined && live.filters.size === 1 ? live.cfg.networks.find((n) => live.filters.has(n.vni)) : undefined);
      if (!net) return { error: q.network === undefined ? 'give --network: this agent filters more than one network (or none)' : `no network ${JSON.stringify(q.network)}`, code: 'OVL_ERR_USAGE' };
      const f = live.filters.get(net.vni);
      if (!f) return { error: `network ${net.name} has no policy (everything passes)`, code: 'OVL_ERR_NO_POLICY' };
      return { explanation: { network: net.name, ...f.explain(q) } };
    } catch (e) {
      const err = e as { message?: string; code?: string };
      return { error: err.message ?? String(e), code: err.code };
    }
  }
  if (line.startsWith('apply ')) {
    try {
      // A large file is read and validated in a worker (config-off-thread.ts), so packets keep flowing.
      return { ok: true, plan: await live.applyAsync({ path: line.slice(6), host: live.cfg.cluster ? live.cfg.name : undefined }) };
    } catch (e) {
      const err = e as { message?: string; code?: string };
      return { error: err.message ?? String(e), code: err.code };
    }
  }
  return undefined;
}

/** `agent plan --config FILE [--from OLD | --socket PATH]`: what would change. */
export async function planCommand(o: { config: string; from?: string; socket?: string; host?: string }, out: Out): Promise<number> {
  const next = loadConfig(o.config, { host: o.host });
  let old: PlanView;
  if (o.from) old = planView(loadConfig(o.from, { host: o.host ?? (next.cluster ? next.name : undefined) }));
  else {
    const sock = o.socket ?? next.controlSocket;
    let a: ControlAnswer;
    try {
      a = (await queryControl(sock, 5000, 'config')) as ControlAnswer;
    } catch (e) {
      out.stderr(`agent: cannot reach the agent at ${sock}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (or give --from OLDFILE)\n`);
      return 1;
    }
    if (!a.view) {
      out.stderr(`agent: the agent at ${sock} did not answer its config: ${a.error ?? 'no view'}\n`);
      return 1;
    }
    old = a.view;
  }
  out.stdout(formatPlan(plan(old, planView(next))));
  return 0;
}

/** `agent apply --config FILE [--socket PATH]`: the running agent applies FILE (all or nothing). */
export async function applyCommand(o: { config: string; socket?: string; host?: string }, out: Out): Promise<number> {
  const next = loadConfig(o.config, { host: o.host }); // refused here, with every path, before the agent sees it
  const sock = o.socket ?? next.controlSocket;
  let a: ControlAnswer;
  try {
    a = (await queryControl(sock, 30_000, `apply ${resolve(o.config)}`)) as ControlAnswer;
  } catch (e) {
    out.stderr(`agent: cannot reach the agent at ${sock}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 1;
  }
  if (a.ok && a.plan) {
    out.stdout(formatPlan(a.plan));
    return 0;
  }
  out.stderr(`agent: not applied (nothing changed): ${a.error ?? 'no answer'}\n`);
  return a.code === 'OVL_ERR_INVALID_CONFIG' ? 2 : 1;
}

/** `agent policy explain …`: which rule of the running agent's policy decides a flow, and why. */
export async function explainCommand(o: { socket: string; json?: boolean; query: FlowQuery & { network?: string } }, out: Out): Promise<number> {
  let a: ControlAnswer;
  try {
    a = (await queryControl(o.socket, 5000, `explain ${JSON.stringify(o.query)}`)) as ControlAnswer;
  } catch (e) {
    out.stderr(`agent: cannot reach the agent at ${o.socket}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 1;
  }
  const x = a.explanation;
  if (!x) {
    out.stderr(`agent: ${a.error ?? 'no answer'}\n`);
    return a.code === 'OVL_ERR_USAGE' || a.code === 'OVL_ERR_POLICY' ? 2 : 1;
  }
  if (o.json) out.stdout(JSON.stringify(x, null, 2) + '\n');
  else {
    const q = o.query;
    const what = `${q.proto}${q.port !== undefined ? ` port ${q.port}` : q.icmpType !== undefined ? ` type ${q.icmpType}` : ''}`;
    out.stdout(
      `${x.action.toUpperCase()} ${q.src} → ${q.dst} ${what} on ${x.network}\n` +
        `  decided by: ${x.ruleId === null ? `the default action (no rule matched)` : `rule ${x.ruleId} (tier ${x.tier}, #${x.ruleIndex})`}, policy generation ${x.generation}\n` +
        `  source groups: ${x.srcGroups.join(', ') || '(none)'}; destination groups: ${x.dstGroups.join(', ') || '(none)'}\n`,
    );
  }
  return 0;
}

/** `agent import compose FILE`: our YAML on stdout, one warning per ignored key on stderr. */
export function importCommand(kind: string | undefined, file: string | undefined, out: Out): number {
  if (kind !== 'compose' || !file) {
    out.stderr('agent: usage: agent import compose FILE (see agent import --help)\n');
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AgentConfigError('FILE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const r = importCompose(text);
  for (const w of r.warnings) out.stderr(`warning: ${w.path}: ${w.message}\n`);
  out.stdout(`# imported from ${file} by agent import compose; add name, keys and endpoints, then: agent check --config FILE\n${toYaml(r.config, { aliasDuplicateObjects: false })}`);
  return 0;
}

export function schemaCommand(out: Out): number {
  out.stdout(schemaText());
  return 0;
}
