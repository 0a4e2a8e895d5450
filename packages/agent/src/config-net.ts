/**
 * The semantic pass over `networks` (after the schema accepted the document): subnets without
 * host bits and not overlapping another network's on a host, endpoint addresses inside their
 * subnet, duplicate names/VNIs/devices/ids/MACs/addresses, the one endpoint per host that names
 * the TAP, the resolver, and which endpoints are this host's. Every problem is collected with its
 * JSON pointer; nothing stops at the first.
 *
 * Addresses are parsed by the dataplane's rules (`parseIpAddress`, `parseMac`); subnet math is
 * the `ip-address` package's, over addresses the dataplane's parser accepted.
 */
import { Address4, Address6 } from 'ip-address';
import { formatIpAddress, formatMac, parseIpAddress, parseMac, type IpBytes } from '@overlay/dataplane';
import type { ConfigProblem } from './config-schema.js';
import type { EndpointConfig, NetworkConfig } from './config-types.js';

/** Collects problems; `add` never throws. */
export class Problems {
  readonly list: ConfigProblem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
  /** Remember the first path of `key`; a second one is a duplicate. */
  unique<K>(m: Map<K, string>, k: K, path: string, what: string): void {
    const other = m.get(k);
    if (other !== undefined) this.add(path, `duplicate ${what} ${String(k)} (also ${other})`);
    else m.set(k, path);
  }
}

/** Who this host is and what the file is: the endpoints of `self` (or without `host` in a per-host file) are local. */
export interface HostView { self: string; cluster: boolean; hosts: readonly string[]; wireguard: boolean }

export interface Subnet { family: 4 | 6; prefix: number; text: string; cidr: Address4 | Address6 }
const toAddress = (a: IpBytes, prefix?: number): Address4 | Address6 => {
  const text = formatIpAddress(a.family, a.bytes) + (prefix === undefined ? '' : `/${prefix}`);
  return a.family === 4 ? new Address4(text) : new Address6(text);
};
/** A subnet the schema accepted (syntax); host bits set is a problem. */
export function subnetOf(s: string, path: string, p: Problems): Subnet | undefined {
  const [addr, len] = s.split('/');
  const a = parseIpAddress(addr);
  const prefix = Number(len);
  const cidr = toAddress(a, prefix);
  const start = cidr.startAddress();
  const text = `${formatIpAddress(a.family, parseIpAddress(start.correctForm()).bytes)}/${prefix}`;
  if (start.bigInt() !== cidr.bigInt()) {
    p.add(path, `${s} has host bits set (the network is ${text})`);
    return undefined;
  }
  return { family: a.family, prefix, text, cidr };
}
export function inside(a: IpBytes, net: Subnet): boolean {
  return a.family === net.family && toAddress(a).isInSubnet(net.cidr);
}
function overlaps(a: Subnet, b: Subnet): boolean {
  return a.family === b.family && (a.cidr.isInSubnet(b.cidr) || b.cidr.isInSubnet(a.cidr));
}
export const canonicalIp = (s: string): string => {
  const a = parseIpAddress(s);
  return formatIpAddress(a.family, a.bytes);
};

/**
 * The second-to-last address of a subnet in canonical CIDR form (the last is IPv4's broadcast);
 * none when the subnet has fewer than 4 addresses.
 */
export function defaultResolver(subnetText: string): string | undefined {
  const v6 = subnetText.includes(':');
  const cidr = v6 ? new Address6(subnetText) : new Address4(subnetText);
  if ((v6 ? 128 : 32) - cidr.subnetMask < 2) return undefined;
  const last = cidr.endAddress().bigInt() - 1n;
  return canonicalIp((v6 ? Address6.fromBigInt(last) : Address4.fromBigInt(last)).correctForm());
}

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- the schema checked its shape

function endpointOf(x: Doc, g: string, net: Subnet | undefined, device: string | undefined, view: HostView, p: Problems): EndpointConfig {
  const macText = formatMac(parseMac(x.mac));
  const mac = Uint8Array.from(macText.split(':'), (h) => parseInt(h, 16));
  if (mac[0] & 1) p.add(`${g}/mac`, 'must be unicast (lowest bit of the first byte clear)');
  if (mac.every((b) => b === 0)) p.add(`${g}/mac`, 'must not be all zeros');
  if (view.cluster && x.host === undefined) p.add(`${g}/host`, `required in a cluster file (one of ${view.hosts.join(', ')})`);
  else if (view.cluster && !view.hosts.includes(x.host)) p.add(`${g}/host`, `no host ${JSON.stringify(x.host)} in hosts (${view.hosts.join(', ')})`);
  else if (!view.cluster && x.host !== undefined && x.host !== view.self) p.add(`${g}/host`, `this file is ${view.self}'s; only its own endpoints belong here (or write a cluster file with hosts:)`);
  const out: EndpointConfig = { id: x.id, host: x.host, mac, macText, device: x.device, groups: x.groups ?? [] };
  if (out.device !== undefined && out.device !== device) p.add(`${g}/device`, `must be the network's device (${device ?? 'the network has none'}), or left out`);
  for (const family of [4, 6] as const) {
    const f = `ipv${family}` as const;
    if (x[f] === undefined) continue;
    const a = parseIpAddress(x[f]);
    if (net?.family === family && !inside(a, net)) p.add(`${g}/${f}`, `${x[f]} is outside the network's subnet ${net.text}`);
    out[f] = a.bytes;
    out[`${f}Text`] = formatIpAddress(family, a.bytes);
  }
  return out;
}

/** Every network of the document, checked; `endpoints` are this host's, `remote` the others'. */
export function checkNetworks(raw: Doc[], view: HostView, p: Problems): NetworkConfig[] {
  const names = new Map<string, string>();
  const vnis = new Map<number, string>();
  const devices = new Map<string, string>();
  const withDevice: { net: Subnet; path: string }[] = [];
  return raw.map((r, i) => {
    const f = `/networks/${i}`;
    p.unique(names, r.name, `${f}/name`, 'network');
    p.unique(vnis, r.vni, `${f}/vni`, 'VNI');
    if (r.device !== undefined) p.unique(devices, r.device, `${f}/device`, 'device');
    const net = r.subnet === undefined ? undefined : subnetOf(r.subnet, `${f}/subnet`, p);
    // Two TAPs of one host with overlapping subnets would fight over the kernel's routes.
    if (net && r.device !== undefined) {
      const clash = withDevice.find((o) => overlaps(o.net, net));
      if (clash) p.add(`${f}/subnet`, `${net.text} overlaps ${clash.net.text} (${clash.path}): both networks have a device on the host`);
      withDevice.push({ net, path: `${f}/subnet` });
    }
    const want = view.wireguard ? 'wireguard' : 'none';
    if (r.encryption !== undefined && r.encryption !== want) {
      p.add(`${f}/encryption`, want === 'none' ? 'wireguard needs the host\'s wireguard.privateKey' : 'the host\'s WireGuard tunnel carries every network: remove wireguard.privateKey or write encryption: wireguard');
    }
    const ids = new Map<string, string>();
    const macs = new Map<string, string>();
    const addrs = new Map<string, string>();
    const onTap = new Map<string, string>();
    const local: EndpointConfig[] = [];
    const remote: EndpointConfig[] = [];
    ((r.endpoints ?? []) as Doc[]).forEach((x, j) => {
      const g = `${f}/endpoints/${j}`;
      const ep = endpointOf(x, g, net, r.device, view, p);
      p.unique(ids, ep.id, `${g}/id`, 'endpoint id');
      // The endpoint naming the TAP is the TAP itself: its MAC becomes the TAP's, and a TAP has one (per host).
      if (ep.device !== undefined) {
        const owner = `${ep.host ?? view.self}`;
        const first = onTap.get(owner);
        if (first !== undefined) p.add(`${g}/device`, `only one endpoint of ${owner} may name ${ep.device} (already ${first}): its MAC becomes the TAP's, and a TAP has one`);
        else onTap.set(owner, g);
      }
      p.unique(macs, ep.macText, `${g}/mac`, 'MAC');
      if (ep.ipv4Text) p.unique(addrs, ep.ipv4Text, `${g}/ipv4`, 'address');
      if (ep.ipv6Text) p.unique(addrs, ep.ipv6Text, `${g}/ipv6`, 'address');
      ((ep.host ?? view.self) === view.self ? local : remote).push(ep);
    });
    let resolver: string | undefined;
    if (r.resolver !== undefined) {
      const a = parseIpAddress(r.resolver);
      if (net && net.family === a.family && !inside(a, net)) p.add(`${f}/resolver`, `${r.resolver} is outside the network's subnet ${net.text}`);
      resolver = formatIpAddress(a.family, a.bytes);
    } else if (net) resolver = defaultResolver(net.text);
    if (resolver !== undefined && addrs.has(resolver)) {
      p.add(`${f}/resolver`, `${resolver} is also the address of ${addrs.get(resolver)} (the resolver needs an address of its own${r.resolver === undefined ? '; the default is the subnet\'s second-to-last address: set resolver to another' : ''})`);
    }
    return {
      name: r.name, vni: r.vni, subnet: net?.text, device: r.device, encryption: want,
      learning: r.learning, unknownUnicast: r.unknownUnicast, arpSuppression: r.arpSuppression, ageingMs: r.ageingMs, gbp: r.gbp,
      endpoints: local, remote, resolver,
    };
  });
}
