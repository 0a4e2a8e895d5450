/**
 * Agent configuration: one YAML file, validated completely before anything starts. Every problem
 * is an `AgentConfigError` naming the field path (e.g. `networks[0].endpoints[1].mac`); the agent
 * never starts half-configured. Secrets (keys) are never echoed in errors.
 *
 * ```yaml
 * name: host-a
 * listen: 0.0.0.0:7946          # UDP gossip and TCP push-pull (default port 7946)
 * advertise: 198.18.0.1:7946    # what peers dial; default: listen (must then not be 0.0.0.0)
 * seeds: [198.18.0.1:7946]
 * profile: lan                  # lan | wan | local (presets.ts)
 * vtep: 198.18.0.1              # underlay VXLAN address; default advertise ip
 * vtepPort: 4789
 * signingKey: BASE64            # Ed25519 secret (64 bytes) from `agent keygen`; or signingKeyFile
 * encryption:
 *   clusterKeys: [BASE64]       # 32 bytes each, first is primary; or insecure: true (tests only)
 * wireguard: { privateKey: BASE64, port: 51820 }   # optional: encrypted underlay
 * controlSocket: /run/overlay-agent.sock
 * networks:
 *   - name: blue
 *     vni: 100
 *     subnet: 198.19.0.0/24
 *     device: ov0                # TAP the dataplane attaches for this VNI (optional)
 *     endpoints:                 # an endpoint whose `device` is the TAP gets its MAC/IPs set on it
 *       - { id: a1, device: tap0, mac: "02:00:00:00:00:01", ipv4: 198.19.0.1, ipv6: "2001:db8::1" }
 * ```
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Address4, Address6 } from 'ip-address';
import { InvalidConfigError } from '@overlay/dataplane';
import { type PresetName, PRESETS } from './presets.js';
import { macFromString } from './program.js';

export class AgentConfigError extends InvalidConfigError {}

export interface EndpointConfig { id: string; device?: string; mac: Uint8Array; macText: string; ipv4?: Uint8Array; ipv4Text?: string; ipv6?: Uint8Array; ipv6Text?: string }
export interface NetworkConfig {
  name: string;
  vni: number;
  subnet?: string;
  /** TAP device attached to the dataplane for this network; without it the network is gossip-only. */
  device?: string;
  endpoints: EndpointConfig[];
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
  wireguard?: { privateKey: string; port: number };
  controlSocket: string;
  networks: NetworkConfig[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function fail(field: string, msg: string): never {
  throw new AgentConfigError(field, msg);
}
function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) fail(field, 'must be a non-empty string');
  return v;
}
function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer in ${min}..${max}`);
  return v;
}
function ip(v: unknown, field: string): string {
  const s = str(v, field);
  if (!Address4.isValid(s) && !Address6.isValid(s)) fail(field, `not an IPv4 or IPv6 address: ${JSON.stringify(s)}`);
  if (s.includes('/')) fail(field, 'must be an address, not a subnet');
  return s;
}
/** "ip:port", "[v6]:port" or bare ip (default port). */
export function parseHostPort(v: unknown, field: string, defPort = 7946): { ip: string; port: number } {
  const s = str(v, field);
  let host = s;
  let port = defPort;
  const m6 = /^\[(.+)\]:(\d+)$/.exec(s);
  if (m6) {
    host = m6[1];
    port = Number(m6[2]);
  } else if (/^[^:]+:\d+$/.test(s)) {
    const i = s.lastIndexOf(':');
    host = s.slice(0, i);
    port = Number(s.slice(i + 1));
  }
  return { ip: ip(host, field), port: int(port, field, 1, 65535) };
}
function key(v: unknown, field: string, bytes: number): Buffer {
  const s = str(v, field);
  const b = Buffer.from(s, 'base64');
  if (b.length !== bytes || b.toString('base64') !== s.replace(/\s/g, '')) fail(field, `must be base64 of ${bytes} bytes`);
  return b;
}

/** Validate a parsed YAML document. Throws AgentConfigError naming the first bad field. */
export function validateConfig(doc: unknown, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): AgentConfig {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) fail('(root)', 'must be a mapping');
  const d = doc as Record<string, unknown>;
  const known = new Set(['name', 'listen', 'advertise', 'seeds', 'profile', 'vtep', 'vtepPort', 'signingKey', 'signingKeyFile', 'encryption', 'wireguard', 'controlSocket', 'networks']);
  for (const k of Object.keys(d)) if (!known.has(k)) fail(k, 'unknown field');
  const name = str(d.name, 'name');
  if (!NAME_RE.test(name)) fail('name', 'letters, digits, . _ - only, at most 63 characters');
  const listen = parseHostPort(d.listen ?? '0.0.0.0:7946', 'listen');
  const advertise = d.advertise === undefined ? listen : parseHostPort(d.advertise, 'advertise', listen.port);
  if (advertise.ip === '0.0.0.0' || advertise.ip === '::') fail('advertise', 'required when listen is a wildcard address');
  if (d.seeds !== undefined && !Array.isArray(d.seeds)) fail('seeds', 'must be a list');
  const seeds = ((d.seeds as unknown[]) ?? []).map((s, i) => parseHostPort(s, `seeds[${i}]`));
  const profile = (d.profile ?? 'lan') as PresetName;
  if (!(profile in PRESETS)) fail('profile', `must be one of ${Object.keys(PRESETS).join(', ')}`);
  const vtep = d.vtep === undefined ? advertise.ip : ip(d.vtep, 'vtep');
  const vtepPort = d.vtepPort === undefined ? 4789 : int(d.vtepPort, 'vtepPort', 1, 65535);
  let signingKey: Buffer;
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
  const enc = (d.encryption ?? {}) as Record<string, unknown>;
  if (typeof enc !== 'object' || Array.isArray(enc)) fail('encryption', 'must be a mapping');
  const insecure = enc.insecure === true;
  if (enc.clusterKeys !== undefined && !Array.isArray(enc.clusterKeys)) fail('encryption.clusterKeys', 'must be a list');
  const clusterKeys = ((enc.clusterKeys as unknown[]) ?? []).map((k, i) => (key(k, `encryption.clusterKeys[${i}]`, 32), k as string));
  if (clusterKeys.length === 0 && !insecure) fail('encryption.clusterKeys', 'at least one cluster key is required (or encryption.insecure: true for tests)');
  let wireguard: AgentConfig['wireguard'];
  if (d.wireguard !== undefined) {
    const w = d.wireguard as Record<string, unknown>;
    key(w?.privateKey, 'wireguard.privateKey', 32);
    wireguard = { privateKey: w.privateKey as string, port: w.port === undefined ? 51820 : int(w.port, 'wireguard.port', 1, 65535) };
  }
  const controlSocket = d.controlSocket === undefined ? `/run/overlay-agent-${name}.sock` : str(d.controlSocket, 'controlSocket');
  if (d.networks !== undefined && !Array.isArray(d.networks)) fail('networks', 'must be a list');
  const names = new Set<string>();
  const vnis = new Set<number>();
  const networks = ((d.networks as unknown[]) ?? []).map((n, i): NetworkConfig => {
    const f = `networks[${i}]`;
    const r = (n ?? {}) as Record<string, unknown>;
    const nn = str(r.name, `${f}.name`);
    if (!NAME_RE.test(nn)) fail(`${f}.name`, 'letters, digits, . _ - only');
    if (names.has(nn)) fail(`${f}.name`, `duplicate network ${nn}`);
    names.add(nn);
    const vni = int(r.vni, `${f}.vni`, 0, (1 << 24) - 1);
    if (vnis.has(vni)) fail(`${f}.vni`, `duplicate VNI ${vni}`);
    vnis.add(vni);
    let subnet4: Address4 | undefined;
    let subnet6: Address6 | undefined;
    if (r.subnet !== undefined) {
      const s = str(r.subnet, `${f}.subnet`);
      if (Address4.isValid(s) && s.includes('/')) subnet4 = new Address4(s);
      else if (Address6.isValid(s) && s.includes('/')) subnet6 = new Address6(s);
      else fail(`${f}.subnet`, `not a subnet in CIDR form: ${JSON.stringify(s)}`);
    }
    if (r.endpoints !== undefined && !Array.isArray(r.endpoints)) fail(`${f}.endpoints`, 'must be a list');
    const ids = new Set<string>();
    const endpoints = ((r.endpoints as unknown[]) ?? []).map((e, j): EndpointConfig => {
      const g = `${f}.endpoints[${j}]`;
      const x = (e ?? {}) as Record<string, unknown>;
      const id = str(x.id, `${g}.id`);
      if (!NAME_RE.test(id)) fail(`${g}.id`, 'letters, digits, . _ - only');
      if (ids.has(id)) fail(`${g}.id`, `duplicate endpoint id ${id}`);
      ids.add(id);
      const macText = str(x.mac, `${g}.mac`).toLowerCase();
      const mac = macFromString(macText);
      if (!mac) fail(`${g}.mac`, `not a MAC address aa:bb:cc:dd:ee:ff: ${JSON.stringify(x.mac)}`);
      if (mac[0] & 1) fail(`${g}.mac`, 'must be unicast');
      const out: EndpointConfig = { id, mac, macText, device: x.device === undefined ? undefined : str(x.device, `${g}.device`) };
      if (out.device && out.device.length > 15) fail(`${g}.device`, 'interface names are at most 15 characters');
      if (x.ipv4 !== undefined) {
        const s = str(x.ipv4, `${g}.ipv4`);
        if (!Address4.isValid(s) || s.includes('/')) fail(`${g}.ipv4`, `not an IPv4 address: ${JSON.stringify(s)}`);
        const a = new Address4(s);
        if (subnet4 && !a.isInSubnet(subnet4)) fail(`${g}.ipv4`, `${s} is outside the network subnet ${r.subnet}`);
        out.ipv4 = Uint8Array.from(a.toArray());
        out.ipv4Text = a.correctForm();
      }
      if (x.ipv6 !== undefined) {
        const s = str(x.ipv6, `${g}.ipv6`);
        if (!Address6.isValid(s) || s.includes('/')) fail(`${g}.ipv6`, `not an IPv6 address: ${JSON.stringify(s)}`);
        const a = new Address6(s);
        if (subnet6 && !a.isInSubnet(subnet6)) fail(`${g}.ipv6`, `${s} is outside the network subnet ${r.subnet}`);
        out.ipv6 = Uint8Array.from(Buffer.from(a.canonicalForm().replace(/:/g, ''), 'hex'));
        out.ipv6Text = a.correctForm();
      }
      return out;
    });
    const device = r.device === undefined ? undefined : str(r.device, `${f}.device`);
    if (device && Buffer.byteLength(device) > 15) fail(`${f}.device`, 'interface names are at most 15 characters');
    endpoints.forEach((e, j) => {
      if (e.device && e.device !== device) fail(`${f}.endpoints[${j}].device`, `must be the network's device (${device ?? 'none'})`);
    });
    return { name: nn, vni, subnet: r.subnet as string | undefined, device, endpoints };
  });
  return { name, listen, advertise, seeds, profile, vtep, vtepPort, signingKey, clusterKeys, insecure, wireguard, controlSocket, networks };
}

/** Read and validate a YAML config file. */
export function loadConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AgentConfigError('--config', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new AgentConfigError('(yaml)', (e as Error).message.split('\n')[0]);
  }
  return validateConfig(doc);
}
