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
import { OverlayError, parseIpAddress, type CounterSet } from '@overlay/dataplane';
import { selectForAnswer } from './health/select.js';
import type { HealthCounter } from './health/counters.js';
import { hex, lazyShape, reverseAddress, reverseName } from './directory-names.js';
import { CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, sameName, textNameHash, textToName, type Question } from './dns/wire.js';

export { reverseName };

export type EndpointMode = 'vip' | 'dnsrr';
export type PortProto = 'tcp' | 'udp';

export interface ServicePort {
  /** Port name for SRV (`_<name>._<proto>.<svc>`); a DNS label. */
  name?: string;
  port: number;
  proto: PortProto;
}

export interface ServiceInstance {
  /** Unique within the service; a DNS label (names `<id>.tasks.<svc>`). */
  id: string;
  /** IPv4 and/or IPv6 addresses on the service's network. */
  addresses: string[];
  ports?: ServicePort[];
  healthy: boolean;
}

export interface ServiceSpec {
  /** A DNS label: letters, digits, '-', '_' (1..63). */
  name: string;
  network: string;
  /** Virtual addresses (at most one per family); with endpointMode 'vip' the service name answers them. */
  vip?: string[];
  /** 'vip' (default when a VIP is given) or 'dnsrr' (the name answers the instances). */
  endpointMode?: EndpointMode;
  /** Seconds, 0..600; default the directory's (5). */
  ttl?: number;
}

export interface ServiceDirectoryOptions {
  /** Default TTL in seconds (0..600), default 5. */
  ttl?: number;
  /** Health counters for panic-mode selections (`selections`, `panic_answers`). */
  healthCounters?: CounterSet<HealthCounter>;
}

export const DEFAULT_TTL = 5;
export const MAX_TTL = 600;

/** A service, instance or option is malformed; `field` names it. */
export class InvalidServiceError extends OverlayError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('OVL_ERR_INVALID_SERVICE', `${field}: ${message}`);
    this.field = field;
  }
}

/** No such service (or instance) in that network. */
export class UnknownServiceError extends OverlayError {
  constructor(readonly network: string, readonly service: string) {
    super('OVL_ERR_UNKNOWN_SERVICE', `no service ${service} in network ${network}`);
  }
}

/** Answer records of one name for one query type, encoded: owner names point at the question (0xc00c). */
export interface EncodedAnswers {
  /**
   * The answer section's bytes, one char per byte (latin1): a string costs its length plus a
   * small header, where a typed array per answer costs ~500 bytes of heap and bookkeeping.
   */
  readonly bytes: string;
  /** End offset in `bytes` of each record, so a truncated answer keeps whole records. */
  readonly ends: readonly number[];
}

const EMPTY: EncodedAnswers = { bytes: '', ends: [] };
/** Shared empty lists of instances without addresses of a family or without ports (read-only). */
const NONE4: number[] = [];
const NONE6: Uint8Array[] = [];
const NO_PORTS: ServicePort[] = [];

interface Instance {
  id: string;
  /** Name of its service (the key in NetworkIndex.services): PTR targets of the address map. */
  svc: string;
  /** IPv4 addresses as unsigned 32-bit numbers (a typed array per address costs ~200 bytes). */
  v4: number[];
  v6: Uint8Array[];
  ports: ServicePort[];
  healthy: boolean;
}

interface Service {
  name: string;
  network: string;
  vip4?: number;
  vip6?: Uint8Array;
  mode: EndpointMode;
  ttl: number;
  instances: Map<string, Instance>;
  /** Index entries this service contributed refs to. */
  names: NameEntry[];
  /** The instances whose addresses are in the network's address map (as they were indexed). */
  mapped: Instance[];
  /** Entries built on demand that name this service (dropped when it changes). */
  lazy?: Set<NameEntry>;
  removed: boolean;
}

/** What an address's reverse name answers: instances (`<id>.tasks.<svc>`) and services by VIP (`<svc>`). */
type Holder = Instance | Service;

type RefKind = 'svc' | 'tasks' | 'all' | 'inst' | 'port' | 'ptr';

interface Ref {
  kind: RefKind;
  service: Service;
  /** 'inst': that instance; 'ptr': the instance whose address it is (`<id>.tasks.<svc>`), none for a VIP (`<svc>`). */
  instance?: Instance;
  portName?: string;
  proto?: PortProto;
}

/** One name a network answers (its lowercase dotted text is the key; the wire form is never stored). */
export class NameEntry {
  /**
   * What the name answers: usually one ref (an instance's name, its address's reverse name), held
   * directly; an array only once a second ref joins (a 1-element array and its store cost ~60
   * bytes per name, 20 000 names for 10 000 instances).
   */
  refs: Ref | Ref[];
  /** Encoded answers by qtype slot (A, AAAA, SRV, PTR); undefined until asked, cleared on change. */
  cache: Array<EncodedAnswers | undefined> | undefined = undefined;
  constructor(
    readonly key: string,
    readonly hash: number,
    first: Ref,
  ) {
    this.refs = first;
  }
}

class NetworkIndex {
  readonly services = new Map<string, Service>();
  /** The only index: by name hash (text lookups hash the text and compare keys; no second map by key). */
  readonly byHash = new Map<number, NameEntry | NameEntry[]>();
  readonly dirty = new Set<Service>();
  /** Instance addresses and VIPs → what their reverse names answer (IPv4 as numbers, IPv6 as hex). */
  readonly byAddr = new Map<number | string, Holder | Holder[]>();
  /** Entries built on demand (in the index until a service they name changes). */
  readonly lazy = new Set<NameEntry>();
  /** Index shared with other networks by equal name would break scoping: each network has its own. */
  constructor(readonly name: string) {}
}

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

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
    const e = this.encode(entry, qtype);
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

  private selected(svc: Service, all: boolean): Instance[] {
    const list = [...svc.instances.values()];
    if (all) return list;
    return selectForAnswer(list, (i) => i.healthy, this.healthCounters).answer;
  }

  private encode(entry: NameEntry, qtype: number): EncodedAnswers {
    const w = new RecordWriter();
    for (const r of Array.isArray(entry.refs) ? entry.refs : [entry.refs]) {
      const svc = r.service;
      const ttl = svc.ttl;
      if (r.kind === 'ptr') {
        if (qtype === TYPE_PTR) w.record(TYPE_PTR, ttl, textToName(r.instance ? `${r.instance.id}.tasks.${svc.name}` : svc.name));
        continue;
      }
      let insts: Instance[];
      if (r.kind === 'inst') insts = [r.instance!];
      else if (r.kind === 'svc' && svc.mode === 'vip' && qtype !== TYPE_SRV) {
        if (qtype === TYPE_A && svc.vip4 !== undefined) w.a(ttl, svc.vip4);
        else if (qtype === TYPE_AAAA && svc.vip6) w.record(TYPE_AAAA, ttl, svc.vip6);
        continue;
      } else insts = this.selected(svc, r.kind === 'all');
      for (const inst of insts) {
        if (qtype === TYPE_A) for (const a of inst.v4) w.a(ttl, a);
        else if (qtype === TYPE_AAAA) for (const a of inst.v6) w.record(TYPE_AAAA, ttl, a);
        else if (qtype === TYPE_SRV) {
          const target = textToName(`${inst.id}.tasks.${svc.name}`);
          for (const p of inst.ports) {
            if (r.kind === 'port' && (p.name !== r.portName || p.proto !== r.proto)) continue;
            w.srv(ttl, p.port, target);
          }
        }
      }
    }
    return w.done();
  }
}

class RecordWriter {
  private bytes: number[] = [];
  private ends: number[] = [];

  record(type: number, ttl: number, rdata: Uint8Array): void {
    const b = this.bytes;
    b.push(0xc0, 0x0c, type >> 8, type & 255, CLASS_IN >> 8, CLASS_IN & 255, (ttl >>> 24) & 255, (ttl >>> 16) & 255, (ttl >>> 8) & 255, ttl & 255, rdata.length >> 8, rdata.length & 255);
    for (let i = 0; i < rdata.length; i++) b.push(rdata[i]);
    this.ends.push(b.length);
  }

  a(ttl: number, v4: number): void {
    this.record(TYPE_A, ttl, Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255));
  }

  srv(ttl: number, port: number, target: Uint8Array): void {
    const rd = new Uint8Array(6 + target.length);
    rd[3] = 1; // priority 0, weight 1
    rd[4] = port >> 8;
    rd[5] = port & 255;
    rd.set(target, 6);
    this.record(TYPE_SRV, ttl, rd);
  }

  done(): EncodedAnswers {
    if (this.ends.length === 0) return EMPTY;
    return { bytes: Buffer.from(this.bytes).toString('latin1'), ends: this.ends };
  }
}

/** Put `e` in the network's hash index. */
function listEntry(net: NetworkIndex, e: NameEntry): void {
  const b = net.byHash.get(e.hash);
  if (b === undefined) net.byHash.set(e.hash, e);
  else if (Array.isArray(b)) b.push(e);
  else net.byHash.set(e.hash, [b, e]);
}

/** Take `e` out of the network's hash index (nothing when it is not there). */
function unlist(net: NetworkIndex, e: NameEntry): void {
  const b = net.byHash.get(e.hash);
  if (b === e) net.byHash.delete(e.hash);
  else if (Array.isArray(b) && b.includes(e)) {
    const rest = b.filter((x) => x !== e);
    net.byHash.set(e.hash, rest.length === 1 ? rest[0] : rest);
  }
}

function mapAddress(net: NetworkIndex, a: number | string, h: Holder): void {
  const cur = net.byAddr.get(a);
  if (cur === undefined) {
    net.byAddr.set(a, h);
    return;
  }
  if (Array.isArray(cur)) cur.push(h);
  else net.byAddr.set(a, [cur, h]);
  // The address's reverse name, if built, lacks the new holder.
  if (net.lazy.size > 0) {
    const e = find(net, reverseName(typeof a === 'number' ? Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255) : Buffer.from(a, 'hex')));
    if (e !== undefined) dropLazy(net, e);
  }
}

/** Take an entry built on demand out of the index (nothing when it is not one). */
function dropLazy(net: NetworkIndex, e: NameEntry): void {
  if (!net.lazy.delete(e)) return;
  unlist(net, e);
  for (const r of Array.isArray(e.refs) ? e.refs : [e.refs]) r.service.lazy?.delete(e);
}

function unmapAddress(net: NetworkIndex, a: number | string, h: Holder): void {
  const cur = net.byAddr.get(a);
  if (cur === h) net.byAddr.delete(a);
  else if (Array.isArray(cur)) {
    const rest = cur.filter((x) => x !== h);
    if (rest.length === 0) net.byAddr.delete(a);
    else net.byAddr.set(a, rest.length === 1 ? rest[0] : rest);
  }
}

const isInstance = (h: Holder): h is Instance => (h as Instance).svc !== undefined;

function u32(b: Uint8Array): number {
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/** The entry whose key is `key` (lowercase dotted text), through the hash index. */
function find(net: NetworkIndex, key: string): NameEntry | undefined {
  const b = net.byHash.get(textNameHash(key));
  if (b === undefined) return undefined;
  if (b instanceof NameEntry) return b.key === key ? b : undefined;
  for (let i = 0; i < b.length; i++) if (b[i].key === key) return b[i];
  return undefined;
}

function keyOf(name: string): string {
  const t = name.toLowerCase();
  return t.endsWith('.') ? t.slice(0, -1) : t;
}

function checkLabel(field: string, v: unknown): void {
  if (typeof v !== 'string' || !LABEL.test(v)) throw new InvalidServiceError(field, `must be a DNS label (letters, digits, '-', '_'; 1..63), not ${JSON.stringify(v)?.slice(0, 80)}`);
}

function checkTtl(field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_TTL) throw new InvalidServiceError(field, `must be an integer 0..${MAX_TTL} seconds, not ${String(v)}`);
  return v as number;
}

function parseAddress(field: string, v: unknown): Uint8Array {
  try {
    return parseIpAddress(v as string).bytes;
  } catch {
    throw new InvalidServiceError(field, `not an IP address: ${JSON.stringify(v)?.slice(0, 80)}`);
  }
}
