/**
 * This host's own service instances, health → records: each instance is published as a signed
 * service-instance record (services.ts) carrying its health, checked by one HealthChecker
 * (@overlay/services: only our own instances, O(local instances)) and re-published with a new
 * version on every published health change (`onChange`; flap damping is the checker's). An
 * instance without a health check is healthy from the start.
 *
 * Single-threaded; owned by the agent's runner (cli.ts runAgent) or an embedder.
 */
import { CounterSet, formatIpAddress } from '@overlay/dataplane';
import { type HealthCheckerOptions, type HealthSpec, type HealthStatus, HealthChecker, parseHealthSpec } from '@overlay/services';
import type { RecordKind, SignedRecord } from './records.js';
import {
  type EndpointMode,
  type PortProtocol,
  type ServiceInstanceData,
  DEFAULT_SERVICE_TTL,
  HEALTH_CODES,
  MAX_REASON_LEN,
  MODE_CODES,
  PROTO_CODES,
  SERVICE_KIND,
} from './services.js';

/** One instance this host runs, as the config (or an embedder) declares it. */
export interface LocalInstance {
  network: string;
  service: string;
  /** Unique within the network, cluster-wide (it is the record id). */
  id: string;
  /** Id of our endpoint on that network the instance runs behind; its addresses are the instance's. */
  endpoint: string;
  ipv4?: Uint8Array;
  ipv6?: Uint8Array;
  ports: { port: number; proto: PortProtocol; name?: string }[];
  mode?: EndpointMode;
  vip?: Uint8Array;
  ttl?: number;
  /** Absent: no check, healthy from the start. */
  health?: HealthSpec;
}

/** The agent calls this needs (Agent satisfies it). */
export interface RecordPublisher {
  publishRecord<D>(kind: RecordKind<D>, network: string, id: string, data: D): SignedRecord<D>;
  unpublishRecord(kind: number, network: string, id: string): boolean;
}

export const LOCAL_SERVICE_EVENTS = ['instances_published', 'instances_withdrawn', 'health_changes_published'] as const;
export type LocalServiceEvent = (typeof LOCAL_SERVICE_EVENTS)[number];

export interface LocalServicesOptions {
  agent: RecordPublisher;
  /** The service kind the agent was built with (serviceKind(view)). */
  kind: RecordKind<ServiceInstanceData>;
  /** Wall clock for `since` (ms); default Date.now. The checker has its own (checker.clock). */
  now?: () => number;
  /** Options of the checker (clock, probes, concurrency); `onChange` is ours. */
  checker?: Omit<HealthCheckerOptions, 'onChange'>;
}

interface Own {
  inst: LocalInstance;
  data: ServiceInstanceData;
}

const NO_CHECK: HealthSpec = parseHealthSpec({ disable: true });
const checkId = (network: string, id: string) => `${network}/${id}`;

export class LocalServices {
  readonly checker: HealthChecker;
  readonly counters = new CounterSet(LOCAL_SERVICE_EVENTS);
  private readonly own = new Map<string, Own>();
  private readonly now: () => number;

  constructor(private readonly o: LocalServicesOptions) {
    this.now = o.now ?? Date.now;
    this.checker = new HealthChecker({ ...o.checker, onChange: (id, status, result) => this.changed(id, status, result?.detail ?? '') });
  }

  /** Publish an instance (health `starting`, or `healthy` without a check) and start checking it. */
  add(inst: LocalInstance): void {
    const key = checkId(inst.network, inst.id);
    if (this.own.has(key)) this.remove(inst.network, inst.id);
    const spec = inst.health ?? NO_CHECK;
    const address = inst.ipv4?.length === 4 ? formatIpAddress(4, inst.ipv4) : inst.ipv6?.length === 16 ? formatIpAddress(6, inst.ipv6) : '';
    // add() validates the spec against the instance (a tcp/http check needs a port) before we publish.
    this.checker.add({ id: key, address, ports: inst.ports.map((p) => p.port) }, spec);
    const health: HealthStatus = spec.kind === 'none' ? 'healthy' : 'starting';
    const data: ServiceInstanceData = {
      service: inst.service,
      ipv4: inst.ipv4 ?? new Uint8Array(0),
      ipv6: inst.ipv6 ?? new Uint8Array(0),
      ports: inst.ports.map((p) => ({ port: p.port, proto: PROTO_CODES.indexOf(p.proto), name: p.name ?? '' })),
      health: HEALTH_CODES.indexOf(health),
      since: this.now(),
      reason: spec.kind === 'none' ? 'no check' : '',
      mode: MODE_CODES.indexOf(inst.mode ?? 'dnsrr'),
      vip: inst.vip ?? new Uint8Array(0),
      ttl: inst.ttl ?? DEFAULT_SERVICE_TTL,
      endpoint: inst.endpoint,
    };
    this.own.set(key, { inst, data });
    this.publish(inst, data);
  }

  /** Stop checking an instance and tombstone its record. */
  remove(network: string, id: string): boolean {
    const key = checkId(network, id);
    if (!this.own.delete(key)) return false;
    this.checker.remove(key);
    this.o.agent.unpublishRecord(SERVICE_KIND, network, id);
    this.counters.add(this.counters.at.instances_withdrawn);
    return true;
  }

  /** The published health of one of our instances. */
  health(network: string, id: string): HealthStatus | undefined {
    const own = this.own.get(checkId(network, id));
    return own && HEALTH_CODES[own.data.health];
  }

  /** Our instances with their published health and the checker's last result. */
  list(): { network: string; service: string; id: string; health: HealthStatus; since: number; reason: string; raw: HealthStatus | undefined }[] {
    return [...this.own.entries()].map(([key, { inst, data }]) => ({
      network: inst.network, service: inst.service, id: inst.id, health: HEALTH_CODES[data.health], since: data.since, reason: data.reason, raw: this.checker.get(key)?.raw,
    }));
  }

  /** Stop every check (the records stay: a graceful leave removes them at every peer). */
  stop(): Promise<void> {
    return this.checker.stop();
  }

  /** A published health change: sign it into a new version of the record. */
  private changed(key: string, status: HealthStatus, detail: string): void {
    const own = this.own.get(key);
    if (!own) return;
    own.data = { ...own.data, health: HEALTH_CODES.indexOf(status), since: this.now(), reason: detail.slice(0, MAX_REASON_LEN) };
    this.counters.add(this.counters.at.health_changes_published);
    this.publish(own.inst, own.data);
  }

  private publish(inst: LocalInstance, data: ServiceInstanceData): void {
    this.o.agent.publishRecord(this.o.kind, inst.network, inst.id, data);
    this.counters.add(this.counters.at.instances_published);
  }
}
