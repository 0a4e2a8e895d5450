/**
 * The key layout, `/<cluster>/v1/<area>/...`:
 *
 *   nodes/<node>                      a node's membership record (owner: <node>)
 *   networks/<net>                    a network's definition (signed by whoever may define it)
 *   endpoints/<net>/<node>/<id>       one endpoint of <node> in <net> (owner: <node>)
 *   services/<net>/<node>/<id>        one service instance of <node> in <net> (owner: <node>)
 *   vips/<net>/<address>              a VIP or address allocated in <net> (first writer wins, CAS)
 *   revocations/<node>                a revoked node identity
 *
 * Segments are 1..MAX_SEGMENT bytes of printable ASCII without `/` (names of the agent are at most
 * 64 characters). Every builder validates and throws StoreError STORE_BAD_KEY; parseKey never
 * throws (undefined for anything that is not a well-formed key of this layout).
 */
import { StoreError } from './errors.js';

export const LAYOUT_VERSION = 'v1';
export const MAX_SEGMENT = 128;
export const AREAS = ['nodes', 'networks', 'endpoints', 'services', 'vips', 'revocations'] as const;
export type Area = (typeof AREAS)[number];

/** How many segments follow the area in a full key. */
const DEPTH: Record<Area, number> = { nodes: 1, networks: 1, endpoints: 3, services: 3, vips: 2, revocations: 1 };
/** Which segment after the area names the owning node (-1: none in the key). */
const OWNER_AT: Record<Area, number> = { nodes: 0, networks: -1, endpoints: 1, services: 1, vips: -1, revocations: -1 };

export function segmentOk(s: string): boolean {
  if (s.length === 0 || s.length > MAX_SEGMENT || s === '.' || s === '..') return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x2f) return false;
  }
  return true;
}

function seg(key: string, s: string, what: string): string {
  if (!segmentOk(s)) throw StoreError.badKey(key, `${what} must be 1..${MAX_SEGMENT} printable ASCII characters without '/' or space`);
  return s;
}

export interface ParsedKey {
  cluster: string;
  area: Area;
  /** The segments after the area. */
  parts: string[];
  /** The node that owns the key's value, when the layout names one. */
  owner?: string;
  network?: string;
}

/** Builders for one cluster's keys. */
export class Keys {
  readonly root: string;
  constructor(readonly cluster: string) {
    seg(`/${cluster}`, cluster, 'cluster');
    this.root = `/${cluster}/${LAYOUT_VERSION}/`;
  }
  /** The keys under a root prefix of one segment (`/overlay/` → cluster `overlay`). */
  static fromPrefix(prefix: string): Keys {
    const m = /^\/([^/]+)\/?$/.exec(prefix);
    if (!m) throw StoreError.badKey(prefix, "a store prefix is one segment: '/<cluster>/'");
    return new Keys(m[1]);
  }
  private build(area: Area, parts: readonly string[]): string {
    const key = this.root + area + '/' + parts.join('/');
    parts.forEach((p, i) => seg(key, p, `${area} segment ${i + 1}`));
    return key;
  }
  /** Prefix of an area, optionally narrowed by leading segments (ends with '/'). */
  prefix(area: Area, ...parts: string[]): string {
    if (parts.length >= DEPTH[area]) throw StoreError.badKey(this.root + area, `a prefix of ${area} takes fewer than ${DEPTH[area]} segments`);
    return parts.length === 0 ? `${this.root}${area}/` : this.build(area, parts) + '/';
  }
  node(node: string): string {
    return this.build('nodes', [node]);
  }
  network(net: string): string {
    return this.build('networks', [net]);
  }
  endpoint(net: string, node: string, id: string): string {
    return this.build('endpoints', [net, node, id]);
  }
  service(net: string, node: string, id: string): string {
    return this.build('services', [net, node, id]);
  }
  vip(net: string, address: string): string {
    return this.build('vips', [net, address]);
  }
  revocation(node: string): string {
    return this.build('revocations', [node]);
  }
}

/** Parse any key of the layout (any cluster); undefined when it is not one. */
export function parseKey(key: string): ParsedKey | undefined {
  if (typeof key !== 'string' || key.length > 1024 || key[0] !== '/') return undefined;
  const p = key.slice(1).split('/');
  if (p.length < 4 || p[1] !== LAYOUT_VERSION || !segmentOk(p[0])) return undefined;
  const area = p[2] as Area;
  if (!(AREAS as readonly string[]).includes(area)) return undefined;
  const parts = p.slice(3);
  if (parts.length !== DEPTH[area] || !parts.every(segmentOk)) return undefined;
  const at = OWNER_AT[area];
  const out: ParsedKey = { cluster: p[0], area, parts };
  if (at >= 0) out.owner = parts[at];
  if (area === 'endpoints' || area === 'services' || area === 'vips') out.network = parts[0];
  return out;
}

/** A key or prefix every backend accepts: starts with '/', no empty interior segments, bounded. */
export function checkKey(key: string, isPrefix = false): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) throw StoreError.badKey(String(key), 'must be 1..1024 characters');
  if (key[0] !== '/') throw StoreError.badKey(key, "must start with '/'");
  if (!isPrefix && key.endsWith('/')) throw StoreError.badKey(key, "a key must not end with '/'");
  if (key.includes('//')) throw StoreError.badKey(key, 'empty segment');
  return key;
}
