/**
 * A network's name index and address map, as ServiceDirectory keeps them: the internal records of
 * services and instances, the entries of the names a network answers (by name hash), and the small
 * functions that put entries and addresses in and take them out.
 */
import type { EncodedAnswers } from './directory-answers.js';
import { reverseName } from './directory-names.js';
import type { EndpointMode, PortProto, ServicePort } from './directory-spec.js';
import { textNameHash } from './dns/wire.js';

export interface Instance {
  id: string;
  /** Name of its service (the key in NetworkIndex.services): PTR targets of the address map. */
  svc: string;
  /** IPv4 addresses as unsigned 32-bit numbers (a typed array per address costs ~200 bytes). */
  v4: number[];
  v6: Uint8Array[];
  ports: ServicePort[];
  healthy: boolean;
}

export interface Service {
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
export type Holder = Instance | Service;

export type RefKind = 'svc' | 'tasks' | 'all' | 'inst' | 'port' | 'ptr';

export interface Ref {
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

export class NetworkIndex {
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
/** Put `e` in the network's hash index. */
export function listEntry(net: NetworkIndex, e: NameEntry): void {
  const b = net.byHash.get(e.hash);
  if (b === undefined) net.byHash.set(e.hash, e);
  else if (Array.isArray(b)) b.push(e);
  else net.byHash.set(e.hash, [b, e]);
}

/** Take `e` out of the network's hash index (nothing when it is not there). */
export function unlist(net: NetworkIndex, e: NameEntry): void {
  const b = net.byHash.get(e.hash);
  if (b === e) net.byHash.delete(e.hash);
  else if (Array.isArray(b) && b.includes(e)) {
    const rest = b.filter((x) => x !== e);
    net.byHash.set(e.hash, rest.length === 1 ? rest[0] : rest);
  }
}

export function mapAddress(net: NetworkIndex, a: number | string, h: Holder): void {
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
export function dropLazy(net: NetworkIndex, e: NameEntry): void {
  if (!net.lazy.delete(e)) return;
  unlist(net, e);
  for (const r of Array.isArray(e.refs) ? e.refs : [e.refs]) r.service.lazy?.delete(e);
}

export function unmapAddress(net: NetworkIndex, a: number | string, h: Holder): void {
  const cur = net.byAddr.get(a);
  if (cur === h) net.byAddr.delete(a);
  else if (Array.isArray(cur)) {
    const rest = cur.filter((x) => x !== h);
    if (rest.length === 0) net.byAddr.delete(a);
    else net.byAddr.set(a, rest.length === 1 ? rest[0] : rest);
  }
}

export const isInstance = (h: Holder): h is Instance => (h as Instance).svc !== undefined;
/** The entry whose key is `key` (lowercase dotted text), through the hash index. */
export function find(net: NetworkIndex, key: string): NameEntry | undefined {
  const b = net.byHash.get(textNameHash(key));
  if (b === undefined) return undefined;
  if (b instanceof NameEntry) return b.key === key ? b : undefined;
  for (let i = 0; i < b.length; i++) if (b[i].key === key) return b[i];
  return undefined;
}

export function keyOf(name: string): string {
  const t = name.toLowerCase();
  return t.endsWith('.') ? t.slice(0, -1) : t;
}
