/**
 * The service table the embedded DNS answers from: services per network, their instances
 * (addresses, ports, health) and, derived from them, an index of every DNS name a network
 * answers with the pre-encoded answer records per query type.
 *
 * Names per service `svc` of a network (all lowercase; a query matches case-insensitively):
 *   svc              A/AAAA: the VIP of that family in 'vip' mode, else the healthy instances
 *                    (panic mode: all of them when fewer than half are healthy); SRV: one per port
 *                    of those instances, target `<id>.tasks.svc`
 *   tasks.svc        the healthy instances (same panic rule), A/AAAA/SRV
 *   all.tasks.svc    every instance, ready or not (so peers can bootstrap), A/AAAA/SRV
 *   <id>.tasks.svc   that instance, A/AAAA/SRV
 *   _<port>._<proto>.svc   SRV of the named port of the selected instances
 *   reverse names    PTR: an instance address → `<id>.tasks.svc`, a VIP → `svc`
 * A name that exists with no record of the asked type is NODATA (NOERROR, no answer).
 *
 * Changes mark the service dirty; a network's name index is brought up to date on its next
 * lookup, and a name's encoded answers are rebuilt on the first query after a change. So loading
 * 10 000 instances costs one pass, and a query costs a hash lookup and a copy.
 *
 * Names of one instance each (`<id>.tasks.svc` and the reverse names of instance addresses and
 * VIPs) are not indexed ahead: a lookup that misses the index and has their shape is answered
 * from the service's instances (by id) or the network's address map, and the entry it builds
 * stays in the index until a service it names changes (or another takes its address). So an
 * agent pays for the names asked (at most what indexing all of them cost) instead of two names
 * per instance known: ~350 bytes each with their key text, where the address map costs ~30.
 */
import type { CounterSet } from '@overlay/dataplane';
import { selectForAnswer } from './health/select.js';
import type { HealthCounter } from './health/counters.js';
import { EMPTY, encodeAnswers, type EncodedAnswers } from './directory-answers.js';
import { type Instance, NameEntry, NetworkIndex, type Ref, type Service, dropLazy, find, isInstance, keyOf, listEntry, mapAddress, unlist, unmapAddress } from './directory-index.js';
import { hex, lazyShape, reverseAddress, reverseName } from './directory-names.js';
import { InvalidServiceError, type PortProto, type ServiceDirectoryOptions, type ServiceInstance, type ServicePort, type ServiceSpec, DEFAULT_TTL, UnknownServiceError, checkLabel, checkTtl, parseAddress, u32 } from './directory-spec.js';
import { TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, sameName, textNameHash, type Question } from './dns/wire.js';

export { reverseName, NameEntry, type EncodedAnswers };
export { DEFAULT_TTL, MAX_TTL, InvalidServiceError, UnknownServiceError, type EndpointMode, type PortProto, type ServiceDirectoryOptions, type ServiceInstance, type ServicePort, type ServiceSpec } from './directory-spec.js';

/** Shared empty lists of instances without addresses of a family or without ports (read-only). */
const NONE4: number[] = [];
const NONE6: Uint8Array[] = [];
const NO_PORTS: ServicePort[] = [];

export type DirectoryListener = (network: string, service: string) => void;

export class ServiceDirectory {
  readonly defaultTtl: number;
  private readonly networks = new Map<string, NetworkIndex>();
  private readonly listeners = new Set<DirectoryListener>();
  private readonly portLists = new Map<string, ServicePort[]>();
  private readonly healthCounters: CounterSet<HealthCounter> | undefined;

  constructor(o: ServiceDirectoryOptions = {}) {
    this.defaultTtl = checkTtl('ttl', o.ttl ?? DEFAULT_TTL);
    this.healthCounters = o.healthCounters;
  }

  /** Add or replace a service's definition (its instances are kept when it exists). */
  setService(spec: ServiceSpec): void {
    if (spec === null || typeof spec !== 'object') throw new InvalidServiceError('service', 'must be an object');
    checkLabel('name', spec.name);
    if (typeof spec.network !== 'string' || spec.network === '') throw new InvalidServiceError('network', 'must be a non-empty string');
    const ttl = checkTtl('ttl', spec.ttl ?? this.defaultTtl);
    let vip4: number | undefined;
    let vip6: Uint8Array | undefined;
    for (const [i, v] of (spec.vip ?? []).entries()) {
      const ip = parseAddress(`vip[${i}]`, v);
      if (ip.length === 4) {
        if (vip4 !== undefined) throw new InvalidServiceError(`vip[${i}]`, 'at most one IPv4 VIP');
        vip4 = u32(ip);
      } else {
        if (vip6) throw new InvalidServiceError(`vip[${i}]`, 'at most one IPv6 VIP');
        vip6 = ip;
      }
    }
    const mode = spec.endpointMode ?? (vip4 !== undefined || vip6 ? 'vip' : 'dnsrr');
    if (mode !== 'vip' && mode !== 'dnsrr') throw new InvalidServiceError('endpointMode', `must be 'vip' or 'dnsrr', not ${JSON.stringify(mode)}`);
    if (mode === 'vip' && vip4 === undefined && !vip6) throw new InvalidServiceError('vip', "endpointMode 'vip' needs a VIP");
    const net = this.network(spec.network, true)!;
    const key = spec.name.toLowerCase();
    const old = net.services.get(key);
    const svc: Service = { name: key, network: spec.network, vip4, vip6, mode, ttl, instances: old?.instances ?? new Map(), names: old?.names ?? [], mapped: [], removed: false };
    if (old) old.removed = true;
    if (old) net.dirty.delete(old);
    // The old object's names are removed when the new one is indexed.
    net.services.set(key, svc);
    this.touch(net, svc, old);
  }

  removeService(network: string, name: string): boolean {
    const net = this.network(network, false);
    const svc = net?.services.get(String(name).toLowerCase());
    if (!net || !svc) return false;
    net.services.delete(svc.name);
    svc.removed = true;
    this.touch(net, svc);
    return true;
  }

  /** Add or replace an instance of a service. */
  updateInstance(network: string, service: string, inst: ServiceInstance): void {
    const svc = this.service(network, service);
    if (inst === null || typeof inst !== 'object') throw new InvalidServiceError('instance', 'must be an object');
    checkLabel('id', inst.id);
    if (!Array.isArray(inst.addresses)) throw new InvalidServiceError('addresses', 'must be an array');
    const parsed = inst.addresses.map((a, i) => parseAddress(`addresses[${i}]`, a));
    // Arrays sized by map/filter, not grown by push (which keeps room for 17 elements each).
    const v4 = parsed.some((ip) => ip.length === 4) ? parsed.filter((ip) => ip.length === 4).map(u32) : NONE4;
    const v6 = parsed.some((ip) => ip.length !== 4) ? parsed.filter((ip) => ip.length !== 4) : NONE6;
    const ports: ServicePort[] = (inst.ports ?? []).map((p, i) => {
      if (!Number.isInteger(p?.port) || p.port < 1 || p.port > 65535) throw new InvalidServiceError(`ports[${i}].port`, 'must be an integer 1..65535');
      if (p.proto !== 'tcp' && p.proto !== 'udp') throw new InvalidServiceError(`ports[${i}].proto`, "must be 'tcp' or 'udp'");
      if (p.name !== undefined) checkLabel(`ports[${i}].name`, p.name);
      return { name: p.name?.toLowerCase(), port: p.port, proto: p.proto };
    });
    if (typeof inst.healthy !== 'boolean') throw new InvalidServiceError('healthy', 'must be a boolean');
    const id = inst.id.toLowerCase();
    svc.instances.set(id, { id, svc: svc.name, v4, v6, ports: this.sharedPorts(ports), healthy: inst.healthy });
    this.touch(this.network(network, false)!, svc);
  }

  /** Change only the health of an instance. Returns false when it is unknown. */
  setHealthy(network: string, service: string, id: string, healthy: boolean): boolean {
    const svc = this.service(network, service);
    const inst = svc.instances.get(id.toLowerCase());
    if (!inst) return false;
    if (inst.healthy === healthy) return true;
    inst.healthy = healthy;
    this.touch(this.network(network, false)!, svc);
    return true;
  }

  removeInstance(network: string, service: string, id: string): boolean {
    const svc = this.service(network, service);
    if (!svc.instances.delete(String(id).toLowerCase())) return false;
    this.touch(this.network(network, false)!, svc);
    return true;
  }

  /** Called after every change (service and network named). A throwing listener is ignored. */
  onChange(listener: DirectoryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Services of a network (names). */
  serviceNames(network: string): string[] {
    return [...(this.network(network, false)?.services.keys() ?? [])];
  }

  instanceCount(network: string, service: string): number {
    return this.network(network, false)?.services.get(service.toLowerCase())?.instances.size ?? 0;
  }

  /** The entry for a parsed question's name in a network, or undefined. Allocates nothing on a hit after the first. */
  lookup(network: string, q: Question): NameEntry | undefined {
    const net = this.networks.get(network);
    if (net === undefined) return undefined;
    if (net.dirty.size > 0) this.flush(net);
    const b = net.byHash.get(q.hash);
    if (b instanceof NameEntry) {
      if (sameName(b.key, q)) return b;
    } else if (b !== undefined) for (let i = 0; i < b.length; i++) if (sameName(b[i].key, q)) return b[i];
    return lazyShape(q.name, q.nameLength) ? this.lazyEntry(net, q.nameText()) : undefined;
  }

  /** The entry for a name given as text (tests, tools). */
  lookupText(network: string, name: string): NameEntry | undefined {
    const net = this.networks.get(network);
    if (net === undefined) return undefined;
    if (net.dirty.size > 0) this.flush(net);
    const key = keyOf(name);
    return find(net, key) ?? this.lazyEntry(net, key);
  }

  /**
   * The entry of an instance name or an address's reverse name (`key`, not in the index), built
   * from the instances and kept in the index until the network changes; undefined when nothing
   * has that name.
   */
  private lazyEntry(net: NetworkIndex, key: string): NameEntry | undefined {
    let refs: Ref | Ref[] | undefined;
    const dot = key.indexOf('.');
    if (dot > 0 && key.startsWith('.tasks.', dot) && key.indexOf('.', dot + 7) < 0) {
      const svc = net.services.get(key.slice(dot + 7));
      const inst = svc?.instances.get(key.slice(0, dot));
      if (svc !== undefined && inst !== undefined) refs = { kind: 'inst', service: svc, instance: inst };
    } else {
      const addr = reverseAddress(key);
      const h = addr === undefined ? undefined : net.byAddr.get(addr);
      if (h !== undefined) {
        const list = (Array.isArray(h) ? h : [h]).map((x): Ref | undefined => {
          if (!isInstance(x)) return { kind: 'ptr', service: x };
          const service = net.services.get(x.svc);
          return service && { kind: 'ptr', service, instance: x };
        });
        const ok = list.filter((r): r is Ref => r !== undefined);
        refs = ok.length === 0 ? undefined : ok.length === 1 ? ok[0] : ok;
      }
    }
    if (refs === undefined) return undefined;
    const e = new NameEntry(key, textNameHash(key), Array.isArray(refs) ? refs[0] : refs);
    if (Array.isArray(refs)) e.refs = refs;
    listEntry(net, e);
    net.lazy.add(e);
    for (const r of Array.isArray(refs) ? refs : [refs]) (r.service.lazy ??= new Set()).add(e);
    return e;
  }

  /** The encoded answers of `entry` for `qtype` (EMPTY for NODATA), built on first use after a change. */
  answers(entry: NameEntry, qtype: number): EncodedAnswers {
    const slot = qtype === TYPE_A ? 0 : qtype === TYPE_AAAA ? 1 : qtype === TYPE_SRV ? 2 : qtype === TYPE_PTR ? 3 : -1;
    if (slot < 0) return EMPTY;
    const cache = entry.cache;
    if (cache !== undefined) {
      const c = cache[slot];
      if (c !== undefined) return c;
    }
    const e = encodeAnswers(entry, qtype, this.selected);
    (entry.cache ??= [])[slot] = e;
    return e;
  }

  /**
   * One array per distinct port list (the instances of a service usually serve the same ports),
   * shared read-only by the instances that have it. Bounded: cleared when full (only unshares).
   */
  private sharedPorts(ports: ServicePort[]): ServicePort[] {
    if (ports.length === 0) return NO_PORTS;
    let sig = '';
    for (const p of ports) sig += `${p.port}/${p.proto}/${p.name ?? ''},`;
    const c = this.portLists.get(sig);
    if (c !== undefined) return c;
    if (this.portLists.size >= 4096) this.portLists.clear();
    this.portLists.set(sig, ports);
    return ports;
  }

  private network(name: string, create: boolean): NetworkIndex | undefined {
    let n = this.networks.get(name);
    if (n === undefined && create) {
      n = new NetworkIndex(name);
      this.networks.set(name, n);
    }
    return n;
  }

  private service(network: string, name: string): Service {
    const svc = this.network(network, false)?.services.get(String(name).toLowerCase());
    if (!svc) throw new UnknownServiceError(network, String(name));
    return svc;
  }

  private touch(net: NetworkIndex, svc: Service, replaced?: Service): void {
    if (replaced) {
      this.unindex(net, replaced);
      svc.names = [];
    }
    net.dirty.add(svc);
    for (const l of this.listeners) {
      try {
        l(net.name, svc.name);
      } catch {
        // A listener's bug is its own.
      }
    }
  }

  private flush(net: NetworkIndex): void {
    for (const svc of net.dirty) {
      this.unindex(net, svc);
      if (!svc.removed) this.index(net, svc);
    }
    net.dirty.clear();
  }

  private unindex(net: NetworkIndex, svc: Service): void {
    for (const e of svc.names) {
      const refs = e.refs;
      let left: number;
      if (Array.isArray(refs)) {
        for (let i = refs.length - 1; i >= 0; i--) if (refs[i].service === svc) refs.splice(i, 1);
        left = refs.length;
      } else left = refs.service === svc ? 0 : 1;
      e.cache = undefined;
      if (left > 0) continue;
      // Gone from the index, unless already removed (a name this service added twice).
      unlist(net, e);
    }
    svc.names = [];
    for (const inst of svc.mapped) {
      for (const a of inst.v4) unmapAddress(net, a, inst);
      for (const a of inst.v6) unmapAddress(net, hex(a), inst);
    }
    svc.mapped = [];
    // Entries built on demand that name this service: built again when asked.
    if (svc.lazy !== undefined) for (const e of svc.lazy) dropLazy(net, e);
    svc.lazy = undefined;
    if (svc.vip4 !== undefined) unmapAddress(net, svc.vip4, svc);
    if (svc.vip6) unmapAddress(net, hex(svc.vip6), svc);
  }

  private index(net: NetworkIndex, svc: Service): void {
    const add = (name: string, ref: Ref) => {
      svc.names.push(this.entry(net, name, ref));
    };
    const s = svc.name;
    add(s, { kind: 'svc', service: svc });
    add(`tasks.${s}`, { kind: 'tasks', service: svc });
    add(`all.tasks.${s}`, { kind: 'all', service: svc });
    const portNames = new Set<string>();
    const mapped: Instance[] = new Array<Instance>(svc.instances.size);
    let k = 0;
    for (const inst of svc.instances.values()) {
      // `<id>.tasks.<svc>` is built on demand, except `all` (it shares all.tasks.<svc>'s entry).
      if (inst.id === 'all') add(`all.tasks.${s}`, { kind: 'inst', service: svc, instance: inst });
      for (const a of inst.v4) mapAddress(net, a, inst);
      for (const a of inst.v6) mapAddress(net, hex(a), inst);
      mapped[k++] = inst;
      for (const p of inst.ports) if (p.name !== undefined) portNames.add(`${p.name}/${p.proto}`);
    }
    svc.mapped = mapped;
    for (const pn of portNames) {
      const [name, proto] = pn.split('/') as [string, PortProto];
      add(`_${name}._${proto}.${s}`, { kind: 'port', service: svc, portName: name, proto });
    }
    if (svc.vip4 !== undefined) mapAddress(net, svc.vip4, svc);
    if (svc.vip6) mapAddress(net, hex(svc.vip6), svc);
  }

  /** The entry of `name` with `ref` added (a new entry when the name had none). */
  private entry(net: NetworkIndex, name: string, ref: Ref): NameEntry {
    const key = keyOf(name);
    let e = find(net, key);
    if (e) {
      if (Array.isArray(e.refs)) e.refs.push(ref);
      else e.refs = [e.refs, ref];
      e.cache = undefined;
      return e;
    }
    e = new NameEntry(key, textNameHash(key), ref);
    listEntry(net, e);
    return e;
  }

  private readonly selected = (svc: Service, all: boolean): Instance[] => {
    const list = [...svc.instances.values()];
    if (all) return list;
    return selectForAnswer(list, (i) => i.healthy, this.healthCounters).answer;
  }

}
