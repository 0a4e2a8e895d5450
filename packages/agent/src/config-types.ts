/** The validated configuration: what config.ts hands the runner (all defaults filled in). */
import { InvalidConfigError } from '@overlay/dataplane';
import type { HealthSpec, NormalPolicy, Policy } from '@overlay/services';
import type { ConfigProblem } from './config-schema.js';
import type { PresetName } from './presets.js';
import type { EndpointMode, PortProtocol } from './services.js';

/**
 * A config was refused. `field` is the first problem's path (a JSON pointer such as
 * `/networks/0/subnet`, or `(yaml)`, `--config`, `--host`); `problems` holds every problem found,
 * and the message lists them all, one per line. Secrets are never echoed.
 */
export class AgentConfigError extends InvalidConfigError {
  readonly problems: readonly ConfigProblem[];
  constructor(field: string, message: string, more: readonly ConfigProblem[] = []) {
    super(field, [message, ...more.map((p) => `${p.path || '(root)'}: ${p.message}`)].join('\n'));
    this.problems = [{ path: field, message }, ...more];
  }
  static of(problems: readonly ConfigProblem[]): AgentConfigError {
    return new AgentConfigError(problems[0].path || '(root)', problems[0].message, problems.slice(1));
  }
}

export interface EndpointConfig {
  id: string;
  /** Cluster file: the owning host (absent in a per-host file: this host). */
  host?: string;
  device?: string;
  mac: Uint8Array;
  macText: string;
  ipv4?: Uint8Array;
  ipv4Text?: string;
  ipv6?: Uint8Array;
  ipv6Text?: string;
  /** Policy groups of this endpoint's addresses. */
  groups: string[];
}
export interface NetworkConfig {
  name: string;
  vni: number;
  /** CIDR text as written (host bits zero); endpoint addresses of its family lie inside it. */
  subnet?: string;
  /** TAP device attached to the dataplane for this network; without it the network is gossip-only. */
  device?: string;
  /** What carries the network between hosts: `wireguard` when the host has a WireGuard key, else `none`. */
  encryption: 'wireguard' | 'none';
  /** Dataplane options for this VNI (see NetworkOptions in @overlay/dataplane); absent = its default. */
  learning?: boolean;
  unknownUnicast?: 'flood' | 'drop';
  arpSuppression?: boolean;
  ageingMs?: number;
  /** VXLAN Group Policy on this network's dataplane (NetworkOptions.gbp). */
  gbp?: boolean;
  /** This host's endpoints (published by it). */
  endpoints: EndpointConfig[];
  /** Cluster file: other hosts' endpoints (they publish them; here for policy groups and plans). */
  remote: EndpointConfig[];
  /**
   * Address the embedded DNS answers on inside this network (text, canonical): `resolver` as
   * written, else the subnet's second-to-last address (198.19.0.254 in 198.19.0.0/24); none
   * without a subnet (or in a /31, /32, /127, /128).
   */
  resolver?: string;
}
/** One port an instance serves. */
export interface ServicePortConfig { port: number; proto: PortProtocol; name?: string }
/** One instance this host runs: behind one of its endpoints on the service's network. */
export interface ServiceInstanceConfig {
  id: string;
  /** Id of an endpoint of the same network declared in this config; its addresses are the instance's. */
  endpoint: string;
  ipv4?: Uint8Array;
  ipv6?: Uint8Array;
  ports: ServicePortConfig[];
}
export interface ServiceConfig {
  name: string;
  network: string;
  /** dnsrr (default): names answer the instances; vip: names answer the VIP, balanced by every attached host's dataplane. */
  endpointMode: EndpointMode;
  /** The VIP (IPv4 is balanced; absent in vip mode: allocated from the subnet, services-vip.ts). */
  vip?: Uint8Array;
  vipText?: string;
  /** Seconds DNS answers may be cached (0..600, default 5). */
  ttl: number;
  /** This host's instances. */
  instances: ServiceInstanceConfig[];
  /** Cluster file: instances other hosts run (id and endpoint id). */
  remoteInstances: { id: string; endpoint: string }[];
  /** Absent: no check (instances are healthy while their host lives). */
  healthcheck?: HealthSpec;
}
/** A network's policy: the `policy` filter stage of that network's dataplane. */
export interface PolicyConfig {
  network: string;
  vni: number;
  policy: Policy;
  normal: NormalPolicy;
  /** VXLAN-GBP: group → Group Policy ID (1..65535), the same on every host. */
  groupIds: Record<string, number>;
}
export type StoreConfig = { kind: 'gossip' } | { kind: 'etcd'; endpoints: string[]; prefix: string };
/**
 * Admission by certificate (@overlay/pki, docs/pki.md): the trust file (one or two CA
 * certificates), this node's certificate and identity key; with `joinToken` and `joinServer`,
 * missing files are obtained at start by a token join. The join token is never logged.
 */
export interface PkiConfig {
  ca: string;
  cert: string;
  key: string;
  joinToken?: string;
  joinServer?: { ip: string; port: number };
  /** Overlay prefixes asked for at join (CIDR text). */
  prefixes: string[];
}
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'json' | 'pretty';

export interface AgentConfig {
  /** Always 1 (a file without `version` is read as version 1). */
  version: 1;
  name: string;
  /** The file was a cluster file (`hosts:`); `name` is the host chosen. */
  cluster: boolean;
  listen: { ip: string; port: number };
  advertise: { ip: string; port: number };
  seeds: { ip: string; port: number }[];
  profile: PresetName;
  vtep: string;
  vtepPort: number;
  signingKey: Uint8Array;
  clusterKeys: string[];
  insecure: boolean;
  /** WireGuard encryption of the overlay; the tunnel rides the VXLAN socket (vtepPort), no port of its own. */
  wireguard?: { privateKey: string };
  controlSocket: string;
  networks: NetworkConfig[];
  /** Service instances this host runs (published as signed records, health-checked here). */
  services: ServiceConfig[];
  /** Per network, the policy its dataplane filters with (networks with a device only act on it). */
  policies: PolicyConfig[];
  /**
   * The embedded DNS on a socket for host processes (UDP and TCP): absent, no socket (the
   * resolver addresses are answered inside the dataplane). `forward`: names that are not ours go
   * to resolv.conf's nameservers (default true); false answers them NXDOMAIN.
   */
  dns?: { listen: { ip: string; port: number }; forward: boolean };
  /** Prometheus text endpoint: absent = off; `metrics: {}` listens on 127.0.0.1:9464 (loopback by default). */
  metrics?: { listen: { ip: string; port: number } };
  /** Structured logs: level (pino's names, default info) and format (absent: pretty when stderr is a terminal, else json). */
  log: { level: LogLevel; format?: LogFormat };
  /** Where endpoint records live: gossip (default) or etcd. */
  store: StoreConfig;
  pki?: PkiConfig;
}
