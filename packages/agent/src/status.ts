/**
 * What `agent status` shows, derived from `Agent.status()`: each endpoint's state from its owner's
 * membership (a dead owner's records stay in the table until reaped, up to an hour, but no longer
 * reach the dataplane), and host:port text with IPv6 in brackets. `describeStatus` is what
 * `--json` prints, `formatStatus` the text form; both come from the same derived view.
 */
import type { AgentStatus } from './agent.js';
import type { ServiceInstanceStatus } from './services.js';
import type { VipStatus } from './services-vip.js';

/**
 * Services as the runner (cli.ts runAgent) adds them to the status: the resolver address per
 * network, every instance this node answers with (its owner alive or suspect) with its health,
 * and this host's own instances with the checker's undamped state.
 */
export interface ServicesStatus {
  /** Network name → the address its embedded DNS answers on (absent: none). */
  resolvers: Record<string, string>;
  /** The socket host processes may query (ip:port), when one is open. */
  dnsListen?: string;
  instances: (ServiceInstanceStatus & { network: string })[];
  local: { network: string; service: string; id: string; health: string; since: number; reason: string; raw?: string }[];
  /** The VIPs this host's dataplane balances (vip-mode services of its networks), with their backends. */
  vips?: VipStatus[];
  counters: Record<string, number>;
}
/** What the control socket serves: the agent's status plus services when the runner has them. */
export type NodeStatus = AgentStatus & { services?: ServicesStatus };

/**
 * `active`: the owner is alive or suspect, the record is programmed. `owner-dead`: the owner is
 * dead, has left or is no longer a member; the record waits to be reaped. `tombstoned`: deleted by
 * its owner; the tombstone is gossiped until reaped.
 */
export type EndpointState = 'active' | 'owner-dead' | 'tombstoned';

type StatusEndpoint = AgentStatus['networks'][string][number];
export type DescribedEndpoint = StatusEndpoint & { state: EndpointState };
export type DescribedStatus = Omit<NodeStatus, 'networks'> & { networks: Record<string, DescribedEndpoint[]> };

/** The state of one endpoint record given the member list it came with. */
export function endpointState(e: Pick<StatusEndpoint, 'owner' | 'deleted'>, members: AgentStatus['members']): EndpointState {
  if (e.deleted) return 'tombstoned';
  const owner = members.find((m) => m.name === e.owner);
  return owner && (owner.state === 'alive' || owner.state === 'suspect') ? 'active' : 'owner-dead';
}

/**
 * "host:port" with an IPv6 host in brackets ("[2001:db8::2]:4789"). The input always ends in
 * ":port", so its last colon separates the port even when the host is unbracketed IPv6.
 */
export function formatHostPort(text: string): string {
  if (text.startsWith('[')) return text;
  const i = text.lastIndexOf(':');
  if (i < 0) return text;
  const host = text.slice(0, i);
  return host.includes(':') ? `[${host}]${text.slice(i)}` : text;
}

/** The status with each endpoint's `state` and bracketed IPv6 host:port text; the input is not changed. */
export function describeStatus(s: NodeStatus): DescribedStatus {
  const networks: DescribedStatus['networks'] = {};
  for (const [net, eps] of Object.entries(s.networks)) networks[net] = eps.map((e) => ({ ...e, state: endpointState(e, s.members) }));
  return {
    ...s,
    members: s.members.map((m) => ({ ...m, address: formatHostPort(m.address) })),
    networks,
    peers: s.peers?.map((p) => ({ ...p, endpoint: p.endpoint === null ? null : formatHostPort(p.endpoint) })),
  };
}

/** The text `agent status` prints. */
export function formatStatus(status: NodeStatus): string {
  const s = describeStatus(status);
  const out: string[] = [`node ${s.name}  incarnation ${s.incarnation}  health ${s.awareness}  digest ${s.digest.slice(0, 16)}`, '', 'MEMBERS'];
  for (const m of s.members) out.push(`  ${m.name.padEnd(20)} ${m.state.padEnd(8)} ${m.address.padEnd(24)} inc ${m.incarnation}  vtep ${m.vtep}`);
  for (const [net, eps] of Object.entries(s.networks)) {
    out.push('', `NETWORK ${net}`);
    for (const e of eps) out.push(`  ${e.id.padEnd(16)} ${e.mac} ${(e.ipv4 ?? '-').padEnd(15)} ${(e.ipv6 ?? '-').padEnd(20)} ${e.state.padEnd(10)} owner ${e.owner} v${e.version}`);
  }
  if (s.services) {
    const v = s.services;
    out.push('', 'SERVICES');
    for (const [net, addr] of Object.entries(v.resolvers)) out.push(`  resolver ${net.padEnd(12)} ${addr}`);
    if (v.dnsListen) out.push(`  dns socket ${v.dnsListen}`);
    const byName = [...v.instances].sort((a, b) => `${a.network}/${a.service}/${a.id}`.localeCompare(`${b.network}/${b.service}/${b.id}`));
    for (const i of byName) {
      const addr = [i.ipv4, i.ipv6].filter(Boolean).join(' ');
      out.push(`  ${`${i.service}.${i.network}`.padEnd(20)} ${i.id.padEnd(14)} ${addr.padEnd(16)} ${(i.ports.join(',') || '-').padEnd(14)} ${i.health.padEnd(9)} owner ${i.owner}${i.reason ? `  (${i.reason})` : ''}`);
    }
    for (const p of v.vips ?? []) {
      const backends = p.backends.map((b) => `${b.id}=${b.ip}:${b.state}`).join(' ') || 'none';
      out.push(`  vip ${`${p.service}.${p.network}`.padEnd(16)} ${(p.vip + (p.allocated ? ' (allocated)' : '')).padEnd(27)} ports ${p.ports.join(',') || 'all'}  backends ${backends}`);
    }
    for (const l of v.local) if (l.raw && l.raw !== l.health) out.push(`  local ${l.service}/${l.id}: published ${l.health}, checks say ${l.raw} (damped)`);
  }
  if (s.peers) {
    out.push('', 'PEERS');
    for (const p of s.peers) out.push(`  ${p.publicKey} ${p.endpoint ?? '-'} ${p.up ? 'up' : 'down'} handshake ${p.handshakeAgeMs === null ? 'never' : `${Math.round(p.handshakeAgeMs / 1000)}s ago`}`);
  }
  out.push('', 'DROPS');
  // Every reason is listed in --json; the text shows the ones that happened.
  const drops = Object.entries(s.drops).filter(([, v]) => v > 0);
  if (drops.length === 0) out.push('  none');
  for (const [k, v] of drops) out.push(`  ${k} ${v}`);
  return out.join('\n') + '\n';
}
