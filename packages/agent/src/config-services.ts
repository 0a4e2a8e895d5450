/**
 * The semantic pass over `services` and `policies` (after the schema and the networks' pass):
 * references (network, endpoint), duplicates, VIPs inside their subnet, health specs (parsed by
 * @overlay/services), policies validated by @overlay/services' policy rules. Problems carry JSON
 * pointers into the document; all are collected.
 */
import { formatIpAddress, parseIpAddress, type IpBytes } from '@overlay/dataplane';
import { HealthSpecError, PolicyError, parseHealthSpec, validatePolicy, type HealthSpec, type Policy } from '@overlay/services';
import { Problems, inside, subnetOf, type HostView } from './config-net.js';
import type { NetworkConfig, PolicyConfig, ServiceConfig, ServiceInstanceConfig } from './config-types.js';
import { DEFAULT_SERVICE_TTL } from './services.js';

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- the schema checked its shape

/** `tiers.network[3].ports[0]` (the services packages' dotted paths) → `/tiers/network/3/ports/0`. */
export const dottedToPointer = (d: string): string => (d === '(root)' || d === '' ? '' : '/' + d.replace(/\[(\d+)\]/g, '.$1').split('.').join('/'));

export function checkServices(raw: Doc[], networks: NetworkConfig[], view: HostView, p: Problems): ServiceConfig[] {
  const services = new Map<string, string>();
  const instances = new Map<string, string>();
  const out: ServiceConfig[] = [];
  raw.forEach((r, i) => {
    const f = `/services/${i}`;
    const net = networks.find((n) => n.name === r.network);
    if (!net) {
      p.add(`${f}/network`, `no network ${JSON.stringify(r.network)} in networks`);
      return;
    }
    const firstSvc = services.get(`${r.network}/${r.name}`);
    if (firstSvc !== undefined) p.add(`${f}/name`, `duplicate service ${r.name} in network ${r.network} (also ${firstSvc})`);
    else services.set(`${r.network}/${r.name}`, `${f}/name`);
    const endpointMode = r.endpointMode ?? 'dnsrr';
    let vip: IpBytes | undefined;
    if (r.vip !== undefined) {
      vip = parseIpAddress(r.vip);
      const sub = net.subnet === undefined ? undefined : subnetOf(net.subnet, `${f}/vip`, p);
      if (sub && sub.family === vip.family && !inside(vip, sub)) p.add(`${f}/vip`, `${r.vip} is outside the network's subnet ${sub.text}`);
    }
    // Without one, every host allocates the same address from the subnet (services-vip.ts).
    if (endpointMode === 'vip' && !vip && !net.subnet) p.add(`${f}/vip`, "required with endpointMode 'vip' when the network has no subnet to allocate one from");
    let healthcheck: HealthSpec | undefined;
    if (r.healthcheck !== undefined) {
      try {
        healthcheck = parseHealthSpec(r.healthcheck);
      } catch (e) {
        if (!(e instanceof HealthSpecError)) throw e;
        p.add(`${f}/healthcheck${dottedToPointer(e.field)}`, e.message.replace(/^healthcheck\.[^:]*: /, ''));
      }
    }
    const mine: ServiceInstanceConfig[] = [];
    const remote: { id: string; endpoint: string }[] = [];
    ((r.instances ?? []) as Doc[]).forEach((x, j) => {
      const g = `${f}/instances/${j}`;
      const firstInst = instances.get(`${r.network}/${x.id}`);
      if (firstInst !== undefined) p.add(`${g}/id`, `duplicate instance id ${x.id} in network ${r.network} (also ${firstInst})`);
      else instances.set(`${r.network}/${x.id}`, `${g}/id`);
      const ep = net.endpoints.find((e) => e.id === x.endpoint) ?? net.remote.find((e) => e.id === x.endpoint);
      if (!ep) {
        p.add(`${g}/endpoint`, `no endpoint ${JSON.stringify(x.endpoint)} in network ${r.network}${view.cluster ? '' : ' on this host'}`);
        return;
      }
      if (!ep.ipv4 && !ep.ipv6) p.add(`${g}/endpoint`, `endpoint ${x.endpoint} has no address`);
      const ports = ((x.ports ?? []) as Doc[]).map((q) => ({ port: q.port as number, proto: (q.proto ?? 'tcp') as 'tcp' | 'udp', name: q.name as string | undefined }));
      const hc = healthcheck;
      if (hc && (hc.kind === 'tcp' || hc.kind === 'http' || hc.kind === 'https') && hc.port === undefined && ports.length === 0) {
        p.add(`${g}/ports`, `the ${hc.kind} health check probes the instance's first port (or healthcheck.port): give one`);
      }
      if ((ep.host ?? view.self) === view.self) mine.push({ id: x.id, endpoint: x.endpoint, ipv4: ep.ipv4, ipv6: ep.ipv6, ports });
      else remote.push({ id: x.id, endpoint: x.endpoint });
    });
    out.push({
      name: r.name, network: r.network, endpointMode, vip: vip?.bytes, vipText: vip && formatIpAddress(vip.family, vip.bytes),
      ttl: r.ttl ?? DEFAULT_SERVICE_TTL, instances: mine, remoteInstances: remote, healthcheck,
    });
  });
  return out;
}

/** One policy per network; rules validated by @overlay/services (the filter's own validation). */
export function checkPolicies(raw: Doc[], networks: NetworkConfig[], p: Problems): PolicyConfig[] {
  const seen = new Map<string, string>();
  const out: PolicyConfig[] = [];
  // Group Policy IDs are cluster-wide: one ID per group, one group per ID, in every policy.
  const idOfGroup = new Map<string, number>();
  const groupOfId = new Map<number, string>();
  raw.forEach((r, i) => {
    for (const [g, id] of Object.entries((r.groupIds ?? {}) as Record<string, number>)) {
      const f = `/policies/${i}/groupIds/${g}`;
      if (idOfGroup.has(g) && idOfGroup.get(g) !== id) p.add(f, `group ${g} has Group Policy ID ${idOfGroup.get(g)} in another policy`);
      else if (groupOfId.has(id) && groupOfId.get(id) !== g) p.add(f, `Group Policy ID ${id} is group ${groupOfId.get(id)}'s`);
      else {
        idOfGroup.set(g, id);
        groupOfId.set(id, g);
      }
    }
  });
  raw.forEach((r, i) => {
    const f = `/policies/${i}`;
    const net = networks.find((n) => n.name === r.network);
    if (!net) {
      p.add(`${f}/network`, `no network ${JSON.stringify(r.network)} in networks`);
      return;
    }
    p.unique(seen, r.network, `${f}/network`, 'policy for network');
    const policy: Policy = { defaultAction: r.defaultAction, tiers: r.tiers ?? {} };
    try {
      out.push({ network: net.name, vni: net.vni, policy, normal: validatePolicy(policy), groupIds: { ...(r.groupIds ?? {}) } });
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      p.add(`${f}${dottedToPointer(e.path)}`, e.message.slice(e.path.length + 2));
    }
  });
  return out;
}
