/**
 * The running agent's config, changed in place: `agent apply`, SIGHUP, and the policy filter the
 * config's `policies` install.
 *
 * apply(next) is all or nothing:
 * 1. plan the change (plan.ts); any change that needs a restart (host settings, a network's VNI,
 *    subnet or device, the endpoint that is the TAP) refuses the whole config;
 * 2. build everything new first: the identity table's entries (checked), the new filters for
 *    networks that get a policy, every instance spec; a failure here changes nothing;
 *    applyAsync (`agent apply`, SIGHUP) first compiles each changed policy, a large one in a
 *    worker, so the event loop is not held while it compiles;
 * 3. swap: policies (`setPolicy`/`installPolicy` swap the compiled rules in one assignment; tracked flows are
 *    re-judged on their next packet by generation, so flows both versions allow go on), the
 *    identity table (one rebuild), endpoint records, then service instances (records; DNS and
 *    VIPs follow the records through the service view).
 *
 * Groups for policies: an endpoint's `groups`, and every instance's address is in the group
 * named like its service (IPv4 and IPv6 addresses alike) — the instances this file declares (a cluster file declares every
 * host's) and, with `view`, every instance gossip brought (the table is rebuilt once per burst of
 * changes, on the next turn of the event loop).
 */
import { formatIpAddress, type Dataplane } from '@overlay/dataplane';
import { IdentityTable, PolicyFilter, preparePolicy, type PolicyLogEntry, type PreparedPolicy } from '@overlay/services';
import type { AgentConfig, PolicyConfig, ServiceConfig, ServiceInstanceConfig } from './config-types.js';
import { AgentConfigError } from './config-types.js';
import { loadConfigAsync } from './config-off-thread.js';
import { formatPlan, plan, planView, type Plan } from './plan.js';
import type { LocalInstance } from './services-local.js';
import type { ServiceInstance, ServiceSink } from './services.js';

/** The agent as apply uses it (Agent satisfies it). */
export interface EndpointPublisher {
  publish(network: { name: string; vni: number }, ep: { id: string; mac: Uint8Array; ipv4?: Uint8Array; ipv6?: Uint8Array }): unknown;
  unpublish(network: string, id: string): boolean;
}
/** The local services as apply uses them (ServicesRuntime.local satisfies it). */
export interface InstanceControl {
  add(inst: LocalInstance): void;
  remove(network: string, id: string): boolean;
}

/** Group → Group Policy ID (VXLAN-GBP) over all policies (the config checked they agree). */
export function groupPolicyIds(c: AgentConfig): Map<string, number> {
  return new Map(c.policies.flatMap((p) => Object.entries(p.groupIds ?? {})));
}

/**
 * Address → its groups, and its Group Policy ID when one of its groups has one (the first in
 * order: the endpoint's own groups as written, then its services).
 */
export function identityEntries(c: AgentConfig, learned: Iterable<Pick<ServiceInstance, 'service' | 'ipv4'> & { ipv6?: Uint8Array }> = []): ([string, string[]] | [string, string[], number])[] {
  const m = new Map<string, Set<string>>();
  const put = (a: string | undefined, gs: Iterable<string>) => {
    if (!a) return;
    const s = m.get(a) ?? new Set<string>();
    for (const g of gs) s.add(g);
    m.set(a, s);
  };
  // Both families: an endpoint's IPv6 address is in the same groups as its IPv4 one (canonical
  // text, so one address is one entry however the file wrote it).
  const v6 = (b: Uint8Array | undefined) => (b?.length === 16 ? formatIpAddress(6, b) : undefined);
  const putBoth = (e: { ipv4Text?: string; ipv6?: Uint8Array }, gs: Iterable<string>) => {
    put(e.ipv4Text, gs);
    put(v6(e.ipv6), gs);
  };
  for (const n of c.networks) {
    const eps = [...n.endpoints, ...n.remote];
    for (const e of eps) putBoth(e, e.groups);
    for (const s of c.services.filter((x) => x.network === n.name)) {
      const ids = new Set([...s.instances, ...s.remoteInstances].map((i) => i.endpoint));
      for (const e of eps) if (ids.has(e.id)) putBoth(e, [s.name]);
    }
  }
  for (const i of learned) {
    if (i.ipv4.length === 4) put(i.ipv4.join('.'), [i.service]);
    put(v6(i.ipv6), [i.service]);
  }
  const ids = groupPolicyIds(c);
  return [...m].filter(([, g]) => g.size).map(([a, g]) => {
    const id = [...g].map((x) => ids.get(x)).find((x) => x !== undefined);
    return id === undefined ? [a, [...g].sort()] : [a, [...g].sort(), id];
  });
}

export function instanceSpec(s: ServiceConfig, i: ServiceInstanceConfig): LocalInstance {
  return { network: s.network, service: s.name, id: i.id, endpoint: i.endpoint, ipv4: i.ipv4, ipv6: i.ipv6, ports: i.ports, mode: s.endpointMode, vip: s.vip, ttl: s.ttl, health: s.healthcheck };
}
const instanceKey = (s: ServiceConfig, i: ServiceInstanceConfig) => `${s.network}/${s.name}/${i.id}`;

export interface LiveConfigOptions {
  cfg: AgentConfig;
  agent: EndpointPublisher;
  instances: () => InstanceControl | undefined;
  dataplane?: Dataplane;
  log: (s: string) => void;
  /** The instances gossip brought (ServicesRuntime.view): their addresses join their service's group. */
  view?: { attach(sink: ServiceSink): void; all(): Iterable<ServiceInstance> };
  /** Where the filters' decision log goes (default: the filter's own, stderr JSON). */
  policyLog?: (e: PolicyLogEntry) => void;
}

/** A policy with no rules: what a filter is built with before applyAsync installs its prepared one. */
const NO_RULES = { defaultAction: 'deny', tiers: {} } as const;

export class LiveConfig {
  cfg: AgentConfig;
  readonly identity = new IdentityTable();
  /** The `policy` stage per VNI this class installed. */
  readonly filters = new Map<number, PolicyFilter>();
  applied = 0;
  private refreshQueued = false;
  private closed = false;
  /** applyAsync runs one apply at a time, in the order asked. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: LiveConfigOptions) {
    this.cfg = o.cfg;
  }

  /** Install the config's policies (the agent's start); throws before any stage is added if one cannot be built. */
  start(): void {
    this.defineGroupPolicies(this.cfg);
    this.identity.replace(this.entries(this.cfg));
    if (this.o.view && this.cfg.policies.length) {
      const changed = () => this.queueRefresh();
      this.o.view.attach({ upsert: changed, remove: changed });
    }
    const built = this.buildFilters(this.cfg.policies);
    for (const [vni, f] of built) {
      this.o.dataplane!.addStage(vni, f);
      this.filters.set(vni, f);
    }
  }

  /** Declare the config's Group Policy IDs in the identity table, forgetting the ones it no longer has. */
  private defineGroupPolicies(c: AgentConfig): void {
    const next = groupPolicyIds(c);
    for (const [g, id] of groupPolicyIds(this.cfg)) if (next.get(g) !== id) this.identity.defineGroupPolicy(id, []);
    for (const [g, id] of next) this.identity.defineGroupPolicy(id, [g]);
  }

  private entries(c: AgentConfig): ReturnType<typeof identityEntries> {
    return identityEntries(c, c.policies.length && this.o.view ? this.o.view.all() : []);
  }

  /** Rebuild the identity table once for a burst of instance changes. */
  private queueRefresh(): void {
    if (this.refreshQueued || this.closed) return;
    this.refreshQueued = true;
    setImmediate(() => {
      this.refreshQueued = false;
      if (this.closed) return;
      try {
        this.identity.replace(this.entries(this.cfg));
      } catch (e) {
        this.o.log(`identity table not updated: ${(e as Error).message}`);
      }
    });
  }

  private buildFilters(policies: readonly PolicyConfig[], prepared?: ReadonlyMap<number, PreparedPolicy>): Map<number, PolicyFilter> {
    const out = new Map<number, PolicyFilter>();
    if (!this.o.dataplane) return out;
    for (const p of policies) {
      const net = this.cfg.networks.find((n) => n.name === p.network);
      if (!net?.device || this.filters.has(p.vni)) continue;
      const ready = prepared?.get(p.vni);
      // Prepared (applyAsync): built with nothing to compile, then given its compiled rules.
      const f = new PolicyFilter({ policy: ready ? NO_RULES : p.policy, identity: this.identity, log: this.o.policyLog, gbp: net.gbp === true });
      if (ready) f.installPolicy(ready);
      out.set(p.vni, f);
    }
    return out;
  }

  /**
   * apply(next) with the policies it changes or adds compiled first, a large one in a worker
   * (PolicyFilter.preparePolicy), so the event loop — every network's packets — is not held
   * while 10 000 rules compile. Applies run one at a time in the order asked (`agent apply`,
   * SIGHUP). A policy that fails to compile rejects before anything changed. Given a file
   * (`{ path, host }`) instead of a loaded config, it loads it first, a large one in a worker
   * (config-off-thread.ts), rejecting with the errors loadConfig throws.
   */
  applyAsync(nextOrFile: AgentConfig | { path: string; host?: string }): Promise<Plan> {
    const run = this.queue.then(async () => {
      const next = 'path' in nextOrFile ? await loadConfigAsync(nextOrFile.path, { host: nextOrFile.host }) : nextOrFile;
      if (this.plan(next).changes.some((c) => c.restart)) return this.apply(next); // refuses, as apply does
      const prepared = new Map<number, PreparedPolicy>();
      for (const np of next.policies) {
        if (this.filters.has(np.vni) && !this.policyChanged(np)) continue;
        prepared.set(np.vni, await preparePolicy(np.policy, (g) => this.identity.groupId(g)));
      }
      return this.apply(next, prepared);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Whether `np` differs from the policy the running config has for its network. */
  private policyChanged(np: PolicyConfig): boolean {
    return JSON.stringify(np.policy) !== JSON.stringify(this.cfg.policies.find((x) => x.vni === np.vni)?.policy);
  }

  /** What apply(next) would do. */
  plan(next: AgentConfig): Plan {
    return plan(planView(this.cfg), planView(next));
  }

  /** Apply `next` completely or not at all (see the file comment). Returns the plan applied. */
  apply(next: AgentConfig, prepared?: ReadonlyMap<number, PreparedPolicy>): Plan {
    const p = this.plan(next);
    const refused = p.changes.filter((c) => c.restart);
    if (refused.length) {
      throw AgentConfigError.of(refused.map((c) => ({ path: `${c.area} ${c.key}`, message: `changes (${c.op === '~' ? `${c.from} -> ${c.to}` : c.op === '+' ? 'added' : 'removed'}) and that needs a restart; nothing was applied` })));
    }
    // Build: nothing below mutates until every piece is ready.
    const entries = this.entries(next);
    const probe = new IdentityTable();
    probe.replace(entries); // throws on a bad entry, before anything changes
    const newFilters = this.buildFilters(next.policies, prepared);
    const nextPol = new Map(next.policies.map((x) => [x.vni, x]));
    const oldInst = new Map(this.cfg.services.flatMap((s) => s.instances.map((i) => [instanceKey(s, i), instanceSpec(s, i)] as const)));
    const nextInst = new Map(next.services.flatMap((s) => s.instances.map((i) => [instanceKey(s, i), instanceSpec(s, i)] as const)));
    const svcText = (c: AgentConfig) => new Map(c.services.map((s) => [`${s.network}/${s.name}`, JSON.stringify([s.endpointMode, s.vipText, s.ttl, s.healthcheck])]));
    const oldSvc = svcText(this.cfg);
    const nextSvc = svcText(next);
    const local = this.o.instances();
    // Swap.
    for (const [vni, f] of this.filters) {
      const np = nextPol.get(vni);
      if (!np) {
        this.o.dataplane?.removeStage(vni, 'policy');
        this.filters.delete(vni);
      } else if (this.policyChanged(np)) {
        const ready = prepared?.get(vni);
        if (ready) f.installPolicy(ready);
        else f.setPolicy(np.policy);
      }
    }
    this.defineGroupPolicies(next);
    this.identity.replace(entries);
    for (const [vni, f] of newFilters) {
      this.o.dataplane!.addStage(vni, f);
      this.filters.set(vni, f);
    }
    const eps = (c: AgentConfig) => new Map(c.networks.flatMap((n) => n.endpoints.filter((e) => !e.device).map((e) => [`${n.name}/${e.id}`, { n, e }] as const)));
    const oldEps = eps(this.cfg);
    const nextEps = eps(next);
    for (const [k, { n, e }] of oldEps) if (!nextEps.has(k)) this.o.agent.unpublish(n.name, e.id);
    for (const [k, { n, e }] of nextEps) {
      const was = oldEps.get(k)?.e;
      if (!was || was.macText !== e.macText || was.ipv4Text !== e.ipv4Text || was.ipv6Text !== e.ipv6Text) this.o.agent.publish({ name: n.name, vni: n.vni }, { id: e.id, mac: e.mac, ipv4: e.ipv4, ipv6: e.ipv6 });
    }
    if (local) {
      for (const [k, spec] of oldInst) if (!nextInst.has(k)) local.remove(spec.network, spec.id);
      for (const [k, spec] of nextInst) {
        const was = oldInst.get(k);
        const svc = `${spec.network}/${spec.service}`;
        const same = was && JSON.stringify([was.endpoint, was.ports]) === JSON.stringify([spec.endpoint, spec.ports]) && oldSvc.get(svc) === nextSvc.get(svc)
          && oldEps.get(`${spec.network}/${spec.endpoint}`)?.e.ipv4Text === nextEps.get(`${spec.network}/${spec.endpoint}`)?.e.ipv4Text;
        if (!same) local.add(spec);
      }
    }
    this.cfg = next;
    this.applied++;
    this.o.log(`config applied (${p.live} change${p.live === 1 ? '' : 's'}):\n${formatPlan(p).trimEnd()}`);
    return p;
  }

  /** Remove the stages this class installed. */
  close(): void {
    this.closed = true;
    for (const vni of this.filters.keys()) this.o.dataplane?.removeStage(vni, 'policy');
    for (const f of this.filters.values()) f.detach();
    this.filters.clear();
  }
}
