/**
 * Agent configuration: one YAML file, validated completely before anything starts (the fields
 * and a complete example are in docs/ARCHITECTURE.md, "Configuration"; a test parses that
 * example). Every problem is an `AgentConfigError` naming the field path (e.g.
 * `networks[0].endpoints[1].mac`), unknown keys included at any depth; the agent never starts
 * half-configured. Secrets (keys) are never echoed in errors.
 *
 * Addresses are parsed by the dataplane's rules (`parseIpAddress`, `parseMac`), so what the config
 * accepts is what the dataplane takes: no zone ids (fe80::1%eth0), no prefixes where an address
 * is meant. Subnet math (network address, host bits, containment, last addresses) is the `ip-address`
 * package's, over addresses the dataplane's parser accepted.
 */
import { readFileSync } from 'node:fs';
import { Address4, Address6 } from 'ip-address';
import { parse as parseYaml } from 'yaml';
import { InvalidConfigError, formatIpAddress, formatMac, isValidVni, parseIpAddress, parseMac, type IpBytes } from '@overlay/dataplane';
import { type HealthSpec, HealthSpecError, parseHealthSpec } from '@overlay/services';
import { type PresetName, PRESETS } from './presets.js';
import { DEFAULT_SERVICE_TTL, MAX_SERVICE_PORTS, MAX_SERVICE_TTL, SERVICE_NAME_RE, type EndpointMode, type PortProtocol } from './services.js';

export class AgentConfigError extends InvalidConfigError {}

export interface EndpointConfig { id: string; device?: string; mac: Uint8Array; macText: string; ipv4?: Uint8Array; ipv4Text?: string; ipv6?: Uint8Array; ipv6Text?: string }
export interface NetworkConfig {
  name: string;
  vni: number;
  /** CIDR text as written (host bits zero); endpoint addresses of its family lie inside it. */
  subnet?: string;
  /** TAP device attached to the dataplane for this network; without it the network is gossip-only. */
  device?: string;
  /** Dataplane options for this VNI (see NetworkOptions in @overlay/dataplane); absent = its default. */
  learning?: boolean;
  unknownUnicast?: 'flood' | 'drop';
  arpSuppression?: boolean;
  ageingMs?: number;
  endpoints: EndpointConfig[];
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
  instances: ServiceInstanceConfig[];
  /** Absent: no check (instances are healthy while their host lives). */
  healthcheck?: HealthSpec;
}
export interface AgentConfig {
  name: string;
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
  /**
   * The embedded DNS on a socket for host processes (UDP and TCP): absent, no socket (the
   * resolver addresses are answered inside the dataplane). `forward`: names that are not ours go
   * to resolv.conf's nameservers (default true); false answers them NXDOMAIN.
   */
  dns?: { listen: { ip: string; port: number }; forward: boolean };
  /** Prometheus text endpoint: absent = off; `metrics: {}` listens on 127.0.0.1:9464 (loopback by default). */
  metrics?: { listen: { ip: string; port: number } };
  /** Structured logs: level (pino's names, default info) and format (json default, pretty for a terminal). */
  log: { level: LogLevel; format: LogFormat };
}
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'json' | 'pretty';
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9464';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Linux interface names: at most 15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
const IFNAME_RE = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,15}$/;
/** Learned FDB entries are swept once a second (dataplane core), so shorter ageing means nothing. */
const MIN_AGEING_MS = 1000;

const ROOT_KEYS = ['name', 'listen', 'advertise', 'seeds', 'profile', 'vtep', 'vtepPort', 'signingKey', 'signingKeyFile', 'encryption', 'wireguard', 'controlSocket', 'networks', 'services', 'dns', 'metrics', 'log'];
const METRICS_KEYS = ['listen'];
const LOG_KEYS = ['level', 'format'];
const DNS_KEYS = ['listen', 'forward'];
const ENCRYPTION_KEYS = ['clusterKeys', 'insecure'];
const WIREGUARD_KEYS = ['privateKey'];
const NETWORK_KEYS = ['name', 'vni', 'subnet', 'device', 'learning', 'unknownUnicast', 'arpSuppression', 'ageingMs', 'endpoints', 'resolver'];
const SERVICE_KEYS = ['name', 'network', 'endpointMode', 'vip', 'ttl', 'instances', 'healthcheck'];
const INSTANCE_KEYS = ['id', 'endpoint', 'ports'];
const PORT_KEYS = ['port', 'proto', 'name'];
/** Instance ids are DNS labels (names `<id>.tasks.<service>`); port names are SRV service names (RFC 6335: at most 15). */
const PORT_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?$/;
const ENDPOINT_KEYS = ['id', 'device', 'mac', 'ipv4', 'ipv6'];

function fail(field: string, msg: string): never {
  throw new AgentConfigError(field, msg);
}
const at = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** Levenshtein distance, for "did you mean" on unknown keys (short strings only). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** A mapping with only `known` keys; an unknown key fails with its full path. */
function mapping(v: unknown, path: string, known: readonly string[]): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(path || '(root)', 'must be a mapping');
  const r = v as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (known.includes(k)) continue;
    const near = known.filter((x) => distance(x.toLowerCase(), k.toLowerCase()) <= 2);
    fail(at(path, k), `unknown field${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}`);
  }
  return r;
}
function list(v: unknown, field: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(field, 'must be a list');
  return v;
}
function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) fail(field, 'must be a non-empty string');
  return v;
}
function bool(v: unknown, field: string): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') fail(field, 'must be true or false');
  return v;
}
function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer in ${min}..${max}`);
  return v;
}
function ifname(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  const s = str(v, field);
  if (!IFNAME_RE.test(s)) fail(field, 'not an interface name (at most 15 of A-Z a-z 0-9 . _ -)');
  return s;
}
/** An IP address by the dataplane's rules; `family` restricts it. */
function ipBytes(v: unknown, field: string, family?: 4 | 6): IpBytes {
  const s = str(v, field);
  const kind = family ? `IPv${family}` : 'IPv4 or IPv6';
  let a: IpBytes;
  try {
    a = parseIpAddress(s);
  } catch {
    fail(field, `not an ${kind} address${s.includes('/') ? ' (a prefix is not allowed here)' : s.includes('%') ? ' (zone ids are not allowed)' : ''}: ${JSON.stringify(s)}`);
  }
  if (family && a.family !== family) fail(field, `not an ${kind} address: ${JSON.stringify(s)}`);
  return a;
}
/** Canonical text of an address (IPv6 per RFC 5952), as the dataplane and `ip` print it. */
function ip(v: unknown, field: string): string {
  const a = ipBytes(v, field);
  return formatIpAddress(a.family, a.bytes);
}
const isWildcard = (a: string) => a === '0.0.0.0' || a === '::';

/** "ip:port", "[v6]:port", "ip" or "[v6]" (default port). IPv6 needs brackets: "2001:db8::1:7946" is ambiguous. */
export function parseHostPort(v: unknown, field: string, defPort = 7946): { ip: string; port: number } {
  const s = str(v, field);
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(s);
  if (!m) fail(field, `not ip:port or [ipv6]:port: ${JSON.stringify(s)}`);
  const addr = ipBytes(m[1], field);
  if (addr.family === 6 && !s.startsWith('[')) fail(field, 'write IPv6 addresses in brackets: [2001:db8::1]:7946');
  if (addr.family === 4 && s.startsWith('[')) fail(field, 'brackets are for IPv6 addresses only');
  return { ip: formatIpAddress(addr.family, addr.bytes), port: m[2] === undefined ? defPort : int(Number(m[2]), field, 1, 65535) };
}
function key(v: unknown, field: string, bytes: number): Buffer {
  const s = str(v, field);
  const b = Buffer.from(s, 'base64');
  if (b.length !== bytes || b.toString('base64') !== s.replace(/\s/g, '')) fail(field, `must be base64 of ${bytes} bytes`);
  return b;
}

/**
 * A subnet: the address is read by the dataplane's rules (ipBytes), the prefix math — network
 * address, host bits, containment, the last addresses — by the `ip-address` package.
 */
interface Subnet { family: 4 | 6; prefix: number; text: string; cidr: Address4 | Address6 }
const toAddress = (a: IpBytes, prefix?: number): Address4 | Address6 => {
  const text = formatIpAddress(a.family, a.bytes) + (prefix === undefined ? '' : `/${prefix}`);
  return a.family === 4 ? new Address4(text) : new Address6(text);
};
function subnet(v: unknown, field: string): Subnet {
  const s = str(v, field);
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) fail(field, `not a subnet in CIDR form (address/prefix): ${JSON.stringify(s)}`);
  const a = ipBytes(m[1], field);
  const prefix = Number(m[2]);
  if (prefix > (a.family === 4 ? 32 : 128)) fail(field, `prefix length must be at most ${a.family === 4 ? 32 : 128}: ${JSON.stringify(s)}`);
  const cidr = toAddress(a, prefix);
  const start = cidr.startAddress();
  const text = `${ip(start.correctForm(), field)}/${prefix}`;
  if (start.bigInt() !== cidr.bigInt()) fail(field, `${s} has host bits set (the network is ${text})`);
  return { family: a.family, prefix, text, cidr };
}
function inside(a: IpBytes, net: Subnet): boolean {
  return a.family === net.family && toAddress(a).isInSubnet(net.cidr);
}
function endpoint(e: unknown, g: string, net: Subnet | undefined, device: string | undefined): EndpointConfig {
  const x = mapping(e, g, ENDPOINT_KEYS);
  const id = str(x.id, `${g}.id`);
  if (!NAME_RE.test(id)) fail(`${g}.id`, 'letters, digits, . _ - only, at most 63 characters');
  let macNum: number;
  try {
    macNum = parseMac(str(x.mac, `${g}.mac`));
  } catch {
    fail(`${g}.mac`, `not a MAC address aa:bb:cc:dd:ee:ff: ${JSON.stringify(x.mac)}`);
  }
  const macText = formatMac(macNum);
  const mac = Uint8Array.from(macText.split(':'), (h) => parseInt(h, 16));
  if (mac[0] & 1) fail(`${g}.mac`, 'must be unicast (lowest bit of the first byte clear)');
  if (mac.every((b) => b === 0)) fail(`${g}.mac`, 'must not be all zeros');
  const out: EndpointConfig = { id, mac, macText, device: ifname(x.device, `${g}.device`) };
  if (out.device !== undefined && out.device !== device) fail(`${g}.device`, `must be the network's device (${device ?? 'the network has none'}), or left out`);
  for (const family of [4, 6] as const) {
    const f = `ipv${family}` as const;
    if (x[f] === undefined) continue;
    const a = ipBytes(x[f], `${g}.${f}`, family);
    if (net?.family === family && !inside(a, net)) fail(`${g}.${f}`, `${x[f]} is outside the network's subnet ${net.text}`);
    out[f] = a.bytes;
    out[`${f}Text`] = formatIpAddress(family, a.bytes);
  }
  return out;
}

function network(n: unknown, f: string, seen: { names: Map<string, string>; vnis: Map<number, string>; devices: Map<string, string> }): NetworkConfig {
  const r = mapping(n, f, NETWORK_KEYS);
  const unique = <K>(m: Map<K, string>, k: K, field: string, what: string) => {
    const other = m.get(k);
    if (other !== undefined) fail(field, `duplicate ${what} ${String(k)} (also ${other})`);
    m.set(k, field);
  };
  const name = str(r.name, `${f}.name`);
  if (!NAME_RE.test(name)) fail(`${f}.name`, 'letters, digits, . _ - only, at most 63 characters');
  unique(seen.names, name, `${f}.name`, 'network');
  if (typeof r.vni !== 'number' || !isValidVni(r.vni)) fail(`${f}.vni`, 'must be an integer in 0..16777215');
  unique(seen.vnis, r.vni, `${f}.vni`, 'VNI');
  const net = r.subnet === undefined ? undefined : subnet(r.subnet, `${f}.subnet`);
  const device = ifname(r.device, `${f}.device`);
  if (device !== undefined) unique(seen.devices, device, `${f}.device`, 'device');
  const unknownUnicast = r.unknownUnicast;
  if (unknownUnicast !== undefined && unknownUnicast !== 'flood' && unknownUnicast !== 'drop') fail(`${f}.unknownUnicast`, "must be 'flood' or 'drop'");
  const ageingMs = r.ageingMs === undefined ? undefined : int(r.ageingMs, `${f}.ageingMs`, MIN_AGEING_MS, 2 ** 31 - 1);
  const ids = new Map<string, string>();
  const macs = new Map<string, string>();
  const addrs = new Map<string, string>();
  const onTap = new Map<string, string>();
  const endpoints = list(r.endpoints, `${f}.endpoints`).map((e, j) => {
    const g = `${f}.endpoints[${j}]`;
    const ep = endpoint(e, g, net, device);
    unique(ids, ep.id, `${g}.id`, 'endpoint id');
    // The endpoint naming the TAP is the TAP itself: its MAC becomes the TAP's, and a TAP has one.
    if (ep.device !== undefined) {
      const first = onTap.get(ep.device);
      if (first !== undefined) fail(`${g}.device`, `only one endpoint may name ${ep.device} (already ${first}): its MAC becomes the TAP's, and a TAP has one`);
      onTap.set(ep.device, g);
    }
    unique(macs, ep.macText, `${g}.mac`, 'MAC');
    if (ep.ipv4Text) unique(addrs, ep.ipv4Text, `${g}.ipv4`, 'address');
    if (ep.ipv6Text) unique(addrs, ep.ipv6Text, `${g}.ipv6`, 'address');
    return ep;
  });
  let resolver: string | undefined;
  if (r.resolver !== undefined) {
    const a = ipBytes(r.resolver, `${f}.resolver`);
    if (net && net.family === a.family && !inside(a, net)) fail(`${f}.resolver`, `${r.resolver} is outside the network's subnet ${net.text}`);
    resolver = formatIpAddress(a.family, a.bytes);
  } else if (net) resolver = defaultResolver(net.text);
  if (resolver !== undefined && addrs.has(resolver)) fail(`${f}.resolver`, `${resolver} is also the address of ${addrs.get(resolver)} (the resolver needs an address of its own${r.resolver === undefined ? '; the default is the subnet\'s second-to-last address: set resolver to another' : ''})`);
  return {
    name, vni: r.vni, subnet: net?.text, device,
    learning: bool(r.learning, `${f}.learning`), unknownUnicast, arpSuppression: bool(r.arpSuppression, `${f}.arpSuppression`), ageingMs,
    endpoints, resolver,
  };
}

/**
 * The second-to-last address of a subnet in canonical CIDR form (the last is IPv4's broadcast);
 * none when the subnet has fewer than 4 addresses.
 */
export function defaultResolver(subnetText: string): string | undefined {
  const v6 = subnetText.includes(':');
  const cidr = v6 ? new Address6(subnetText) : new Address4(subnetText);
  if ((v6 ? 128 : 32) - cidr.subnetMask < 2) return undefined;
  const last = cidr.endAddress().bigInt() - 1n;
  return ip((v6 ? Address6.fromBigInt(last) : Address4.fromBigInt(last)).correctForm(), 'resolver');
}

function servicePort(p: unknown, g: string): ServicePortConfig {
  const x = mapping(p, g, PORT_KEYS);
  const port = int(x.port, `${g}.port`, 1, 65535);
  const proto = x.proto ?? 'tcp';
  if (proto !== 'tcp' && proto !== 'udp') fail(`${g}.proto`, "must be 'tcp' or 'udp'");
  let name: string | undefined;
  if (x.name !== undefined) {
    name = str(x.name, `${g}.name`);
    if (!PORT_NAME_RE.test(name)) fail(`${g}.name`, 'lower-case letters, digits and -, at most 15 characters (SRV _name._proto)');
  }
  return { port, proto, name };
}

function service(v: unknown, f: string, networks: NetworkConfig[], seen: { services: Map<string, string>; instances: Map<string, string> }): ServiceConfig {
  const r = mapping(v, f, SERVICE_KEYS);
  const name = str(r.name, `${f}.name`);
  if (!SERVICE_NAME_RE.test(name)) fail(`${f}.name`, 'a DNS label: lower-case letters, digits and -, at most 63 characters');
  const netName = str(r.network, `${f}.network`);
  const net = networks.find((n) => n.name === netName);
  if (!net) fail(`${f}.network`, `no network ${JSON.stringify(netName)} in networks`);
  const other = seen.services.get(`${netName}/${name}`);
  if (other !== undefined) fail(`${f}.name`, `duplicate service ${name} in network ${netName} (also ${other})`);
  seen.services.set(`${netName}/${name}`, `${f}.name`);
  const endpointMode = r.endpointMode ?? 'dnsrr';
  if (endpointMode !== 'dnsrr' && endpointMode !== 'vip') fail(`${f}.endpointMode`, "must be 'dnsrr' or 'vip'");
  let vip: IpBytes | undefined;
  if (r.vip !== undefined) {
    vip = ipBytes(r.vip, `${f}.vip`);
    const sub = net.subnet === undefined ? undefined : subnet(net.subnet, `${f}.vip`);
    if (sub && sub.family === vip.family && !inside(vip, sub)) fail(`${f}.vip`, `${r.vip} is outside the network's subnet ${sub.text}`);
  }
  // Without one, every host allocates the same address from the subnet (services-vip.ts).
  if (endpointMode === 'vip' && !vip && !(net.subnet && !net.subnet.includes(':'))) fail(`${f}.vip`, "required with endpointMode 'vip' when the network has no IPv4 subnet to allocate one from");
  const ttl = r.ttl === undefined ? DEFAULT_SERVICE_TTL : int(r.ttl, `${f}.ttl`, 0, MAX_SERVICE_TTL);
  let healthcheck: HealthSpec | undefined;
  if (r.healthcheck !== undefined) {
    try {
      healthcheck = parseHealthSpec(r.healthcheck);
    } catch (e) {
      if (!(e instanceof HealthSpecError)) throw e;
      const path = e.field === '(root)' ? `${f}.healthcheck` : `${f}.healthcheck.${e.field}`;
      fail(path, e.message.replace(/^healthcheck\.[^:]*: /, ''));
    }
  }
  const instances = list(r.instances, `${f}.instances`).map((iv, j) => {
    const g = `${f}.instances[${j}]`;
    const x = mapping(iv, g, INSTANCE_KEYS);
    const id = str(x.id, `${g}.id`);
    if (!SERVICE_NAME_RE.test(id)) fail(`${g}.id`, 'a DNS label: lower-case letters, digits and -, at most 63 characters');
    const dup = seen.instances.get(`${netName}/${id}`);
    if (dup !== undefined) fail(`${g}.id`, `duplicate instance id ${id} in network ${netName} (also ${dup})`);
    seen.instances.set(`${netName}/${id}`, `${g}.id`);
    const epId = str(x.endpoint, `${g}.endpoint`);
    const ep = net.endpoints.find((e) => e.id === epId);
    if (!ep) fail(`${g}.endpoint`, `no endpoint ${JSON.stringify(epId)} in network ${netName} on this host`);
    if (!ep.ipv4 && !ep.ipv6) fail(`${g}.endpoint`, `endpoint ${epId} has no address`);
    const rawPorts = list(x.ports, `${g}.ports`);
    if (rawPorts.length > MAX_SERVICE_PORTS) fail(`${g}.ports`, `at most ${MAX_SERVICE_PORTS} ports`);
    const ports = rawPorts.map((p, k) => servicePort(p, `${g}.ports[${k}]`));
    const hc = healthcheck;
    if (hc && (hc.kind === 'tcp' || hc.kind === 'http' || hc.kind === 'https') && hc.port === undefined && ports.length === 0) {
      fail(`${g}.ports`, `the ${hc.kind} health check probes the instance's first port (or healthcheck.port): give one`);
    }
    return { id, endpoint: epId, ipv4: ep.ipv4, ipv6: ep.ipv6, ports };
  });
  return { name, network: netName, endpointMode, vip: vip?.bytes, vipText: vip && formatIpAddress(vip.family, vip.bytes), ttl, instances, healthcheck };
}

/** Validate a parsed YAML document. Throws AgentConfigError naming the first bad field. */
export function validateConfig(doc: unknown, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): AgentConfig {
  const d = mapping(doc, '', ROOT_KEYS);
  const name = str(d.name, 'name');
  if (!NAME_RE.test(name)) fail('name', 'letters, digits, . _ - only, at most 63 characters');
  const listen = parseHostPort(d.listen ?? '0.0.0.0:7946', 'listen');
  const advertise = d.advertise === undefined ? listen : parseHostPort(d.advertise, 'advertise', listen.port);
  if (isWildcard(advertise.ip)) fail('advertise', d.advertise === undefined ? 'required when listen is a wildcard address' : 'must be an address peers can dial, not a wildcard');
  const seeds = list(d.seeds, 'seeds').map((s, i) => parseHostPort(s, `seeds[${i}]`));
  const profile = (d.profile ?? 'lan') as PresetName;
  if (typeof profile !== 'string' || !Object.hasOwn(PRESETS, profile)) fail('profile', `must be one of ${Object.keys(PRESETS).join(', ')}`);
  const vtep = d.vtep === undefined ? advertise.ip : ip(d.vtep, 'vtep');
  if (isWildcard(vtep)) fail('vtep', 'must be an address peers can send VXLAN to, not a wildcard');
  const vtepPort = d.vtepPort === undefined ? 4789 : int(d.vtepPort, 'vtepPort', 1, 65535);
  let signingKey: Buffer;
  if (d.signingKey !== undefined && d.signingKeyFile !== undefined) fail('signingKeyFile', 'give signingKey or signingKeyFile, not both');
  if (d.signingKey !== undefined) signingKey = key(d.signingKey, 'signingKey', 64);
  else if (d.signingKeyFile !== undefined) {
    let text: string;
    try {
      text = readFile(str(d.signingKeyFile, 'signingKeyFile')).trim();
    } catch {
      fail('signingKeyFile', 'cannot be read');
    }
    signingKey = key(text, 'signingKeyFile', 64);
  } else fail('signingKey', 'required (or signingKeyFile): run `agent keygen`');
  const enc = mapping(d.encryption ?? {}, 'encryption', ENCRYPTION_KEYS);
  const insecure = bool(enc.insecure, 'encryption.insecure') ?? false;
  const clusterKeys = list(enc.clusterKeys, 'encryption.clusterKeys').map((k, i) => (key(k, `encryption.clusterKeys[${i}]`, 32), k as string));
  if (clusterKeys.length === 0 && !insecure) fail('encryption.clusterKeys', 'at least one cluster key is required (or encryption.insecure: true for tests)');
  if (clusterKeys.length > 0 && insecure) fail('encryption.insecure', 'cannot be true with clusterKeys: choose one');
  let wireguard: AgentConfig['wireguard'];
  if (d.wireguard !== undefined) {
    const raw = d.wireguard as Record<string, unknown> | null;
    if (raw && typeof raw === 'object' && 'port' in raw) fail('wireguard.port', 'not used: the tunnel rides the VXLAN socket (vtepPort); remove it');
    const w = mapping(raw, 'wireguard', WIREGUARD_KEYS);
    key(w.privateKey, 'wireguard.privateKey', 32);
    wireguard = { privateKey: w.privateKey as string };
  }
  const controlSocket = d.controlSocket === undefined ? `/run/overlay-agent-${name}.sock` : str(d.controlSocket, 'controlSocket');
  const seen = { names: new Map<string, string>(), vnis: new Map<number, string>(), devices: new Map<string, string>() };
  const networks = list(d.networks, 'networks').map((n, i) => network(n, `networks[${i}]`, seen));
  const seenServices = { services: new Map<string, string>(), instances: new Map<string, string>() };
  const services = list(d.services, 'services').map((v, i) => service(v, `services[${i}]`, networks, seenServices));
  let dns: AgentConfig['dns'];
  if (d.dns !== undefined) {
    const x = mapping(d.dns, 'dns', DNS_KEYS);
    dns = { listen: parseHostPort(x.listen ?? '127.0.0.11:53', 'dns.listen', 53), forward: bool(x.forward, 'dns.forward') ?? true };
  }
  let metrics: AgentConfig['metrics'];
  if (d.metrics !== undefined) {
    const x = mapping(d.metrics ?? {}, 'metrics', METRICS_KEYS);
    metrics = { listen: parseHostPort(x.listen ?? DEFAULT_METRICS_LISTEN, 'metrics.listen', 9464) };
  }
  const lg = mapping(d.log ?? {}, 'log', LOG_KEYS);
  const level = (lg.level ?? 'info') as LogLevel;
  if (typeof level !== 'string' || !LOG_LEVELS.includes(level)) fail('log.level', `must be one of ${LOG_LEVELS.join(', ')}`);
  const format = (lg.format ?? 'json') as LogFormat;
  if (format !== 'json' && format !== 'pretty') fail('log.format', "must be 'json' or 'pretty'");
  return { name, listen, advertise, seeds, profile, vtep, vtepPort, signingKey, clusterKeys, insecure, wireguard, controlSocket, networks, services, dns, metrics, log: { level, format } };
}

/** Parse YAML text and validate it; `(yaml)` names a syntax error (first line of the parser's message). */
export function parseConfig(text: string, readFile?: (p: string) => string): AgentConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new AgentConfigError('(yaml)', (e as Error).message.split('\n')[0]);
  }
  return validateConfig(doc, readFile);
}

/** Read and validate a YAML config file. Opens no device or socket. */
export function loadConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AgentConfigError('--config', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parseConfig(text);
}

/** One line saying what a valid config will run (for `agent check`); no secrets. */
export function summarizeConfig(c: AgentConfig): string {
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const hp = (a: { ip: string; port: number }) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`);
  const nets = c.networks.map((n) => `${n.name}/${n.vni}${n.device ? ` on ${n.device}` : ''} ${plural(n.endpoints.length, 'endpoint')}${n.resolver && (c.services.length || c.dns) ? `, resolver ${n.resolver}` : ''}`);
  const svcs = c.services.map((v) => `${v.name}@${v.network} ${plural(v.instances.length, 'instance')}`);
  const enc = c.insecure ? 'gossip UNENCRYPTED' : `${plural(c.clusterKeys.length, 'cluster key')}`;
  return `${c.name}: advertise ${hp(c.advertise)}, vtep ${hp({ ip: c.vtep, port: c.vtepPort })}, ${plural(c.seeds.length, 'seed')}, ${enc}, wireguard ${c.wireguard ? 'on' : 'off'}, ${plural(c.networks.length, 'network')}${nets.length ? ` (${nets.join('; ')})` : ''}${svcs.length ? `, ${plural(svcs.length, 'service')} (${svcs.join('; ')})` : ''}`;
}
