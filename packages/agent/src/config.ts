/**
 * Agent configuration: one versioned YAML file (`version: 1`; a file without `version` is read
 * as version 1), for one host or a whole cluster, validated completely before anything starts
 * (docs/config.md has the fields and examples; a test validates them). Two passes:
 *
 * 1. the JSON Schema (config-schema.ts, published as schema/agent-config.schema.json): shape,
 *    unknown keys at every depth, address syntax — every problem at once;
 * 2. only when the shape is right, the semantic pass (config-net.ts, config-services.ts, the
 *    host fields below): containment, overlaps, duplicates, references — again all at once.
 *
 * Every problem is named by its JSON pointer (`/networks/0/subnet`) in one `AgentConfigError`;
 * the agent never starts half-configured. Secrets (keys, join token) are never echoed.
 *
 * A cluster file has `hosts: { NAME: { listen, advertise, vtep, signingKeyFile, … } }`, the host
 * fields of each host (the top level may hold defaults for them, e.g. `seeds`, `log`), and every
 * endpoint names its `host`. The agent takes the host `--host NAME` names, else the one named
 * like the machine (os.hostname()); every host's fields are checked, whichever is chosen.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { formatIpAddress, parseIpAddress } from '@overlay/dataplane';
import { checkNetworks, Problems, type HostView } from './config-net.js';
import { checkPolicies, checkServices } from './config-services.js';
import { schemaProblems } from './config-schema.js';
import { AgentConfigError, type AgentConfig, type PkiConfig, type StoreConfig } from './config-types.js';
import type { PresetName } from './presets.js';

export * from './config-types.js';
export { defaultResolver } from './config-net.js';
export { configSchema, schemaText, schemaProblems, FORMATS, LOG_LEVELS, CONFIG_VERSION, type ConfigProblem } from './config-schema.js';
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9464';

export interface ConfigOptions {
  /** Reads signingKeyFile (default: the file system). */
  readFile?: (p: string) => string;
  /** Cluster file: the host to configure (default: the machine's hostname). */
  host?: string;
}

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- the schema checked its shape
const HOST_FIELDS = ['listen', 'advertise', 'seeds', 'profile', 'vtep', 'vtepPort', 'signingKey', 'signingKeyFile', 'encryption', 'wireguard', 'controlSocket', 'dns', 'metrics', 'log', 'pki'];
const isWildcard = (a: string) => a === '0.0.0.0' || a === '::';

/** "ip:port", "[v6]:port", "ip" or "[v6]" (default port); the schema checked the syntax. */
export function parseHostPort(s: string, defPort = 7946): { ip: string; port: number } {
  const m = (/^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(s))!;
  const a = parseIpAddress(m[1]);
  return { ip: formatIpAddress(a.family, a.bytes), port: m[2] === undefined ? defPort : Number(m[2]) };
}

/** The host fields of `self` with the path each came from (cluster: hosts.NAME over the top level). */
function hostFieldsOf(d: Doc, self: string | undefined): { v: Doc; at: (k: string) => string } {
  if (self === undefined) return { v: d, at: (k) => `/${k}` };
  const h = (d.hosts[self] ?? {}) as Doc;
  const v: Doc = {};
  for (const k of HOST_FIELDS) v[k] = h[k] !== undefined ? h[k] : d[k];
  // A field the host sets, or one neither sets (it belongs to the host), is named under hosts.NAME.
  return { v, at: (k) => (h[k] === undefined && d[k] !== undefined ? `/${k}` : `/hosts/${self}/${k}`) };
}

/** The semantic checks of one host's own fields. */
function hostSettings(name: string, h: { v: Doc; at: (k: string) => string }, p: Problems, readFile: (p: string) => string) {
  const { v, at } = h;
  const listen = parseHostPort(v.listen ?? '0.0.0.0:7946');
  const advertise = v.advertise === undefined ? listen : parseHostPort(v.advertise, listen.port);
  if (isWildcard(advertise.ip)) p.add(at('advertise'), v.advertise === undefined ? 'required when listen is a wildcard address' : 'must be an address peers can dial, not a wildcard');
  const vtep = v.vtep === undefined ? advertise.ip : formatIpAddress(parseIpAddress(v.vtep).family, parseIpAddress(v.vtep).bytes);
  if (v.vtep !== undefined && isWildcard(vtep)) p.add(at('vtep'), 'must be an address peers can send VXLAN to, not a wildcard');
  let signingKey: Uint8Array = new Uint8Array(64);
  if (v.signingKey !== undefined && v.signingKeyFile !== undefined) p.add(at('signingKeyFile'), 'give signingKey or signingKeyFile, not both');
  else if (v.signingKey !== undefined) signingKey = Buffer.from(v.signingKey, 'base64');
  else if (v.signingKeyFile !== undefined) {
    let text: string | undefined;
    try {
      text = readFile(v.signingKeyFile).trim();
    } catch {
      p.add(at('signingKeyFile'), 'cannot be read');
    }
    if (text !== undefined) {
      const b = Buffer.from(text, 'base64');
      if (b.length !== 64 || b.toString('base64') !== text.replace(/\s/g, '')) p.add(at('signingKeyFile'), 'must hold base64 of 64 bytes');
      else signingKey = b;
    }
  } else if (v.pki === undefined) p.add(at('signingKey'), 'required (or signingKeyFile, or pki): run `agent keygen`');
  if (v.pki !== undefined && (v.signingKey !== undefined || v.signingKeyFile !== undefined)) p.add(at('pki'), 'pki.key is this node\'s signing key: remove signingKey/signingKeyFile');
  if (v.pki !== undefined && v.wireguard === undefined) p.add(at('pki'), 'needs wireguard: a certificate admits the WireGuard key the tunnel uses');
  if (v.pki !== undefined && (v.pki.joinToken === undefined) !== (v.pki.joinServer === undefined)) p.add(`${at('pki')}/${v.pki.joinToken === undefined ? 'joinToken' : 'joinServer'}`, 'joinToken and joinServer go together');
  const enc = (v.encryption ?? {}) as Doc;
  const insecure = enc.insecure ?? false;
  const clusterKeys = (enc.clusterKeys ?? []) as string[];
  // With pki, gossip without cluster keys is sealed with keys derived from the trusted CAs (pki-run.ts).
  if (clusterKeys.length === 0 && !insecure && v.pki === undefined) p.add(`${at('encryption')}/clusterKeys`, 'at least one cluster key is required (or pki, or encryption.insecure: true for tests)');
  if (clusterKeys.length > 0 && insecure) p.add(`${at('encryption')}/insecure`, 'cannot be true with clusterKeys: choose one');
  const dns = v.dns === undefined ? undefined : { listen: parseHostPort(v.dns.listen ?? '127.0.0.11:53', 53), forward: v.dns.forward ?? true };
  const metrics = v.metrics === undefined ? undefined : { listen: parseHostPort(v.metrics.listen ?? DEFAULT_METRICS_LISTEN, 9464) };
  return {
    listen, advertise, vtep, signingKey, clusterKeys, insecure, dns, metrics,
    seeds: ((v.seeds ?? []) as string[]).map((s) => parseHostPort(s)),
    profile: (v.profile ?? 'lan') as PresetName,
    vtepPort: (v.vtepPort ?? 4789) as number,
    wireguard: v.wireguard === undefined ? undefined : { privateKey: v.wireguard.privateKey as string },
    controlSocket: (v.controlSocket ?? `/run/overlay-agent-${name}.sock`) as string,
    log: { level: v.log?.level ?? 'info', format: v.log?.format },
    pki: v.pki === undefined ? undefined : ({ ca: v.pki.ca, cert: v.pki.cert, key: v.pki.key, joinToken: v.pki.joinToken, joinServer: v.pki.joinServer === undefined ? undefined : parseHostPort(v.pki.joinServer, 7950), prefixes: v.pki.prefixes ?? [] } satisfies PkiConfig),
  };
}

function storeOf(s: Doc | undefined, p: Problems): StoreConfig {
  if (s === undefined || s.kind === 'gossip') {
    if (s?.endpoints !== undefined) p.add('/store/endpoints', 'only with kind: etcd');
    if (s?.prefix !== undefined) p.add('/store/prefix', 'only with kind: etcd');
    return { kind: 'gossip' };
  }
  if (s.endpoints === undefined) p.add('/store/endpoints', 'required with kind: etcd');
  return { kind: 'etcd', endpoints: s.endpoints ?? [], prefix: s.prefix ?? '/overlay/' };
}

/** Validate a parsed YAML document. Throws one AgentConfigError listing every problem. */
export function validateConfig(doc: unknown, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8'), opts: ConfigOptions = {}): AgentConfig {
  const shape = schemaProblems(doc);
  if (shape.length) throw AgentConfigError.of(shape);
  const d = doc as Doc;
  const cluster = d.hosts !== undefined;
  const hosts = cluster ? Object.keys(d.hosts) : [];
  const p = new Problems();
  let self: string;
  if (cluster) {
    if (d.name !== undefined) p.add('/name', 'a cluster file names its hosts under hosts: (choose one with --host)');
    const want = opts.host ?? hostname();
    if (!hosts.includes(want)) throw new AgentConfigError('--host', `no host ${JSON.stringify(want)} in hosts (${hosts.join(', ')})${opts.host === undefined ? ': give --host NAME' : ''}`);
    self = want;
  } else {
    if (d.name === undefined) throw new AgentConfigError('/name', 'required');
    if (opts.host !== undefined && opts.host !== d.name) throw new AgentConfigError('--host', `this file is ${d.name}'s, not ${opts.host}'s`);
    self = d.name;
  }
  // Every host's own fields are checked (a cluster file is right for all or for none).
  let mine: ReturnType<typeof hostSettings> | undefined;
  for (const h of cluster ? hosts : [self]) {
    const s = hostSettings(h, hostFieldsOf(d, cluster ? h : undefined), p, readFile);
    if (h === self) mine = s;
  }
  const view: HostView = { self, cluster, hosts, wireguard: mine!.wireguard !== undefined };
  const networks = checkNetworks(d.networks ?? [], view, p);
  const services = checkServices(d.services ?? [], networks, view, p);
  const policies = checkPolicies(d.policies ?? [], networks, p);
  const store = storeOf(d.store, p);
  if (p.list.length) throw AgentConfigError.of(p.list);
  return { version: 1, name: self, cluster, ...mine!, networks, services, policies, store };
}

/** Parse YAML text and validate it; `(yaml)` names a syntax error (first line of the parser's message). */
export function parseConfig(text: string, readFile?: (p: string) => string, opts: ConfigOptions = {}): AgentConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new AgentConfigError('(yaml)', (e as Error).message.split('\n')[0]);
  }
  return validateConfig(doc, readFile ?? opts.readFile, opts);
}

/** Read and validate a YAML config file. Opens no device or socket. */
export function loadConfig(path: string, opts: ConfigOptions = {}): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AgentConfigError('--config', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parseConfig(text, undefined, opts);
}

/**
 * The hosts `agent check` validates a file for: `host` when given; every host of a cluster file
 * when this machine is none of them; else one (this machine, or a per-host file's own name).
 */
export function hostsToCheck(path: string, host?: string): (string | undefined)[] {
  if (host !== undefined) return [host];
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch {
    return [undefined]; // loadConfig reports it
  }
  const hosts = (doc as Doc | null)?.hosts;
  if (hosts === null || typeof hosts !== 'object' || Array.isArray(hosts) || Object.hasOwn(hosts, hostname())) return [undefined];
  const names = Object.keys(hosts);
  return names.length ? names : [undefined];
}

/** One line saying what a valid config will run (for `agent check`); no secrets. */
export function summarizeConfig(c: AgentConfig): string {
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const hp = (a: { ip: string; port: number }) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`);
  const nets = c.networks.map((n) => `${n.name}/${n.vni}${n.device ? ` on ${n.device}` : ''} ${plural(n.endpoints.length, 'endpoint')}${n.resolver && (c.services.length || c.dns) ? `, resolver ${n.resolver}` : ''}`);
  const svcs = c.services.map((v) => `${v.name}@${v.network} ${plural(v.instances.length, 'instance')}`);
  const enc = c.insecure ? 'gossip UNENCRYPTED' : c.clusterKeys.length === 0 && c.pki ? 'gossip keys from the trusted CAs' : `${plural(c.clusterKeys.length, 'cluster key')}`;
  const pol = c.policies.length ? `, ${plural(c.policies.length, 'policy')}`.replace('policys', 'policies') : '';
  return `${c.name}: advertise ${hp(c.advertise)}, vtep ${hp({ ip: c.vtep, port: c.vtepPort })}, ${plural(c.seeds.length, 'seed')}, ${enc}, wireguard ${c.wireguard ? 'on' : 'off'}${c.pki ? ', pki on' : ''}, ${plural(c.networks.length, 'network')}${nets.length ? ` (${nets.join('; ')})` : ''}${svcs.length ? `, ${plural(svcs.length, 'service')} (${svcs.join('; ')})` : ''}${pol}`;
}
