/**
 * The config file's JSON Schema (draft-07) and its checker (ajv 8, all errors at once).
 *
 * The schema is built here and published as packages/agent/schema/agent-config.schema.json
 * (`agent schema` prints it; a test checks the file is what this module builds). It checks shape
 * only: types, ranges, enums, unknown keys at every depth (`additionalProperties: false`) and the
 * address syntax through custom formats (`overlay-*`, below) that use the dataplane's parsers.
 * Relations between fields (containment, duplicates, references) are the semantic pass's
 * (config-net.ts, config-services.ts), which runs only on a document the schema accepted.
 *
 * Other validators that do not know the `overlay-*` formats ignore them (JSON Schema says unknown
 * formats pass); the loader always checks them.
 */
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseIpAddress, parseMac } from '@overlay/dataplane';
import { HEALTH_KINDS } from '@overlay/services';
import { PRESETS } from './presets.js';
import { MAX_SERVICE_PORTS, MAX_SERVICE_TTL, SERVICE_NAME_RE } from './services.js';

/** One problem of a config: a JSON pointer into the document (`/networks/0/subnet`) and what is wrong. */
export interface ConfigProblem { path: string; message: string }

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Linux interface names: at most 15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
export const IFNAME_RE = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,15}$/;
/** SRV service names (RFC 6335: at most 15). */
export const PORT_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?$/;
/** Learned FDB entries are swept once a second (dataplane core), so shorter ageing means nothing. */
export const MIN_AGEING_MS = 1000;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const CONFIG_VERSION = 1;

const isIp = (s: string, family?: 4 | 6): boolean => {
  try {
    const a = parseIpAddress(s);
    return family === undefined || a.family === family;
  } catch {
    return false;
  }
};
const b64 = (bytes: number) => (s: string) => {
  const b = Buffer.from(s, 'base64');
  return b.length === bytes && b.toString('base64') === s.replace(/\s/g, '');
};
/** The custom formats: name → check and the words an error uses. */
export const FORMATS: Record<string, { check: (s: string) => boolean; what: string }> = {
  'overlay-ip': { check: (s) => isIp(s), what: 'an IPv4 or IPv6 address (no prefix, no zone id)' },
  'overlay-ipv4': { check: (s) => isIp(s, 4), what: 'an IPv4 address' },
  'overlay-ipv6': { check: (s) => isIp(s, 6), what: 'an IPv6 address (no zone id)' },
  'overlay-cidr': {
    check: (s) => {
      const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
      if (!m || !isIp(m[1])) return false;
      return Number(m[2]) <= (m[1].includes(':') ? 128 : 32);
    },
    what: 'a subnet in CIDR form (address/prefix)',
  },
  'overlay-hostport': {
    check: (s) => {
      const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s) ?? /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(s);
      if (!m || !isIp(m[1], s.startsWith('[') ? 6 : 4)) return false;
      return m[2] === undefined || (Number(m[2]) >= 1 && Number(m[2]) <= 65535);
    },
    what: 'ip:port, [ipv6]:port, ip or [ipv6] (IPv6 in brackets)',
  },
  'overlay-mac': {
    check: (s) => {
      try {
        parseMac(s);
        return true;
      } catch {
        return false;
      }
    },
    what: 'a MAC address aa:bb:cc:dd:ee:ff',
  },
  'overlay-key32': { check: b64(32), what: 'base64 of 32 bytes' },
  'overlay-key64': { check: b64(64), what: 'base64 of 64 bytes' },
};

type Schema = Record<string, unknown>;
const obj = (properties: Record<string, Schema>, required: string[] = [], extra: Schema = {}): Schema => ({
  type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false, ...extra,
});
const str = (extra: Schema = {}): Schema => ({ type: 'string', minLength: 1, ...extra });
const fmt = (format: string, description?: string): Schema => ({ type: 'string', format, ...(description ? { description } : {}) });
const int = (minimum: number, maximum: number, description?: string): Schema => ({ type: 'integer', minimum, maximum, ...(description ? { description } : {}) });
const bool: Schema = { type: 'boolean' };
const list = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const ref = (name: string): Schema => ({ $ref: `#/definitions/${name}` });
const src = (re: RegExp) => re.source;

const duration: Schema = { type: ['string', 'number'], description: 'Compose duration ("2s", "1m30s", "250ms") or milliseconds' };

/** Fields a host sets for itself: at the top of a per-host file, or under hosts.NAME of a cluster file. */
function hostFields(): Record<string, Schema> {
  return {
    listen: fmt('overlay-hostport', 'gossip address (default 0.0.0.0:7946)'),
    advertise: fmt('overlay-hostport', 'address peers dial (default: listen)'),
    seeds: list(fmt('overlay-hostport')),
    profile: { enum: Object.keys(PRESETS) },
    vtep: fmt('overlay-ip', 'VXLAN source address (default: advertise)'),
    vtepPort: int(1, 65535),
    signingKey: fmt('overlay-key64', 'Ed25519 secret key (agent keygen)'),
    signingKeyFile: str({ description: 'file holding signingKey' }),
    encryption: obj({ clusterKeys: list(fmt('overlay-key32')), insecure: bool }),
    wireguard: obj({ privateKey: fmt('overlay-key32') }, ['privateKey']),
    controlSocket: str(),
    dns: obj({ listen: fmt('overlay-hostport'), forward: bool }),
    metrics: obj({ listen: fmt('overlay-hostport', 'default 127.0.0.1:9464') }),
    log: obj({ level: { enum: [...LOG_LEVELS] }, format: { enum: ['json', 'pretty'] } }),
    pki: ref('pki'),
  };
}

/** The whole schema (draft-07), as published. */
export function configSchema(): Schema {
  const endpoint = obj({
    id: str({ pattern: src(NAME_RE) }),
    host: str({ pattern: src(NAME_RE), description: 'cluster file: the host that owns this endpoint' }),
    device: str({ pattern: src(IFNAME_RE) }),
    mac: fmt('overlay-mac'),
    ipv4: fmt('overlay-ipv4'),
    ipv6: fmt('overlay-ipv6'),
    groups: list(str({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$' }), { description: 'policy groups of the endpoint\'s addresses' }),
  }, ['id', 'mac']);
  const network = obj({
    name: str({ pattern: src(NAME_RE) }),
    vni: int(0, 16777215),
    subnet: fmt('overlay-cidr'),
    device: str({ pattern: src(IFNAME_RE) }),
    encryption: { enum: ['wireguard', 'none'], description: 'must match the host: wireguard needs the host\'s wireguard key' },
    learning: bool,
    unknownUnicast: { enum: ['flood', 'drop'] },
    arpSuppression: bool,
    ageingMs: int(MIN_AGEING_MS, 2 ** 31 - 1),
    gbp: { ...bool, description: 'VXLAN Group Policy: send each packet\'s Group Policy ID (policies\' groupIds) and take received ones; every VTEP of the network must speak GBP' },
    endpoints: list(ref('endpoint')),
    resolver: fmt('overlay-ip'),
  }, ['name', 'vni']);
  const healthcheck = obj({
    kind: { enum: [...HEALTH_KINDS] },
    test: { type: ['array', 'string'] },
    argv: list({ type: 'string' }),
    env: { type: 'object', additionalProperties: { type: 'string' } },
    port: int(1, 65535),
    path: { type: 'string' },
    status: { type: ['integer', 'string', 'array'] },
    tls_skip_verify: bool,
    interval: duration, timeout: duration, start_period: duration, start_interval: duration, damp: duration,
    retries: { type: 'integer' }, fall: { type: 'integer' }, rise: { type: 'integer' },
    disable: bool,
  });
  const service = obj({
    name: str({ pattern: src(SERVICE_NAME_RE) }),
    network: str(),
    endpointMode: { enum: ['dnsrr', 'vip'] },
    vip: fmt('overlay-ip'),
    ttl: int(0, MAX_SERVICE_TTL),
    instances: list(obj({
      id: str({ pattern: src(SERVICE_NAME_RE) }),
      endpoint: str(),
      ports: list(obj({ port: int(1, 65535), proto: { enum: ['tcp', 'udp'] }, name: str({ pattern: src(PORT_NAME_RE) }) }, ['port']), { maxItems: MAX_SERVICE_PORTS }),
    }, ['id', 'endpoint'])),
    healthcheck,
  }, ['name', 'network']);
  const selector = obj({ groups: list(str(), { minItems: 1 }), cidrs: list(str(), { minItems: 1 }) });
  const rule = obj({
    id: str({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' }),
    action: { enum: ['allow', 'deny'] },
    from: selector, to: selector,
    proto: { enum: ['tcp', 'udp', 'icmp', 'icmpv6', 'any'] },
    ports: list({ type: 'string', pattern: '^[0-9]{1,5}(-[0-9]{1,5})?$' }, { minItems: 1 }),
    icmpTypes: list(int(0, 255), { minItems: 1 }),
    log: bool,
  }, ['id', 'action']);
  const policy = obj({
    network: str({ description: 'the network whose dataplane filters with this policy' }),
    defaultAction: { enum: ['allow', 'deny'] },
    tiers: obj({ admin: list(ref('rule')), network: list(ref('rule')), service: list(ref('rule')) }),
    groupIds: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$' },
      additionalProperties: int(1, 65535),
      description: 'VXLAN-GBP: the Group Policy ID of each group, the same on every host; an address sends the ID of its first group that has one',
    },
  }, ['network', 'defaultAction']);
  const pki = obj({
    ca: str({ description: 'trust file: one or two CA certificates (PEM; two during a CA rollover)' }),
    cert: str({ description: 'this node\'s certificate (PEM)' }),
    key: str({ description: 'this node\'s Ed25519 identity key (PEM seed): it signs the node\'s records' }),
    joinToken: str({ description: 'with joinServer: when cert is missing, obtain ca, cert and key at start (agent join)' }),
    joinServer: fmt('overlay-hostport', 'the signer answering joins (agent ca serve)'),
    prefixes: list(fmt('overlay-cidr'), { description: 'overlay prefixes asked for at join (the signer checks them)' }),
  }, ['ca', 'cert', 'key'], { description: 'admission by CA-signed node certificates (@overlay/pki, docs/pki.md)' });
  const store = obj({
    kind: { enum: ['gossip', 'etcd'] },
    endpoints: list(str(), { minItems: 1, description: 'etcd client URLs' }),
    prefix: str({ pattern: '^/' }),
  }, ['kind']);
  const host = hostFields();
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://overlay.invalid/schema/agent-config.schema.json',
    title: 'overlay agent configuration, version 1',
    description: 'One file for a host (name at the top) or a cluster (hosts: NAME → that host\'s fields; endpoints name their host).',
    ...obj({
      version: { const: CONFIG_VERSION },
      name: str({ pattern: src(NAME_RE) }),
      ...host,
      networks: list(ref('network')),
      services: list(ref('service')),
      policies: list(ref('policy')),
      store,
      hosts: { type: 'object', minProperties: 1, propertyNames: { pattern: src(NAME_RE) }, additionalProperties: obj(host) },
    }),
    definitions: { endpoint, network, service, rule, policy, pki },
  };
}

/** How long the compiled checker is kept after its last use. */
const KEEP_COMPILED_MS = 10_000;
let compiled: ValidateFunction | undefined;
let dropTimer: ReturnType<typeof setTimeout> | undefined;
/**
 * The compiled checker. ajv is loaded on first use and the compiled checker dropped 10 s after
 * the last (a running agent checks a config at start, apply and SIGHUP only): ~1.5 MiB of heap an
 * idle agent does not hold (docs/agent-memory.md).
 */
function validator(): ValidateFunction {
  clearTimeout(dropTimer);
  dropTimer = setTimeout(() => (compiled = undefined), KEEP_COMPILED_MS).unref();
  if (compiled) return compiled;
  const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
  for (const [name, f] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate: f.check });
  compiled = ajv.compile(configSchema());
  return compiled;
}

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

const TYPE_WORDS: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false' };
const PATTERN_WORDS: Record<string, string> = {
  [NAME_RE.source]: 'letters, digits, . _ - only, at most 63 characters',
  [SERVICE_NAME_RE.source]: 'a DNS label: lower-case letters, digits and -, at most 63 characters',
  [PORT_NAME_RE.source]: 'lower-case letters, digits and -, at most 15 characters (SRV _name._proto)',
  [IFNAME_RE.source]: 'not an interface name (at most 15 of A-Z a-z 0-9 . _ -)',
};
const esc = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

function problemOf(e: ErrorObject): ConfigProblem | undefined {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const k = String(p.additionalProperty);
      const known = Object.keys((e.parentSchema as { properties?: Record<string, unknown> }).properties ?? {});
      const near = known.filter((x) => distance(x.toLowerCase(), k.toLowerCase()) <= 2);
      const path = `${e.instancePath}/${esc(k)}`;
      if (path === '/wireguard/port' || /^\/hosts\/[^/]+\/wireguard\/port$/.test(path)) return { path, message: 'not used: the tunnel rides the VXLAN socket (vtepPort); remove it' };
      return { path, message: `unknown field${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}` };
    }
    case 'required':
      return { path: `${e.instancePath}/${esc(String(p.missingProperty))}`, message: 'required' };
    case 'format': {
      const f = FORMATS[String(p.format)];
      // Keys are never echoed.
      const shown = String(p.format).startsWith('overlay-key') ? '' : `: ${JSON.stringify(String(e.data).slice(0, 80))}`;
      return { path: e.instancePath, message: `not ${f?.what ?? p.format}${shown}` };
    }
    case 'enum': {
      const vs = (p.allowedValues as unknown[]).map((v) => `'${String(v)}'`);
      return { path: e.instancePath, message: `must be ${vs.length > 2 ? 'one of ' + vs.join(', ') : vs.join(' or ')}` };
    }
    case 'const':
      return { path: e.instancePath, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'minimum':
    case 'maximum': {
      const s = e.parentSchema as { minimum?: number; maximum?: number };
      return { path: e.instancePath, message: `must be an integer in ${s.minimum}..${s.maximum}` };
    }
    case 'type':
      return { path: e.instancePath, message: `must be ${String(p.type).split(',').map((t) => TYPE_WORDS[t] ?? t).join(' or ')}` };
    case 'pattern':
      return { path: e.instancePath, message: PATTERN_WORDS[String(p.pattern)] ?? `does not match ${p.pattern}: ${JSON.stringify(String(e.data).slice(0, 80))}` };
    case 'minLength':
      return { path: e.instancePath, message: 'must be a non-empty string' };
    case 'if':
      return undefined;
    default:
      return { path: e.instancePath, message: e.message ?? e.keyword };
  }
}

/** Every shape problem of a parsed document (none: the semantic pass may read it as typed). */
export function schemaProblems(doc: unknown): ConfigProblem[] {
  const v = validator();
  if (v(doc)) return [];
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const e of v.errors ?? []) {
    const pr = problemOf(e);
    if (!pr) continue;
    const k = `${pr.path}\u0000${pr.message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(pr);
  }
  return out;
}

/** The published file's text (what `agent schema` prints). */
export function schemaText(): string {
  return JSON.stringify(configSchema(), null, 2) + '\n';
}
