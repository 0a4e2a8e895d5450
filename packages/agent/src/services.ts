/**
 * The service-instance record kind (RecordBody.kind 2) and what it feeds: one instance of a
 * service is an endpoint of its owner on the record's network plus the ports it serves there, with
 * the health its owner's checker last published. Each agent checks only its own instances
 * (service-health.ts) and signs the state into the record; the record spreads by the same gossip
 * and push-pull as endpoints, verified against the owner's key (records.ts), so nobody can forge
 * another host's instances or their health.
 *
 * Its local effect (`reconcile`): the instance is in this node's `ServiceView` while its owner is
 * alive or suspect (we are always alive to ourselves); owner dead or left, tombstone, or reaped →
 * out. A host's death (SWIM) therefore removes all its instances at once: membership calls
 * reconcile for every record of the owner. The view answers `lookup(network, service)` with the
 * healthy instances (panic selection from @overlay/services) and forwards every change to a
 * `ServiceSink` (the embedded DNS's directory).
 *
 * Single-threaded; owned by one agent.
 */
import { CounterSet, formatIpAddress } from '@overlay/dataplane';
import { type HealthStatus, selectForAnswer } from '@overlay/services';
import type { KindContext, RecordKind, SignedRecord } from './records.js';
import { fieldOf } from './wire.js';

export const SERVICE_KIND = 2;
/** Service names are DNS labels: lower-case letters, digits and '-', not at either end. */
export const SERVICE_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const MAX_SERVICE_PORTS = 64;
export const MAX_REASON_LEN = 128;
export const MAX_SERVICE_TTL = 600;
export const DEFAULT_SERVICE_TTL = 5;

export type PortProtocol = 'tcp' | 'udp';
export type EndpointMode = 'dnsrr' | 'vip';
/** Wire codes of the proto enums, by position (agent.proto ServiceHealth, EndpointMode, PortProtocol). */
export const HEALTH_CODES: readonly HealthStatus[] = ['starting', 'healthy', 'unhealthy'];
export const MODE_CODES: readonly EndpointMode[] = ['dnsrr', 'vip'];
export const PROTO_CODES: readonly PortProtocol[] = ['tcp', 'udp'];

export interface ServicePort {
  port: number;
  /** PROTO_CODES index. */
  proto: number;
  /** Optional name (SRV `_name._proto`); '' when none. */
  name: string;
}

/**
 * What a service-instance record carries, in wire form (agent.proto ServiceInstanceData): enums as
 * their codes, addresses as bytes. `ServiceInstance` is the readable form.
 */
export interface ServiceInstanceData {
  service: string;
  /** 0 or 4 bytes. */
  ipv4: Uint8Array;
  /** 0 or 16 bytes. */
  ipv6: Uint8Array;
  ports: ServicePort[];
  /** HEALTH_CODES index. */
  health: number;
  /** Owner's clock (ms) when `health` was entered. */
  since: number;
  /** Why the last change happened (probe detail), ≤ 128 characters. */
  reason: string;
  /** MODE_CODES index. */
  mode: number;
  /** 0, 4 or 16 bytes. */
  vip: Uint8Array;
  /** Seconds answers may be cached, 0..600. */
  ttl: number;
  /** Id of the owner's endpoint record the instance runs behind. */
  endpoint: string;
}

export type ServiceRecord = SignedRecord<ServiceInstanceData>;

const PORT_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?$/;

const EMPTY = new Uint8Array(0);
/** A byte field as stored: the shared empty array when empty, else the decoded view itself. */
const kept = (b: Uint8Array): Uint8Array => (b.length === 0 ? EMPTY : b);

/**
 * Port lists that repeat across instances (every instance of a service usually serves the same
 * ports) as one array each, shared read-only by the records that carry them. Bounded like names.
 */
const portLists = new Map<string, ServicePort[]>();
function sharedPorts(ports: ServicePort[]): ServicePort[] {
  if (ports.length === 0) return NO_PORTS;
  let sig = '';
  for (const p of ports) sig += `${p.port}/${p.proto}/${p.name},`;
  const c = portLists.get(sig);
  if (c !== undefined) return c;
  if (portLists.size >= 4096) portLists.clear();
  portLists.set(sig, ports);
  return ports;
}
const NO_PORTS: ServicePort[] = [];

function decodeService(f: Record<string, unknown>): ServiceInstanceData | null {
  const rawPorts = f.ports;
  if (rawPorts !== undefined && !Array.isArray(rawPorts)) return null;
  const list = (rawPorts as Record<string, unknown>[] | undefined) ?? [];
  if (list.length > MAX_SERVICE_PORTS) return null;
  // Sized up front: an array grown by push keeps room for 17 elements (~150 bytes).
  const ports: ServicePort[] = new Array<ServicePort>(list.length);
  for (let i = 0; i < list.length; i++) {
    const p = list[i];
    const port = fieldOf.u32(p.port);
    const proto = fieldOf.u32(p.proto);
    const name = fieldOf.str(p.name);
    if (port < 1 || port > 65535 || proto >= PROTO_CODES.length || (name !== '' && !PORT_NAME_RE.test(name))) return null;
    ports[i] = { port, proto, name: fieldOf.shared(name) };
  }
  const health = fieldOf.u32(f.health);
  const mode = fieldOf.u32(f.mode);
  // Decoded bytes are views of the record's own copy of its body (RecordTable.open decodes from
  // it), never of the packet or push-pull chunk, so they are kept without another copy.
  const ipv4 = kept(fieldOf.bytes(f.ipv4));
  const ipv6 = kept(fieldOf.bytes(f.ipv6));
  const vip = kept(fieldOf.bytes(f.vip));
  const d: ServiceInstanceData = {
    service: fieldOf.shared(fieldOf.str(f.service)),
    ipv4,
    ipv6,
    ports: sharedPorts(ports),
    // A state or mode a newer node added reads as the conservative one we know.
    health: health < HEALTH_CODES.length ? health : HEALTH_CODES.indexOf('unhealthy'),
    since: fieldOf.num(f.since),
    reason: fieldOf.str(f.reason),
    mode: mode < MODE_CODES.length ? mode : 0,
    vip,
    ttl: fieldOf.u32(f.ttl),
    endpoint: fieldOf.str(f.endpoint),
  };
  const ok =
    SERVICE_NAME_RE.test(d.service) &&
    (d.ipv4.length === 0 || d.ipv4.length === 4) &&
    (d.ipv6.length === 0 || d.ipv6.length === 16) &&
    d.ipv4.length + d.ipv6.length > 0 &&
    ports.length <= MAX_SERVICE_PORTS &&
    d.reason.length <= MAX_REASON_LEN &&
    (d.vip.length === 0 || d.vip.length === 4 || d.vip.length === 16) &&
    d.ttl <= MAX_SERVICE_TTL &&
    d.endpoint.length <= 64 &&
    Number.isSafeInteger(d.since);
  return ok ? d : null;
}

/** One instance as the view holds it and hands it to the directory (readable form). */
export interface ServiceInstance {
  service: string;
  /** 0 or 4 bytes. */
  ipv4: Uint8Array;
  /** 0 or 16 bytes. */
  ipv6: Uint8Array;
  ports: { port: number; proto: PortProtocol; name: string }[];
  health: HealthStatus;
  since: number;
  reason: string;
  mode: EndpointMode;
  vip: Uint8Array;
  ttl: number;
  endpoint: string;
  /** Table key of the record (kind, network, id). */
  key: string;
  network: string;
  /** Instance id (the record id). */
  id: string;
  owner: string;
  version: number;
}

/** Where instance changes go: the embedded DNS's directory. Calls must not throw (counted if they do). */
export interface ServiceSink {
  /** An instance appeared or changed (health, ports, addresses). */
  upsert(inst: ServiceInstance): void;
  /** An instance is gone (owner dead or left, tombstoned, reaped). */
  remove(inst: ServiceInstance): void;
}

/** What the view did. Append-only; names are what `agent status` shows. */
export const SERVICE_VIEW_EVENTS = ['instances_added', 'instances_updated', 'instances_removed', 'sink_errors', 'lookups', 'panic_answers'] as const;
export type ServiceViewEvent = (typeof SERVICE_VIEW_EVENTS)[number];

/** An answer for one service: the selected instances and whether panic selection chose them. */
export interface ServiceAnswer {
  instances: ServiceInstance[];
  panic: boolean;
  healthy: number;
}

/**
 * The instances this node currently believes in, by network and service: fed by the kind's
 * reconcile, read by the DNS directory (through the sink) and by status.
 */
export class ServiceView {
  readonly counters = new CounterSet(SERVICE_VIEW_EVENTS, 'overlay.agent.services');
  /** The stored records present now (the table holds them anyway: a reference costs nothing). */
  private readonly byKey = new Map<string, ServiceRecord>();
  /** network → service → keys. */
  private readonly index = new Map<string, Map<string, Set<string>>>();
  private readonly sinks: ServiceSink[] = [];

  /** Forward every change to `sink`, starting with the instances present now. */
  attach(sink: ServiceSink): void {
    this.sinks.push(sink);
    for (const [key, rec] of this.byKey) this.emit(sink, 'upsert', instanceOf(key, rec));
  }

  /** The kind's effect for one record key. */
  reconcile(key: string, rec: ServiceRecord | null, ctx: KindContext): void {
    const cur = this.byKey.get(key);
    const want = rec !== null && present(rec, ctx) ? rec : null;
    if (want === null) {
      if (cur) this.drop(key, cur);
      return;
    }
    if (cur === want) return; // membership churn, same record
    if (cur && (cur.data!.service !== want.data!.service || cur.network !== want.network)) this.drop(key, cur);
    const existed = this.byKey.has(key);
    this.byKey.set(key, want);
    this.slot(want.network, want.data!.service, true).add(key);
    this.counters.add(existed ? this.counters.at.instances_updated : this.counters.at.instances_added);
    if (this.sinks.length === 0) return;
    const inst = instanceOf(key, want);
    for (const s of this.sinks) this.emit(s, 'upsert', inst);
  }

  private drop(key: string, rec: ServiceRecord): void {
    this.byKey.delete(key);
    const service = rec.data!.service;
    const set = this.slot(rec.network, service, false);
    set?.delete(key);
    if (set && set.size === 0) {
      const net = this.index.get(rec.network)!;
      net.delete(service);
      if (net.size === 0) this.index.delete(rec.network);
    }
    this.counters.add(this.counters.at.instances_removed);
    if (this.sinks.length === 0) return;
    const inst = instanceOf(key, rec);
    for (const s of this.sinks) this.emit(s, 'remove', inst);
  }

  private slot(network: string, service: string, create: true): Set<string>;
  private slot(network: string, service: string, create: false): Set<string> | undefined;
  private slot(network: string, service: string, create: boolean): Set<string> | undefined {
    let net = this.index.get(network);
    if (!net) {
      if (!create) return undefined;
      this.index.set(network, (net = new Map()));
    }
    let set = net.get(service);
    if (!set && create) net.set(service, (set = new Set()));
    return set;
  }

  private emit(sink: ServiceSink, op: 'upsert' | 'remove', inst: ServiceInstance): void {
    try {
      sink[op](inst);
    } catch {
      this.counters.add(this.counters.at.sink_errors);
    }
  }

  /** Every instance of `service` on `network` known now (any health); built on each call. */
  instances(network: string, service: string): ServiceInstance[] {
    const set = this.slot(network, service, false);
    return set ? [...set].map((k) => instanceOf(k, this.byKey.get(k)!)) : [];
  }

  /** What a DNS answer for `service` on `network` holds: the healthy instances, or all in panic. */
  lookup(network: string, service: string): ServiceAnswer {
    this.counters.add(this.counters.at.lookups);
    const sel = selectForAnswer(this.instances(network, service), (i) => i.health === 'healthy');
    if (sel.panic && sel.answer.length > 0) this.counters.add(this.counters.at.panic_answers);
    return { instances: sel.answer, panic: sel.panic && sel.answer.length > 0, healthy: sel.healthy };
  }

  /** Names of the services with at least one instance on `network`. */
  services(network: string): string[] {
    return [...(this.index.get(network)?.keys() ?? [])];
  }

  get size(): number {
    return this.byKey.size;
  }

  *all(): IterableIterator<ServiceInstance> {
    for (const [key, rec] of this.byKey) yield instanceOf(key, rec);
  }
}

/** The readable form of a stored instance record. */
function instanceOf(key: string, rec: ServiceRecord): ServiceInstance {
  const d = rec.data!;
  return {
    service: d.service, ipv4: d.ipv4, ipv6: d.ipv6,
    ports: d.ports.map((p) => ({ port: p.port, proto: PROTO_CODES[p.proto], name: p.name })),
    health: HEALTH_CODES[d.health], since: d.since, reason: d.reason, mode: MODE_CODES[d.mode], vip: d.vip, ttl: d.ttl, endpoint: d.endpoint,
    key, network: rec.network, id: rec.id, owner: rec.owner, version: rec.version,
  };
}

function present(rec: ServiceRecord, ctx: KindContext): boolean {
  if (rec.deleted || rec.data === undefined) return false;
  if (rec.owner === ctx.self) return true;
  const st = ctx.stateOf(rec.owner);
  return st === 'alive' || st === 'suspect';
}

/** The service-instance kind, feeding `view` (pass it in AgentOptions.kinds). */
export function serviceKind(view: ServiceView): RecordKind<ServiceInstanceData> {
  return { code: SERVICE_KIND, field: 'service', decode: decodeService, reconcile: (key, rec, ctx) => view.reconcile(key, rec, ctx) };
}

/** What the sink needs of @overlay/services' ServiceDirectory (which satisfies it). */
export interface DirectoryLike {
  setService(spec: { name: string; network: string; vip?: string[]; endpointMode?: EndpointMode; ttl?: number }): void;
  removeService(network: string, name: string): boolean;
  updateInstance(network: string, service: string, inst: { id: string; addresses: string[]; ports?: { name?: string; port: number; proto: PortProtocol }[]; healthy: boolean }): void;
  removeInstance(network: string, service: string, id: string): boolean;
  instanceCount(network: string, service: string): number;
}

/**
 * A sink feeding the embedded DNS's directory: one directory service per (network, service), its
 * mode, VIP and TTL from the latest instance that changed them; an instance is healthy for DNS
 * when its record says `healthy` (`starting` is not); the service goes when its last instance does.
 */
export function directorySink(dir: DirectoryLike): ServiceSink {
  const specs = new Map<string, string>();
  return {
    upsert(i) {
      const key = `${i.network}\u0000${i.service}`;
      const vip = i.vip.length ? [formatIpAddress(i.vip.length === 4 ? 4 : 6, i.vip)] : [];
      const spec = { name: i.service, network: i.network, vip, endpointMode: i.mode, ttl: i.ttl };
      const text = JSON.stringify(spec);
      if (specs.get(key) !== text) {
        dir.setService(spec);
        specs.set(key, text);
      }
      const addresses: string[] = [];
      if (i.ipv4.length === 4) addresses.push(formatIpAddress(4, i.ipv4));
      if (i.ipv6.length === 16) addresses.push(formatIpAddress(6, i.ipv6));
      dir.updateInstance(i.network, i.service, { id: i.id, addresses, ports: i.ports.map((p) => ({ port: p.port, proto: p.proto, name: p.name || undefined })), healthy: i.health === 'healthy' });
    },
    remove(i) {
      const key = `${i.network}\u0000${i.service}`;
      if (!specs.has(key)) return;
      dir.removeInstance(i.network, i.service, i.id);
      if (dir.instanceCount(i.network, i.service) === 0) {
        dir.removeService(i.network, i.service);
        specs.delete(key);
      }
    },
  };
}

/** The kind without local effect (tables and tests that feed nothing). */
export const SERVICES: RecordKind<ServiceInstanceData> = { code: SERVICE_KIND, field: 'service', decode: decodeService };

/** JSON-safe form of an instance for status. */
export function describeInstance(i: ServiceInstance): ServiceInstanceStatus {
  return {
    service: i.service, id: i.id, owner: i.owner, endpoint: i.endpoint,
    ipv4: i.ipv4.length === 4 ? formatIpAddress(4, i.ipv4) : undefined,
    ipv6: i.ipv6.length === 16 ? formatIpAddress(6, i.ipv6) : undefined,
    ports: i.ports.map((p) => `${p.port}/${p.proto}${p.name ? ` (${p.name})` : ''}`),
    health: i.health, since: i.since, reason: i.reason, mode: i.mode,
    vip: i.vip.length ? formatIpAddress(i.vip.length === 4 ? 4 : 6, i.vip) : undefined,
    ttl: i.ttl, version: i.version,
  };
}

export interface ServiceInstanceStatus {
  service: string;
  id: string;
  owner: string;
  endpoint: string;
  ipv4?: string;
  ipv6?: string;
  ports: string[];
  health: HealthStatus;
  since: number;
  reason: string;
  mode: EndpointMode;
  vip?: string;
  ttl: number;
  version: number;
}
