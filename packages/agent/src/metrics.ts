/**
 * The agent's Prometheus endpoint (prom-client): every counter of every package, read on scrape.
 *
 * Nothing is counted here. The packages keep their counters in CounterSets (dataplane reasons.ts)
 * and plain stats objects; a scrape takes one snapshot of all of them (`takeSnapshot`) and each
 * metric family's `collect` copies its part into prom-client, so the packet path pays nothing for
 * metrics. Names are `overlay_<package>_<what>_total` for counters (the CounterSet's stable
 * snake_case name, or the native counter's name, in a label), plain `overlay_<package>_<what>`
 * for gauges. The names and label sets below are a public contract: append, never rename.
 *
 * Off unless the config has `metrics:`; the default address is loopback (127.0.0.1:9464). A
 * non-loopback address is the operator's explicit choice and is logged as a warning: the page
 * names every member, network and peer key (public keys only; no secret is ever a label).
 * prom-client is loaded by `createMetrics`, so an agent without `metrics:` never loads it
 * (docs/agent-memory.md).
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Counter, Gauge, Registry } from 'prom-client';
import type { Agent } from './agent.js';
import type { RealIo } from './runtime.js';
import type { ServicesRuntime } from './services-run.js';
import { endpointState } from './status.js';
import type { Logger } from './log.js';

/** What a scrape reads: the running parts of one agent (cli.ts runAgent). */
export interface MetricsSources {
  agent: Agent;
  io?: RealIo;
  /** The host assembly (@overlay/host), when a network has a device. */
  host?: {
    stats(): import('@overlay/host').HostStats;
    devices: readonly { vni: number; name: string }[];
    tunnel?: { peers(): import('@overlay/crypto').PeerStatus[] };
    /** The shared packet pool, for its slab size (overlay_agent_memory_bytes{kind="pool_slab"}). */
    dataplane?: { pool: { data: { length: number } } };
  };
  services?: ServicesRuntime;
  /** The etcd store bridge's counters and the verifying reader's drops, when `store: {kind: etcd}` (store-bridge.ts). */
  store?: () => { counters: Record<string, number>; drops: Record<string, number> } | undefined;
  /** The policy filter per VNI the config installed (apply.ts LiveConfig.filters). */
  policy?: () => Iterable<[number, { stats(): { flows: number; counters: Record<string, number> } }]>;
  /** Network name by VNI, for the `network` label. */
  networks: readonly { name: string; vni: number }[];
}

type Labels = Record<string, string | number>;
type Sample = [Labels, number];

/** One scrape's copy of every counter. */
interface Snapshot {
  src: MetricsSources;
  host?: import('@overlay/host').HostStats;
  status: ReturnType<Agent['status']>;
  memory: ProcessMemory;
}

/** This process's memory in bytes: resident (anonymous + file-backed pages) and V8's figures. */
export interface ProcessMemory {
  rss: number;
  /** Resident anonymous pages: the V8 heap, malloc, native buffers touched. */
  rss_anon: number;
  /** Resident file-backed pages: mostly the node binary's code, shared by every node process. */
  rss_file: number;
  heap_used: number;
  heap_total: number;
  /** Memory of C++ objects bound to JS (buffers, the addon's): includes array_buffers. */
  external: number;
  /** ArrayBuffer and Buffer bytes, allocated, resident or not (the packet pools' slabs are mostly not). */
  array_buffers: number;
}

/** Read this process's memory (/proc/self/status and process.memoryUsage()). */
export function processMemory(): ProcessMemory {
  const u = process.memoryUsage();
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    // not Linux: rss only
  }
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  const anon = kb('RssAnon');
  return { rss: u.rss, rss_anon: Number.isNaN(anon) ? u.rss : anon, rss_file: Number.isNaN(anon) ? 0 : kb('RssFile'), heap_used: u.heapUsed, heap_total: u.heapTotal, external: u.external, array_buffers: u.arrayBuffers };
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels: string[];
  samples(s: Snapshot): Iterable<Sample>;
}

/** Admission counters (pki-admission.ts) as pki_<event>; none without pki. */
function pkiCounters(agent: { pki?: { counters: { snapshot(): Record<string, number> } } }): Record<string, number> {
  return Object.fromEntries(Object.entries(agent.pki?.counters.snapshot() ?? {}).map(([k, v]) => [`pki_${k}`, v]));
}

/** Samples `{[label]: name} value` of a counter record (a CounterSet snapshot or a stats object). */
function* record(label: string, r: Record<string, number> | undefined, extra: Labels = {}): Iterable<Sample> {
  for (const [k, v] of Object.entries(r ?? {})) if (typeof v === 'number') yield [{ ...extra, [label]: k }, v];
}

const c = (name: string, help: string, labels: string[], samples: Family['samples']): Family => ({ name, help, type: 'counter', labels, samples });
const g = (name: string, help: string, labels: string[], samples: Family['samples']): Family => ({ name, help, type: 'gauge', labels, samples });

/** Every metric family: name, help text, labels, and where its values come from. */
export const FAMILIES: readonly Family[] = [
  // ---- dataplane (@overlay/dataplane)
  c('overlay_dataplane_drops_total', 'Frames and datagrams the dataplane dropped, by reason (DROP_REASONS of @overlay/dataplane).', ['reason'], (s) => record('reason', s.host?.dataplane.drops)),
  c('overlay_dataplane_stage_drops_total', 'Frames a dataplane stage (dns, vip, policy, ...) dropped, by stage and the stage\'s own reason, summed over networks.', ['stage', 'reason'], function* (s) {
    for (const [stage, r] of Object.entries(s.host?.dataplane.stages ?? {})) yield* record('reason', r, { stage });
  }),
  c('overlay_dataplane_inside_total', 'Device to network path: frames, bytes, ARP suppressed, floods, replicas, datagrams sent, stage replies and takes.', ['counter'], (s) => record('counter', s.host?.dataplane.inside)),
  c('overlay_dataplane_outside_total', 'Network to device path: datagrams, bytes, frames delivered, MACs learned and refused, stage replies and takes.', ['counter'], (s) => record('counter', s.host?.dataplane.outside)),
  // ---- native I/O (@overlay/native)
  c('overlay_native_underlay_total', 'Underlay UDP socket counters (rxPackets, txBytes, rxNoBufferDrops, txErrors, ...).', ['counter'], (s) => record('counter', s.host?.transport)),
  c('overlay_native_device_total', 'Per network TAP device counters (rxPackets, txBytes, rxTooBigDrops, ...).', ['network', 'vni', 'device', 'counter'], function* (s) {
    for (const d of s.src.host?.devices ?? []) {
      const network = s.src.networks.find((n) => n.vni === d.vni)?.name ?? '';
      yield* record('counter', s.host?.devices[d.name], { network, vni: d.vni, device: d.name });
    }
  }),
  // ---- tunnel (@overlay/crypto)
  c('overlay_crypto_drops_total', 'Packets the WireGuard tunnel dropped, by reason.', ['reason'], (s) => record('reason', s.host?.tunnel?.drops)),
  c('overlay_crypto_tunnel_total', 'WireGuard tunnel traffic by direction: packets, bytes, keepalives, handshake messages, cookie replies.', ['direction', 'counter'], function* (s) {
    yield* record('counter', s.host?.tunnel?.tx, { direction: 'tx' });
    yield* record('counter', s.host?.tunnel?.rx, { direction: 'rx' });
  }),
  c('overlay_crypto_peer_bytes_total', 'Payload bytes exchanged with a tunnel peer (public key), by direction.', ['peer', 'direction'], function* (s) {
    for (const p of s.src.host?.tunnel?.peers() ?? []) {
      yield [{ peer: p.publicKey, direction: 'rx' }, p.rxBytes];
      yield [{ peer: p.publicKey, direction: 'tx' }, p.txBytes];
    }
  }),
  g('overlay_crypto_peer_last_handshake_seconds', 'Unix time of the last completed handshake with a tunnel peer; 0 if none.', ['peer'], function* (s) {
    for (const p of s.src.host?.tunnel?.peers() ?? []) yield [{ peer: p.publicKey }, p.lastHandshake / 1000];
  }),
  g('overlay_crypto_peer_up', '1 while a tunnel peer has a current session.', ['peer'], function* (s) {
    for (const p of s.src.host?.tunnel?.peers() ?? []) yield [{ peer: p.publicKey }, p.up ? 1 : 0];
  }),
  // ---- gossip (agent)
  c('overlay_agent_drops_total', 'Gossip datagrams, push-pull exchanges and records the agent refused, by reason (AGENT_DROP_REASONS).', ['reason'], (s) => record('reason', s.src.agent.drops.snapshot())),
  c('overlay_agent_stream_drops_total', 'Push-pull TCP streams refused or cut, by reason (STREAM_DROP_REASONS).', ['reason'], (s) => record('reason', s.src.io?.drops.snapshot())),
  c('overlay_agent_gossip_total', 'Gossip traffic and work: packets and bytes sent and received, push-pulls, records applied, join attempts.', ['counter'], (s) => record('counter', s.src.agent.counters.snapshot())),
  c('overlay_agent_membership_total', 'SWIM membership events: probes, failed probes, suspicions, members declared dead, refutations, ...; with pki, admission as pki_<event> (PKI_EVENTS: admitted, refused_<code>, evicted_revoked, ...)', ['counter'], (s) => record('counter', { ...s.src.agent.membership.counters.snapshot(), ...pkiCounters(s.src.agent) })),
  g('overlay_agent_members', 'Members known to this agent, by state.', ['state'], function* (s) {
    const by: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
    for (const m of s.status.members) by[m.state] = (by[m.state] ?? 0) + 1;
    yield* record('state', by);
  }),
  g('overlay_agent_endpoints', 'Endpoint records per network, by state (active, owner-dead, tombstoned).', ['network', 'state'], function* (s) {
    for (const n of s.src.networks) {
      const by: Record<string, number> = { active: 0, 'owner-dead': 0, tombstoned: 0 };
      for (const e of s.status.networks[n.name] ?? []) by[endpointState(e, s.status.members)]++;
      yield* record('state', by, { network: n.name });
    }
  }),
  // ---- services: records, health, DNS, VIP (agent + @overlay/services)
  c('overlay_services_view_total', 'Service instance records: added, updated, removed, sink errors, lookups, panic answers.', ['counter'], (s) => record('counter', s.src.services?.view.counters.snapshot())),
  g('overlay_services_instances', 'Service instances this host answers with, by network and health.', ['network', 'health'], function* (s) {
    const by = new Map<string, number>();
    for (const i of s.src.services?.status().instances ?? []) by.set(`${i.network}\u0000${i.health}`, (by.get(`${i.network}\u0000${i.health}`) ?? 0) + 1);
    for (const [k, v] of by) {
      const [network, health] = k.split('\u0000');
      yield [{ network, health }, v];
    }
  }),
  c('overlay_health_checks_total', 'Health checks of this host\'s instances (HEALTH_COUNTERS of @overlay/services).', ['counter'], (s) => record('counter', s.src.services?.local?.checker.counters.snapshot())),
  c('overlay_health_published_total', 'This host\'s instance records published and withdrawn, and health changes published.', ['counter'], (s) => record('counter', s.src.services?.local?.counters.snapshot())),
  c('overlay_dns_total', 'Embedded DNS: queries, answers by rcode, truncations, forwards, drops (DNS_COUNTERS of @overlay/services).', ['counter'], (s) => record('counter', s.src.services?.dnsCounters.snapshot())),
  c('overlay_vip_sync_total', 'VIP programming from records: recomputes, VIPs set and removed, errors, conflicts, drains.', ['counter'], (s) => record('counter', s.src.services?.vips?.counters.snapshot())),
  c('overlay_vip_total', 'VIP translator events per network: translations each way, ARP answered, flows reset, RSTs, drains expired.', ['network', 'vni', 'counter'], function* (s) {
    for (const t of s.src.services?.vipStats() ?? []) yield* record('counter', t.counters, { network: s.src.networks.find((n) => n.vni === t.vni)?.name ?? '', vni: t.vni });
  }),
  c('overlay_vip_drops_total', 'Frames the VIP translator dropped per network, by reason.', ['network', 'vni', 'reason'], function* (s) {
    for (const t of s.src.services?.vipStats() ?? []) yield* record('reason', t.drops, { network: s.src.networks.find((n) => n.vni === t.vni)?.name ?? '', vni: t.vni });
  }),
  g('overlay_vip_flows', 'VIP connection-tracking entries in use per network.', ['network', 'vni'], function* (s) {
    for (const t of s.src.services?.vipStats() ?? []) yield [{ network: s.src.networks.find((n) => n.vni === t.vni)?.name ?? '', vni: t.vni }, t.flows];
  }),
  // ---- policy (@overlay/services PolicyFilter, one per network with policies)
  c('overlay_policy_total', 'Policy filter per network: drops by direction and reason (inside_denied, outside_no_flow, ...), flows opened, re-judged and revoked, decision log lines.', ['network', 'vni', 'counter'], function* (s) {
    for (const [vni, f] of s.src.policy?.() ?? []) yield* record('counter', f.stats().counters, { network: s.src.networks.find((n) => n.vni === vni)?.name ?? '', vni });
  }),
  g('overlay_policy_flows', 'Policy connection-tracking entries in use per network.', ['network', 'vni'], function* (s) {
    for (const [vni, f] of s.src.policy?.() ?? []) yield [{ network: s.src.networks.find((n) => n.vni === vni)?.name ?? '', vni }, f.stats().flows];
  }),
  // ---- endpoint store (@overlay/store through the agent's store bridge)
  c('overlay_store_total', 'Endpoint store bridge (etcd): records put and deleted, write errors, records received and applied, resyncs, leases.', ['counter'], (s) => record('counter', s.src.store?.()?.counters)),
  c('overlay_store_drops_total', 'Store values refused by the verifying reader (not signed by the owner the key names), by reason.', ['reason'], (s) => record('reason', s.src.store?.()?.drops)),
  // ---- the agent process
  g('overlay_agent_memory_bytes', 'The agent process\'s memory: rss = rss_anon + rss_file (the node binary\'s pages, shared), V8 heap_used and heap_total, external and array_buffers (allocated, not all resident), pool_slab (the packet pool, resident only where traffic touched it).', ['kind'], function* (s) {
    yield* record('kind', { ...s.memory });
    if (s.src.host?.dataplane) yield [{ kind: 'pool_slab' }, s.src.host.dataplane.pool.data.length];
  }),
];

export interface Metrics {
  readonly registry: Registry;
  /** The Prometheus text of one scrape. */
  scrape(): Promise<string>;
}

/** A registry whose every family reads the snapshot the current scrape took. */
export function createMetrics(src: MetricsSources): Metrics {
  // Loaded here, not at import: ~1 MiB of heap an agent without `metrics:` does not need.
  const { Counter, Gauge, Registry } = createRequire(import.meta.url)('prom-client') as typeof import('prom-client');
  const registry = new Registry();
  let snap: Snapshot | undefined;
  for (const f of FAMILIES) {
    const collect = function (this: Counter | Gauge) {
      this.reset();
      if (!snap) return;
      for (const [labels, v] of f.samples(snap)) {
        if (this instanceof Gauge) this.set(labels, v);
        else this.inc(labels, v);
      }
    };
    const o = { name: f.name, help: f.help, labelNames: f.labels, registers: [registry], collect };
    if (f.type === 'gauge') new Gauge(o);
    else new Counter(o);
  }
  return {
    registry,
    async scrape() {
      snap = { src, host: src.host?.stats(), status: src.agent.status(), memory: processMemory() };
      try {
        return await registry.metrics();
      } finally {
        snap = undefined;
      }
    },
  };
}

const isLoopback = (ip: string) => ip === '::1' || ip.startsWith('127.');

/** Serve `GET /metrics` on ip:port (port 0: any free one). Anything else is 404. */
export async function serveMetrics(listen: { ip: string; port: number }, metrics: Metrics, log?: Logger): Promise<{ port: number; close(): Promise<void> }> {
  if (!isLoopback(listen.ip)) log?.warn({ listen: `${listen.ip}:${listen.port}` }, 'metrics endpoint is not on loopback: anyone who reaches it reads the cluster\'s member and network names');
  const srv = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found: GET /metrics\n');
      return;
    }
    metrics.scrape().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e: unknown) => {
        log?.error({ err: (e as Error).message }, 'metrics scrape failed');
        res.writeHead(500).end('scrape failed\n');
      },
    );
  });
  await new Promise<void>((res, rej) => {
    srv.once('error', rej);
    srv.listen(listen.port, listen.ip, () => res());
  });
  const port = (srv.address() as { port: number }).port;
  log?.info({ listen: `${listen.ip.includes(':') ? `[${listen.ip}]` : listen.ip}:${port}` }, 'metrics endpoint listening');
  return { port, close: () => new Promise<void>((r) => srv.close(() => r())) };
}
