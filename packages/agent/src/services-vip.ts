/**
 * VIPs in the agent: every host attached to a network programs the VIP of each service in `vip`
 * mode on it into its dataplane (`ServiceVips` of @overlay/services), from the record view.
 *
 * - Which services: the instance with the smallest id decides a service's mode and declared VIP
 *   (instances of one service normally agree; the rule only makes disagreement deterministic).
 * - Backends: the instances with an address of the VIP's family whose owner's endpoint record (same network, id
 *   `endpoint`, same owner, not deleted) gives the MAC; `healthy` → healthy, `starting` and
 *   `unhealthy` → down. An instance the view drops while its owner is alive (tombstone) or has
 *   left gracefully stays `draining` for `drainMs` (its flows go on, no new ones); one dropped
 *   because its owner is dead is removed at once (its flows are reset). Ports: the union of the
 *   instances' ports (none: every port). This host's own instances are backends marked `local`
 *   (see `self`): the translator hairpins flows to them.
 * - The VIP address: the declared one (IPv4 or IPv6: the backends are then the instances' IPv6
 *   addresses), else allocated from the network's subnet (IPv4, or IPv6 with the instances'
 *   IPv6 addresses as backends): FNV-1a of the service name picks a start in the upper half of
 *   the host range (its last address excluded: IPv4's broadcast), probing upwards (wrapping) past
 *   every taken address of the subnet's family — the
 *   resolver, every endpoint and instance address in the view, every declared VIP, and the VIPs
 *   already allocated to services whose names sort before it. Gossip has no compare-and-set, so
 *   the rule is what makes hosts agree: from the same records every host computes the same
 *   addresses, and of two services that hash to one address the lexicographically smaller name
 *   gets it, the other takes the next free one. Two services declaring the same VIP: the smaller
 *   name gets it, the other gets none (`declared_conflicts`).
 * - When: every view change (record, health, owner membership) and every endpoint record change
 *   marks its network; the network is recomputed in a microtask (changes of one push-pull
 *   coalesce) and only VIPs whose spec changed are set again.
 *
 * Single-threaded; owned by the runner (services-run.ts).
 */
import { CounterSet, formatIpAddress, formatMac, parseIpAddress, readMac } from '@overlay/dataplane';
import type { VipBackend, VipSpec } from '@overlay/services';
import type { MemberState } from './membership.js';
import type { EndpointRecord } from './endpoints.js';
import type { ServiceInstance, ServiceSink, ServiceView } from './services.js';

/** What the sync needs of `ServiceVips` (which satisfies it). */
export interface VipControl {
  setVip(vni: number, spec: VipSpec): void;
  removeVip(vni: number, vip: string): void;
}

/** A network this host has a device for. */
export interface VipNetwork {
  name: string;
  vni: number;
  /** CIDR text, IPv4 or IPv6: undeclared VIPs are allocated from it. */
  subnet?: string;
  resolver?: string;
}

export interface ServiceVipSyncOptions {
  view: ServiceView;
  control: VipControl;
  networks: readonly VipNetwork[];
  /** The stored endpoint record (any owner), tombstones included: `Agent.endpoint`. */
  endpoint(network: string, id: string): EndpointRecord | undefined;
  /** Every endpoint record of a network (its addresses are taken for allocation). */
  endpoints(network: string): Iterable<EndpointRecord>;
  ownerState(owner: string): MemberState | undefined;
  /**
   * This node's name: its own instances are backends marked `local`. Their address is local to
   * this host, so the translator rewrites a local client's source to the VIP as well and hands
   * the frame back to the device; the backend's reply then comes back through the translator.
   */
  self?: string;
  /** How long a withdrawn instance stays draining (ms, default 10 000). */
  drainMs?: number;
  /** A service's VIP address changed (undefined: it has none now); the DNS follows it. */
  onAddress?(network: string, service: string, vip: string | undefined): void;
  log?(s: string): void;
}

/** What the sync did. Append-only. */
export const VIP_SYNC_EVENTS = ['recomputes', 'vips_set', 'vips_removed', 'set_errors', 'declared_conflicts', 'allocation_exhausted', 'backends_without_mac', 'drains_started', 'drains_ended'] as const;

/** One VIP as programmed, for status. */
export interface VipStatus {
  network: string;
  service: string;
  vip: string;
  allocated: boolean;
  ports: number[];
  backends: { id: string; owner: string; ip: string; mac: string; state: VipBackend['state']; local: boolean }[];
}

interface Installed {
  vni: number;
  status: VipStatus;
  text: string;
}

interface Draining {
  inst: ServiceInstance;
  timer: ReturnType<typeof setTimeout>;
}

/** FNV-1a (32 bit) of a string's UTF-16 code units. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * Allocate VIPs for `names` (any order) in `subnet` past the `taken` addresses (IPv4 as u32
 * numbers, IPv6 as bigints), by the rule in the file header. Returns name → address text; a name
 * is missing when the range is full. IPv4 prefixes up to /30, IPv6 up to /126.
 */
export function allocateVips(subnet: string, names: readonly string[], taken: ReadonlySet<number | bigint> = new Set()): Map<string, string> {
  const [addr, prefixText] = subnet.split('/');
  const prefix = Number(prefixText);
  const out = new Map<string, string>();
  const v6 = addr.includes(':');
  const bits = v6 ? 128 : 32;
  if (!(Number.isInteger(prefix) && prefix >= 0 && prefix <= bits - 2)) return out;
  const hostBits = BigInt(bits - prefix);
  let a: Uint8Array;
  try {
    a = parseIpAddress(addr).bytes;
  } catch {
    return out;
  }
  if (a.length !== bits / 8) return out;
  const base = (bigOf(a) >> hostBits) << hostBits;
  // The upper half of the host range without its last address (IPv4's broadcast); a /30 (/126) uses both middle addresses.
  const lo = hostBits >= 3n ? 1n << (hostBits - 1n) : 1n;
  const size = (1n << hostBits) - 1n - lo;
  const used = new Set<bigint>();
  for (const t of taken) used.add(BigInt(t));
  for (const name of [...names].sort()) {
    const start = BigInt(fnv1a(name)) % size;
    // Ends within |used| + 1 steps: every step past the first is a taken address.
    for (let k = 0n; k < size; k++) {
      const ip = base + lo + ((start + k) % size);
      if (used.has(ip)) continue;
      used.add(ip);
      out.set(name, formatIpAddress(v6 ? 6 : 4, bytesOf(ip, bits / 8)));
      break;
    }
  }
  return out;
}

/** The address bytes as an unsigned bigint. */
function bigOf(b: Uint8Array): bigint {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

function bytesOf(n: bigint, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--, n >>= 8n) b[i] = Number(n & 255n);
  return b;
}
const u32Of = (b: Uint8Array): number => ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;

export class ServiceVipSync {
  readonly counters = new CounterSet(VIP_SYNC_EVENTS, 'overlay.agent.vips');
  private readonly networks = new Map<string, VipNetwork>();
  /** network → service → installed VIP. */
  private readonly installed = new Map<string, Map<string, Installed>>();
  /** Instance key → instance kept draining. */
  private readonly draining = new Map<string, Draining>();
  private readonly dirty = new Set<string>();
  private scheduled = false;
  private closed = false;
  private readonly drainMs: number;

  constructor(private readonly o: ServiceVipSyncOptions) {
    for (const n of o.networks) this.networks.set(n.name, n);
    this.drainMs = o.drainMs ?? 10_000;
    o.view.attach(this.sink());
  }

  private sink(): ServiceSink {
    return {
      upsert: (i) => {
        const d = this.draining.get(i.key);
        if (d) {
          clearTimeout(d.timer);
          this.draining.delete(i.key);
        }
        this.mark(i.network);
      },
      remove: (i) => {
        if (!this.networks.has(i.network)) return;
        const st = this.o.ownerState(i.owner);
        // Withdrawn by its live owner (tombstone) or with a graceful leave: drain; dead: gone now.
        if (!this.closed && i.mode === 'vip' && i.health === 'healthy' && (st === 'alive' || st === 'left')) {
          const timer = setTimeout(() => {
            this.draining.delete(i.key);
            this.counters.add(this.counters.at.drains_ended);
            this.mark(i.network);
          }, this.drainMs);
          timer.unref?.();
          const old = this.draining.get(i.key);
          if (old) clearTimeout(old.timer);
          this.draining.set(i.key, { inst: i, timer });
          this.counters.add(this.counters.at.drains_started);
        }
        this.mark(i.network);
      },
    };
  }

  /** An endpoint record of `network` changed (a backend's MAC, or an address allocation skips). */
  endpointChanged(network: string): void {
    this.mark(network);
  }

  private mark(network: string): void {
    if (this.closed || !this.networks.has(network)) return;
    this.dirty.add(network);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Recompute the marked networks now. */
  flush(): void {
    this.scheduled = false;
    for (const n of [...this.dirty]) {
      this.dirty.delete(n);
      this.recompute(n);
    }
  }

  private recompute(network: string): void {
    const net = this.networks.get(network)!;
    this.counters.add(this.counters.at.recomputes);
    const view = this.o.view;
    // Every instance per service, the draining ones included.
    const groups = new Map<string, { inst: ServiceInstance; draining: boolean }[]>();
    for (const s of view.services(network)) groups.set(s, view.instances(network, s).map((inst) => ({ inst, draining: false })));
    for (const d of this.draining.values()) {
      if (d.inst.network !== network) continue;
      const g = groups.get(d.inst.service) ?? [];
      if (!g.some((x) => x.inst.key === d.inst.key)) g.push({ inst: d.inst, draining: true });
      groups.set(d.inst.service, g);
    }
    // A network with no vip-mode service and nothing installed costs no endpoint scan.
    const lead = (g: { inst: ServiceInstance }[]) => g.reduce((m, x) => (x.inst.id < m.inst.id ? x : m)).inst;
    if (!this.installed.has(network) && ![...groups.values()].some((g) => lead(g).mode === 'vip')) return;
    // Taken addresses of the subnet's family: IPv4 as u32, IPv6 as bigint (allocateVips).
    const six = net.subnet?.includes(':') === true;
    const taken = new Set<number | bigint>();
    const take = (b: Uint8Array | undefined) => {
      if (b?.length === (six ? 16 : 4)) taken.add(six ? bigOf(b) : u32Of(b));
    };
    if (net.resolver) take(parseIpAddress(net.resolver).bytes);
    for (const e of this.o.endpoints(network)) take(six ? e.data?.ipv6 : e.data?.ipv4);
    const declared = new Map<string, string>();
    const auto: string[] = [];
    const byVip = new Map<string, string>();
    for (const name of [...groups.keys()].sort()) {
      const g = groups.get(name)!.sort((a, b) => (a.inst.id < b.inst.id ? -1 : a.inst.id > b.inst.id ? 1 : 0));
      for (const x of g) take(six ? x.inst.ipv6 : x.inst.ipv4);
      const lead = g[0].inst;
      if (lead.mode !== 'vip') continue;
      if (lead.vip.length === 0) auto.push(name);
      else if (lead.vip.length === 4 || lead.vip.length === 16) {
        const text = formatIpAddress(lead.vip.length === 4 ? 4 : 6, lead.vip);
        take(lead.vip);
        if (byVip.has(text)) {
          this.counters.add(this.counters.at.declared_conflicts);
          continue;
        }
        byVip.set(text, name);
        declared.set(name, text);
      }
    }
    const allocated = net.subnet ? allocateVips(net.subnet, auto, taken) : new Map<string, string>();
    if (allocated.size < auto.length) this.counters.add(this.counters.at.allocation_exhausted);
    const want = new Map<string, VipStatus>();
    for (const [name, vip] of [...declared, ...allocated]) {
      const ports = new Set<number>();
      const backends: VipStatus['backends'] = [];
      const ips = new Set<string>();
      const v6 = vip.includes(':');
      for (const { inst, draining } of groups.get(name)!) {
        for (const p of inst.ports) ports.add(p.port);
        const addr = v6 ? inst.ipv6 : inst.ipv4;
        if (addr.length !== (v6 ? 16 : 4)) continue;
        const ip = formatIpAddress(v6 ? 6 : 4, addr);
        if (ips.has(ip)) continue;
        const ep = this.o.endpoint(network, inst.endpoint);
        if (!ep || ep.deleted || !ep.data || ep.owner !== inst.owner) {
          this.counters.add(this.counters.at.backends_without_mac);
          continue;
        }
        ips.add(ip);
        const state: VipBackend['state'] = draining ? 'draining' : inst.health === 'healthy' ? 'healthy' : 'down';
        backends.push({ id: inst.id, owner: inst.owner, ip, mac: formatMac(readMac(ep.data.mac, 0)), state, local: inst.owner === this.o.self });
      }
      want.set(name, { network, service: name, vip, allocated: allocated.has(name), ports: [...ports].sort((a, b) => a - b), backends });
    }
    this.apply(net, want);
  }

  private apply(net: VipNetwork, want: Map<string, VipStatus>): void {
    let cur = this.installed.get(net.name);
    if (!cur) this.installed.set(net.name, (cur = new Map()));
    for (const [name, old] of [...cur]) {
      const w = want.get(name);
      if (w && w.vip === old.status.vip) continue;
      this.remove(net, name, old);
    }
    for (const [name, w] of want) {
      const text = JSON.stringify(w);
      const old = cur.get(name);
      if (old?.text === text) continue;
      try {
        this.o.control.setVip(net.vni, { vip: w.vip, ports: w.ports, backends: w.backends.map((b) => ({ id: b.id, ip: b.ip, mac: b.mac, state: b.state, local: b.local })) });
      } catch (e) {
        this.counters.add(this.counters.at.set_errors);
        this.o.log?.(`vip ${w.vip} for ${name} in ${net.name} refused: ${(e as Error).message}`);
        if (old) this.remove(net, name, old);
        continue;
      }
      this.counters.add(this.counters.at.vips_set);
      cur.set(name, { vni: net.vni, status: w, text });
      if (!old) {
        this.o.log?.(`vip ${w.vip} for ${name} in ${net.name}${w.allocated ? ' (allocated)' : ''}`);
        this.o.onAddress?.(net.name, name, w.vip);
      }
    }
    if (cur.size === 0) this.installed.delete(net.name);
  }

  private remove(net: VipNetwork, name: string, old: Installed): void {
    this.installed.get(net.name)?.delete(name);
    try {
      this.o.control.removeVip(net.vni, old.status.vip);
    } catch {
      this.counters.add(this.counters.at.set_errors);
    }
    this.counters.add(this.counters.at.vips_removed);
    this.o.onAddress?.(net.name, name, undefined);
  }

  /** The VIP of a service now (after the last recompute). */
  address(network: string, service: string): string | undefined {
    return this.installed.get(network)?.get(service)?.status.vip;
  }

  /** Every programmed VIP with its backends. */
  list(): VipStatus[] {
    return [...this.installed.values()].flatMap((m) => [...m.values()].map((i) => i.status));
  }

  /** Remove every VIP and stop reacting. */
  close(): void {
    this.closed = true;
    for (const d of this.draining.values()) clearTimeout(d.timer);
    this.draining.clear();
    for (const [name, m] of [...this.installed]) {
      const net = this.networks.get(name)!;
      for (const [svc, inst] of [...m]) this.remove(net, svc, inst);
    }
  }
}
