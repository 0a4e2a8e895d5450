/**
 * `agent plan`: what applying a config would change. Both sides are reduced to a `PlanView`
 * (plain JSON, no secrets: keys appear as short SHA-256 fingerprints), so the old side can come
 * from a file or from the running agent (its control socket's `config` command answers its view).
 *
 * Changes are keyed by what they touch: `network`, `endpoint` (network/id), `service`
 * (network/name), `instance` (network/service/id), `vip`, `policy` (network) and `rule`
 * (network/id). Live ones are applied by `agent apply`/SIGHUP (apply.ts); the others (the host's
 * own settings, a network's VNI/subnet/device, the endpoint that is the TAP) need a restart, and
 * apply refuses a config that has any, changing nothing.
 */
import { createHash } from 'node:crypto';
import type { AgentConfig } from './config-types.js';

export type Area = 'host' | 'network' | 'endpoint' | 'service' | 'instance' | 'vip' | 'policy' | 'rule';
export interface PlanView {
  host: Record<string, string>;
  networks: Record<string, string>;
  endpoints: Record<string, string>;
  /** Endpoints that are a TAP (their MAC is the TAP's): changing them needs a restart. */
  taps: Record<string, string>;
  services: Record<string, string>;
  instances: Record<string, string>;
  vips: Record<string, string>;
  policies: Record<string, string>;
  rules: Record<string, string>;
}
export interface Change { area: Area; op: '+' | '-' | '~'; key: string; from?: string; to?: string; restart: boolean }
export interface Plan { changes: Change[]; live: number; restart: number }

const fp = (b: Uint8Array | string) => 'sha256:' + createHash('sha256').update(b).digest('hex').slice(0, 12);
const hp = (a: { ip: string; port: number }) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`);
const words = (o: Record<string, unknown>) => Object.entries(o).filter(([, v]) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0)).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ');

/** The plannable view of a validated config (JSON-serializable, no secrets). */
export function planView(c: AgentConfig): PlanView {
  const v: PlanView = { host: {}, networks: {}, endpoints: {}, taps: {}, services: {}, instances: {}, vips: {}, policies: {}, rules: {} };
  Object.assign(v.host, {
    name: c.name, listen: hp(c.listen), advertise: hp(c.advertise), vtep: hp({ ip: c.vtep, port: c.vtepPort }), seeds: c.seeds.map(hp).join(','),
    profile: c.profile, signingKey: fp(c.signingKey), encryption: c.insecure ? 'insecure' : c.clusterKeys.map(fp).join(','),
    wireguard: c.wireguard ? fp(c.wireguard.privateKey) : 'off', controlSocket: c.controlSocket,
    dns: c.dns ? `${hp(c.dns.listen)} forward=${c.dns.forward}` : 'off', metrics: c.metrics ? hp(c.metrics.listen) : 'off',
    log: `${c.log.level}/${c.log.format}`, store: c.store.kind === 'etcd' ? `etcd ${c.store.endpoints.join(',')} ${c.store.prefix}` : 'gossip',
    pki: c.pki ? words({ ca: c.pki.ca, cert: c.pki.cert, key: c.pki.key, joinToken: c.pki.joinToken && fp(c.pki.joinToken) }) : 'off',
  });
  for (const n of c.networks) {
    v.networks[n.name] = words({ vni: n.vni, subnet: n.subnet, device: n.device, encryption: n.encryption, resolver: n.resolver, learning: n.learning, unknownUnicast: n.unknownUnicast, arpSuppression: n.arpSuppression, ageingMs: n.ageingMs });
    for (const e of n.endpoints) {
      const d = words({ mac: e.macText, ipv4: e.ipv4Text, ipv6: e.ipv6Text, groups: e.groups });
      if (e.device) v.taps[`${n.name}/${e.id}`] = `${d} device=${e.device}`;
      else v.endpoints[`${n.name}/${e.id}`] = d;
    }
  }
  for (const s of c.services) {
    const key = `${s.network}/${s.name}`;
    const h = s.healthcheck;
    v.services[key] = words({ mode: s.endpointMode, ttl: s.ttl, health: h && `${h.kind}${h.port ? ':' + h.port : ''}/${h.intervalMs}ms` });
    if (s.endpointMode === 'vip') v.vips[key] = s.vipText ?? 'allocated';
    for (const i of s.instances) v.instances[`${key}/${i.id}`] = words({ endpoint: i.endpoint, ports: i.ports.map((p) => `${p.port}/${p.proto}${p.name ? `(${p.name})` : ''}`) });
  }
  for (const p of c.policies) {
    v.policies[p.network] = `default=${p.normal.defaultAction} rules=${p.normal.rules.length}`;
    p.normal.rules.forEach((r, i) => {
      const raw = (p.policy.tiers[r.tier] ?? []).find((x) => x.id === r.id);
      v.rules[`${p.network}/${r.id}`] = `#${i} ${r.tier} ${JSON.stringify(raw)}`;
    });
  }
  return v;
}

const LIVE: Record<Area, boolean> = { host: false, network: false, endpoint: true, service: true, instance: true, vip: true, policy: true, rule: true };

/** What turns `from` into `to`; host fields, networks and TAP endpoints need a restart. */
export function plan(from: PlanView, to: PlanView): Plan {
  const changes: Change[] = [];
  const diff = (area: Area, a: Record<string, string>, b: Record<string, string>, restart = !LIVE[area]) => {
    for (const k of Object.keys(a).sort()) {
      if (!(k in b)) changes.push({ area, op: '-', key: k, from: a[k], restart });
      else if (a[k] !== b[k]) changes.push({ area, op: '~', key: k, from: a[k], to: b[k], restart });
    }
    for (const k of Object.keys(b).sort()) if (!(k in a)) changes.push({ area, op: '+', key: k, to: b[k], restart });
  };
  diff('host', from.host, to.host);
  diff('network', from.networks, to.networks);
  diff('endpoint', from.taps, to.taps, true);
  diff('endpoint', from.endpoints, to.endpoints);
  diff('service', from.services, to.services);
  diff('instance', from.instances, to.instances);
  diff('vip', from.vips, to.vips);
  diff('policy', from.policies, to.policies);
  diff('rule', from.rules, to.rules);
  const restart = changes.filter((c) => c.restart).length;
  return { changes, live: changes.length - restart, restart };
}

/** The plan as text: one line per change, a summary last. */
export function formatPlan(p: Plan): string {
  const lines = p.changes.map((c) => {
    const what = c.op === '~' ? `${c.from} -> ${c.to}` : c.op === '+' ? c.to : c.from;
    return `${c.op} ${c.area} ${c.key}: ${what}${c.restart ? '   (needs a restart)' : ''}`;
  });
  const n = (op: Change['op']) => p.changes.filter((c) => c.op === op).length;
  lines.push(p.changes.length === 0 ? 'no changes' : `${n('+')} to add, ${n('~')} to change, ${n('-')} to remove; ${p.restart ? `${p.restart} need a restart (apply refuses them)` : 'all live'}`);
  return lines.join('\n') + '\n';
}
