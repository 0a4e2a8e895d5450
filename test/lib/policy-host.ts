/**
 * A policy-filtering VTEP in a testbed namespace, for the netns tests that judge real traffic
 * (test/policy-loss.test.ts, test/policy-gbp-loss.test.ts): openHost with one PolicyFilter stage
 * on one network, identities (address → groups, optionally a GBP id) and GBP group policies as
 * given, and a responder stage counting the TCP packets to `countPort` that the filter let
 * through toward the workload. The test talks to it over stdio:
 *   `stats` → `STATS <report>`; `policy <json>` → `SET <Date.now()> <report>`, the report taken in
 *   the same turn as the swap (so no packet is judged between the two).
 */
import type { ChildProcess } from 'node:child_process';
import type { Policy } from '@overlay/services';
import type { HostConfig } from './host-config.js';
import { RUNNER_STOP_AND_READY } from './runner-script.js';
import type { TestHost } from './testbed.js';
import { repoRoot } from './vtep.js';
import { collectLines, until } from './wait.js';

export interface PolicyHostConfig {
  host: HostConfig;
  vni: number;
  policy: Policy;
  /** Write the sender's GBP id into what leaves, judge what arrives by the id it carries. */
  gbp?: boolean;
  /** [address, groups, gbp id?] */
  identities: [string, string[], number?][];
  /** [gbp id, groups]: what an id arriving from elsewhere stands for. */
  groupPolicies?: [number, string[]][];
  /** TCP destination port whose packets passing the filter outside are counted (`passed`). */
  countPort?: number;
}

export interface PolicyReport {
  generation: number;
  counters: Record<string, number>;
  rules: Record<string, Record<'inside' | 'outside', { drops: number; allows: number }>>;
  /** The dataplane's counts for the stage (drop reasons). */
  stage: Record<string, number>;
  passed: number;
}

const SCRIPT = `
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { PolicyFilter } from '@overlay/services';
const { hostOptions } = await import(process.env.HOST_CONFIG_TS);
const cfg = JSON.parse(process.env.POLICY_HOST);
const host = await openHost(hostOptions(cfg.host));
const f = new PolicyFilter({ policy: cfg.policy, log: () => {}, gbp: !!cfg.gbp });
for (const [address, groups, id] of cfg.identities) f.identity.set(address, groups, id ?? -1);
for (const [id, groups] of cfg.groupPolicies ?? []) f.identity.defineGroupPolicy(id, groups);
host.dataplane.addStage(cfg.vni, f);
// TCP to cfg.countPort seen outside after every filter (a responder runs last).
let passed = 0;
const toPort = (d, l3) => d[l3 + 9] === 6 && d.readUInt16BE(l3 + 4 * (d[l3] & 15) + 2) === cfg.countPort;
host.dataplane.addStage(cfg.vni, { name: 'count_port', kind: 'responder', outside: (ctx) => ((passed += +(ctx.etherType === 0x0800 && toPort(ctx.pool.data, ctx.l3))), 0) });
const report = () => JSON.stringify({ ...f.stats(), rules: f.ruleCounters(), stage: host.dataplane.stats().stages.policy, passed });
const commands = {
  stats: () => 'STATS ' + report(),
  policy: (json) => (f.setPolicy(JSON.parse(json)), 'SET ' + Date.now() + ' ' + report()),
};
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, ...rest] = line.split(' ');
  if (commands[cmd]) process.stdout.write(commands[cmd](rest.join(' ')) + '\\n');
});
${RUNNER_STOP_AND_READY}`;

export interface PolicyHost {
  child: ChildProcess;
  stats(): Promise<PolicyReport>;
  /** Swap the policy; resolves with the report taken at the swap. */
  setPolicy(p: Policy): Promise<PolicyReport>;
  /** SIGTERM, SIGKILL after 2 s. */
  stop(): Promise<void>;
}

export async function startPolicyHost(h: TestHost, cfg: PolicyHostConfig): Promise<PolicyHost> {
  const child = h.spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    cwd: `${repoRoot}/test`,
    env: { ...process.env, POLICY_HOST: JSON.stringify(cfg), HOST_CONFIG_TS: `${repoRoot}/test/lib/host-config.ts` },
  });
  const out = collectLines(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const ask = async (line: string, prefix: string): Promise<string> => {
    const before = out.length;
    child.stdin!.write(line + '\n');
    return until(`${prefix} from ${h.name}`, () => out.slice(before).find((l) => l.startsWith(prefix)), 10_000);
  };
  const stop = async () => {
    if (gone()) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  };
  try {
    await until(`policy host on ${h.name} READY`, () => {
      if (gone()) throw new Error(`policy host on ${h.name} exited`);
      return out.includes('READY') ? true : undefined;
    }, 40_000);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}; stderr: ${err.split('\n').slice(-12).join(' | ')}`);
  }
  return {
    child,
    stats: async () => JSON.parse((await ask('stats', 'STATS ')).slice(6)) as PolicyReport,
    setPolicy: async (p) => {
      const l = await ask(`policy ${JSON.stringify(p)}`, 'SET ');
      return JSON.parse(l.slice(l.indexOf(' ', 4) + 1)) as PolicyReport;
    },
    stop,
  };
}

/**
 * One TCP connection attempt from `h` to address:port with bash's /dev/tcp, bounded by `seconds`:
 * 'connected', or 'timeout' when no handshake completed (what a policy drop looks like), or
 * 'refused' (any other failure).
 */
export async function connectAttempt(h: TestHost, address: string, port: number, seconds: number): Promise<'connected' | 'timeout' | 'refused'> {
  const r = await h.run('timeout', [String(seconds), 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], { timeoutMs: seconds * 1000 + 5000 });
  return r.code === 0 ? 'connected' : r.code === 124 ? 'timeout' : 'refused';
}
