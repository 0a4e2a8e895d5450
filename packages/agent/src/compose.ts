/**
 * `agent import compose FILE`: a Compose/stack file's services, networks, healthchecks and
 * `deploy.endpoint_mode` as our config (version 1, one host). Everything else is reported, one
 * warning per ignored key, named by JSON pointer into the Compose file (`/services/db/volumes`).
 *
 * Mapping:
 * - each network → a network (VNI 100, 101, … in file order; `ipam.config[0].subnet` → subnet;
 *   TAP `ov-<name>`); services without `networks` are on Compose's `default` network;
 * - each service × each of its networks → a service; names become DNS labels (`_` → `-`);
 *   `deploy.replicas` (default 1) instances `<service>-<n>`, each behind an endpoint of its own
 *   (a locally administered MAC from the names; an address from the subnet: .10, .11, …);
 * - `ports`/`expose` → the instances' ports (the target port; a published host port is ignored);
 * - `healthcheck` → healthcheck (same field names); `CMD-SHELL`/string tests run as `sh -c`;
 * - `deploy.endpoint_mode` → endpointMode (Compose's default is vip; without an IPv4 subnet to
 *   allocate a VIP from, dnsrr and a warning).
 */
import { createHash } from 'node:crypto';
import { Address4 } from 'ip-address';
import { parse as parseYaml } from 'yaml';
import { AgentConfigError } from './config-types.js';

export interface ComposeWarning { path: string; message: string }
export interface ComposeImport { config: Record<string, unknown>; warnings: ComposeWarning[] }

type Doc = Record<string, unknown>;
const isMap = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);
const esc = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');
const label = (s: string) => s.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'x';

const SERVICE_KEYS = new Set(['networks', 'ports', 'expose', 'healthcheck', 'deploy']);
const DEPLOY_KEYS = new Set(['endpoint_mode', 'replicas']);
const NETWORK_KEYS = new Set(['ipam']);
const HEALTH_KEYS = new Set(['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable']);

function mac(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Target ports of a Compose `ports` entry ("8080:80", "80/udp", "127.0.0.1:8080:80", { target, published, protocol }). */
function portOf(v: unknown, path: string, warn: (p: string, m: string) => void): { port: number; proto: 'tcp' | 'udp' } | undefined {
  if (isMap(v)) {
    for (const k of Object.keys(v)) if (k !== 'target' && k !== 'protocol') warn(`${path}/${esc(k)}`, k === 'published' ? 'published host port ignored: the overlay reaches the target port directly' : 'ignored');
    const port = Number(v.target);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return warn(`${path}/target`, 'not a port: entry ignored'), undefined;
    return { port, proto: v.protocol === 'udp' ? 'udp' : 'tcp' };
  }
  const text = String(v);
  const m = /^(?:(?:[^:]*:)?(\d+(?:-\d+)?):)?(\d+)(?:\/(tcp|udp))?$/.exec(text);
  if (!m) return warn(path, `cannot read ${JSON.stringify(text)}: entry ignored`), undefined;
  if (m[1] !== undefined) warn(path, `published host port ${m[1]} ignored: the overlay reaches the target port ${m[2]} directly`);
  return { port: Number(m[2]), proto: m[3] === 'udp' ? 'udp' : 'tcp' };
}

function healthOf(h: Doc, path: string, warn: (p: string, m: string) => void): Doc {
  const out: Doc = {};
  for (const [k, v] of Object.entries(h)) {
    if (!HEALTH_KEYS.has(k)) {
      warn(`${path}/${esc(k)}`, 'ignored');
      continue;
    }
    if (k === 'test' && (typeof v === 'string' || (Array.isArray(v) && v[0] === 'CMD-SHELL'))) {
      const cmd = typeof v === 'string' ? v : (v as unknown[]).slice(1).join(' ');
      warn(`${path}/test`, 'shell form: run as ["CMD", "sh", "-c", …] (checks run without a shell otherwise)');
      out.test = ['CMD', 'sh', '-c', cmd];
    } else out[k] = v;
  }
  return out;
}

export function importCompose(text: string): ComposeImport {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new AgentConfigError('(yaml)', (e as Error).message.split('\n')[0]);
  }
  if (!isMap(doc) || !isMap(doc.services)) throw new AgentConfigError('/services', 'a Compose file needs a services mapping');
  const warnings: ComposeWarning[] = [];
  const warn = (path: string, message: string) => void warnings.push({ path, message });
  for (const k of Object.keys(doc)) if (k !== 'services' && k !== 'networks') warn(`/${esc(k)}`, 'ignored');
  // Networks, in file order; `default` when a service names none.
  const nets = new Map<string, { name: string; vni: number; subnet?: string; device: string; next: number; endpoints: Doc[] }>();
  const addNet = (name: string, spec: unknown, path: string) => {
    const n = { name: label(name), vni: 100 + nets.size, device: `ov-${label(name)}`.slice(0, 15), next: 10, endpoints: [] as Doc[], subnet: undefined as string | undefined };
    if (isMap(spec)) {
      for (const k of Object.keys(spec)) if (!NETWORK_KEYS.has(k)) warn(`${path}/${esc(k)}`, 'ignored');
      const ipam = spec.ipam;
      if (isMap(ipam)) {
        for (const k of Object.keys(ipam)) if (k !== 'config') warn(`${path}/ipam/${esc(k)}`, 'ignored');
        const cfgs = Array.isArray(ipam.config) ? ipam.config : [];
        cfgs.forEach((c, i) => {
          if (!isMap(c)) return;
          for (const k of Object.keys(c)) {
            if (k === 'subnet' && i === 0 && n.subnet === undefined && typeof c.subnet === 'string' && !c.subnet.includes(':')) n.subnet = c.subnet;
            else warn(`${path}/ipam/config/${i}/${esc(k)}`, k === 'subnet' ? 'only the first IPv4 subnet is used' : 'ignored');
          }
        });
      }
    }
    nets.set(name, n);
  };
  if (isMap(doc.networks)) for (const [name, spec] of Object.entries(doc.networks)) addNet(name, spec, `/networks/${esc(name)}`);
  const services: Doc[] = [];
  for (const [sname, raw] of Object.entries(doc.services)) {
    const sp = `/services/${esc(sname)}`;
    const s = isMap(raw) ? raw : {};
    for (const k of Object.keys(s)) if (!SERVICE_KEYS.has(k)) warn(`${sp}/${esc(k)}`, 'ignored');
    if (label(sname) !== sname) warn(sp, `service name ${JSON.stringify(sname)} becomes ${label(sname)} (a DNS label)`);
    const deploy = isMap(s.deploy) ? s.deploy : {};
    for (const k of Object.keys(deploy)) if (!DEPLOY_KEYS.has(k)) warn(`${sp}/deploy/${esc(k)}`, 'ignored');
    const replicas = Number.isInteger(deploy.replicas) && (deploy.replicas as number) >= 0 ? (deploy.replicas as number) : 1;
    const mode = deploy.endpoint_mode === 'dnsrr' ? 'dnsrr' : 'vip';
    if (deploy.endpoint_mode !== undefined && deploy.endpoint_mode !== 'dnsrr' && deploy.endpoint_mode !== 'vip') warn(`${sp}/deploy/endpoint_mode`, `unknown mode ${JSON.stringify(deploy.endpoint_mode)}: vip`);
    const ports: Doc[] = [];
    (Array.isArray(s.ports) ? s.ports : []).forEach((p, i) => {
      const q = portOf(p, `${sp}/ports/${i}`, warn);
      if (q && !ports.some((x) => x.port === q.port && x.proto === q.proto)) ports.push(q);
    });
    (Array.isArray(s.expose) ? s.expose : []).forEach((p, i) => {
      const q = portOf(String(p), `${sp}/expose/${i}`, warn);
      if (q && !ports.some((x) => x.port === q.port && x.proto === q.proto)) ports.push(q);
    });
    const health = isMap(s.healthcheck) ? healthOf(s.healthcheck, `${sp}/healthcheck`, warn) : undefined;
    const netNames = Array.isArray(s.networks) ? s.networks.map(String) : isMap(s.networks) ? Object.keys(s.networks) : ['default'];
    if (isMap(s.networks)) for (const [k, v] of Object.entries(s.networks)) if (isMap(v)) for (const kk of Object.keys(v)) warn(`${sp}/networks/${esc(k)}/${esc(kk)}`, 'ignored');
    for (const nn of netNames) {
      if (!nets.has(nn)) {
        if (nn !== 'default') warn(`${sp}/networks`, `network ${JSON.stringify(nn)} is not declared: added without a subnet`);
        addNet(nn, undefined, `/networks/${esc(nn)}`);
      }
      const net = nets.get(nn)!;
      let m = mode;
      if (m === 'vip' && !net.subnet) {
        warn(`${sp}/deploy/endpoint_mode`, `vip needs an IPv4 subnet on network ${net.name} to allocate the VIP from: dnsrr`);
        m = 'dnsrr';
      }
      const instances: Doc[] = [];
      for (let r = 1; r <= replicas; r++) {
        const id = label(`${sname}-${r}`);
        const ep: Doc = { id, mac: mac(`${net.name}/${id}`) };
        if (net.subnet) {
          const base = new Address4(net.subnet);
          const addr = Address4.fromBigInt(base.startAddress().bigInt() + BigInt(net.next++));
          if (addr.isInSubnet(base)) ep.ipv4 = addr.correctForm();
        }
        net.endpoints.push(ep);
        instances.push({ id, endpoint: id, ...(ports.length ? { ports } : {}) });
      }
      services.push({ name: label(sname), network: net.name, endpointMode: m, ...(health ? { healthcheck: health } : {}), instances });
    }
  }
  const networks = [...nets.values()].map((n) => ({ name: n.name, vni: n.vni, ...(n.subnet ? { subnet: n.subnet } : {}), device: n.device, endpoints: n.endpoints }));
  return { config: { version: 1, name: 'change-me', networks, services }, warnings };
}
