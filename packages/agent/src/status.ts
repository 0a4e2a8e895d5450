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
  /** The DNS socket reads and answers UDP in batches (@overlay/native), not on node:dgram. */
  dnsBatched?: boolean;
  instances: (ServiceInstanceStatus & { network: string })[];
  local: { network: string; service: string; id: string; health: string; since: number; reason: string; raw?: string }[];
  /** The VIPs this host's dataplane balances (vip-mode services of its networks), with their backends. */
  vips?: VipStatus[];
  counters: Record<string, number>;
}
/** Traffic with one tunnel peer, from @overlay/crypto's `peers()` (the runner adds it to `peers`). */
export interface PeerTraffic {
  rxBytes?: number;
  txBytes?: number;
  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshake?: number;
}

/** One network's device as the runner reports it: the TAP's native counters. */
export interface NetworkDeviceStatus {
  network: string;
  vni: number;
  device: string;
  mtu: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Frames the device lost (rx without buffer or too big, rx errors, tx unsent). */
  drops: number;
}

/** The host's dataplane as the runner (cli.ts) adds it: packet counters, drops by reason, per network devices, tunnel drops. */
export interface DataplaneStatus {
  inside: Record<string, number>;
  outside: Record<string, number>;
  drops: Record<string, number>;
  /** Stage drops as `<stage>.<reason>`. */
  stageDrops: Record<string, number>;
  devices: NetworkDeviceStatus[];
  tunnel?: { drops: Record<string, number> };
}

/** What the control socket serves: the agent's status plus services and the dataplane when the runner has them. */
export type NodeStatus = Omit<AgentStatus, 'peers'> & {
  peers?: (NonNullable<AgentStatus['peers']>[number] & PeerTraffic)[];
  services?: ServicesStatus;
  dataplane?: DataplaneStatus;
  /** This node's addresses, like wg(8)'s interface block (the runner adds it). */
  local?: { listen: string; vtep: string; publicKey?: string; metrics?: string };
};

/** What dataplaneStatus reads of an open host (@overlay/host's Host). */
interface HostLike {
  stats(): import('@overlay/host').HostStats;
  devices: readonly { vni: number; name: string; mtu: number }[];
  tunnel?: { peers(): import('@overlay/crypto').PeerStatus[] };
}

/** The dataplane section of the status, from one `host.stats()`. */
export function dataplaneStatus(host: HostLike, networks: readonly { name: string; vni: number }[]): DataplaneStatus {
  const st = host.stats();
  const stageDrops: Record<string, number> = {};
  for (const [stage, r] of Object.entries(st.dataplane.stages)) for (const [k, v] of Object.entries(r)) stageDrops[`${stage}.${k}`] = v;
  return {
    inside: { ...st.dataplane.inside },
    outside: { ...st.dataplane.outside },
    drops: { ...st.dataplane.drops },
    stageDrops,
    devices: host.devices.map((d) => {
      const c = st.devices[d.name];
      return {
        network: networks.find((n) => n.vni === d.vni)?.name ?? '', vni: d.vni, device: d.name, mtu: d.mtu,
        rxPackets: c?.rxPackets ?? 0, rxBytes: c?.rxBytes ?? 0, txPackets: c?.txPackets ?? 0, txBytes: c?.txBytes ?? 0,
        drops: (c?.rxNoBufferDrops ?? 0) + (c?.rxTooBigDrops ?? 0) + (c?.rxErrors ?? 0) + (c?.txUnsent ?? 0),
      };
    }),
    ...(st.tunnel ? { tunnel: { drops: { ...st.tunnel.drops } } } : {}),
  };
}

/** The agent's peers with the tunnel's byte counts and handshake time added (matched by public key). */
export function withPeerTraffic(peers: AgentStatus['peers'], tunnel: HostLike['tunnel']): NodeStatus['peers'] {
  if (!peers) return peers;
  const byKey = new Map((tunnel?.peers() ?? []).map((p) => [p.publicKey, p]));
  return peers.map((p) => {
    const t = byKey.get(p.publicKey);
    return t ? { ...p, rxBytes: t.rxBytes, txBytes: t.txBytes, lastHandshake: t.lastHandshake } : p;
  });
}

/** Bytes as wg(8) prints them: B, KiB, MiB, GiB with two decimals. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return i === 0 ? `${n} B` : `${n.toFixed(2)} ${units[i]}`;
}

/** "1 minute, 5 seconds ago" (wg(8)'s wording), "never" for none. */
export function formatAgo(ms: number | null): string {
  if (ms === null) return 'never';
  let s = Math.max(0, Math.round(ms / 1000));
  const parts: string[] = [];
  for (const [n, unit] of [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']] as const) {
    const k = Math.floor(s / n);
    s -= k * n;
    if (k) parts.push(`${k} ${unit}${k === 1 ? '' : 's'}`);
  }
  return parts.length ? `${parts.join(', ')} ago` : 'just now';
}

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
  const out: string[] = [`node ${s.name}  incarnation ${s.incarnation}  health ${s.awareness}  digest ${s.digest.slice(0, 16)}`];
  if (s.local) {
    out.push(`  listening: ${formatHostPort(s.local.listen)}  vtep: ${formatHostPort(s.local.vtep)}`);
    if (s.local.publicKey) out.push(`  public key: ${s.local.publicKey}`);
    if (s.local.metrics) out.push(`  metrics: http://${formatHostPort(s.local.metrics)}/metrics`);
  }
  out.push('', 'MEMBERS');
  for (const m of s.members) out.push(`  ${m.name.padEnd(20)} ${m.state.padEnd(8)} ${m.address.padEnd(24)} inc ${m.incarnation}  vtep ${m.vtep}`);
  const netNames = [...new Set([...Object.keys(s.networks), ...(s.dataplane?.devices.map((d) => d.network) ?? [])])];
  for (const net of netNames) {
    const eps = s.networks[net] ?? [];
    const dev = s.dataplane?.devices.find((d) => d.network === net);
    out.push('', `NETWORK ${net}${dev ? `  vni ${dev.vni}  device ${dev.device}  mtu ${dev.mtu}` : ''}`);
    const by = { active: 0, 'owner-dead': 0, tombstoned: 0 };
    for (const e of eps) by[e.state]++;
    out.push(`  endpoints: ${by.active} active, ${by['owner-dead']} owner-dead, ${by.tombstoned} tombstoned`);
    if (dev) out.push(`  device: ${dev.rxPackets} packets (${formatBytes(dev.rxBytes)}) received, ${dev.txPackets} packets (${formatBytes(dev.txBytes)}) sent, ${dev.drops} lost`);
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
    for (const p of s.peers) {
      out.push(`  ${p.publicKey} ${p.endpoint ?? '-'} ${p.up ? 'up' : 'down'} handshake ${p.handshakeAgeMs === null ? 'never' : `${Math.round(p.handshakeAgeMs / 1000)}s ago`}`);
      // wg(8)'s peer block: the member it belongs to, endpoint, latest handshake, transfer.
      const member = s.members.find((m) => m.wireguard === p.publicKey);
      if (member) out.push(`    member: ${member.name}`);
      out.push(`    endpoint: ${p.endpoint ?? '(none)'}`);
      out.push(`    latest handshake: ${formatAgo(p.handshakeAgeMs)}`);
      if (p.rxBytes !== undefined) out.push(`    transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes ?? 0)} sent`);
    }
  }
  if (s.dataplane) {
    const d = s.dataplane;
    out.push('', 'DATAPLANE');
    out.push(`  inside:  ${Object.entries(d.inside).map(([k, v]) => `${k} ${v}`).join('  ')}`);
    out.push(`  outside: ${Object.entries(d.outside).map(([k, v]) => `${k} ${v}`).join('  ')}`);
  }
  out.push('', 'DROPS');
  // Every reason is listed in --json; the text shows the ones that happened.
  const all = { ...s.drops, ...prefixed('dataplane.', s.dataplane?.drops), ...prefixed('dataplane.', s.dataplane?.stageDrops), ...prefixed('tunnel.', s.dataplane?.tunnel?.drops) };
  const drops = Object.entries(all).filter(([, v]) => v > 0);
  if (drops.length === 0) out.push('  none');
  for (const [k, v] of drops) out.push(`  ${k} ${v}`);
  return out.join('\n') + '\n';
}

function prefixed(p: string, o: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o ?? {})) out[p + k] = v;
  return out;
}
