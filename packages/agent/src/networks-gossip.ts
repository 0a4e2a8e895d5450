/**
 * Per-network gossip: which members take which records, and the digests delta push-pull compares.
 *
 * A member advertises in its NodeMeta the networks it joins (`networks`, with `scoped` set). It
 * then receives the endpoint and service records (kinds 1 and 2) of those networks only, by gossip
 * and by push-pull; records of other kinds (revocations, …) go to everyone. A member without
 * `scoped` (an older node, or an agent given no network list) takes every record, as before.
 *
 * NetworkIndex keeps, per network, the live members that joined it (for gossip targets and the
 * retransmit budget of the network's records) and each member's meta by address (what a packet's
 * destination takes). Updated on every membership change; O(1) per change and per random pick.
 *
 * Single-threaded; owned by one agent.
 */
import type { Member } from './membership.js';
import type { SignedRecord } from './records.js';
import type { NodeMeta, RecordDigest } from './wire.js';
import type { RecordScope } from './gossip-queues.js';

/** Record kinds spread per network: endpoints (1) and service instances (2). */
export const SCOPED_KINDS: ReadonlySet<number> = new Set([1, 2]);

/** The broadcast queue a record goes to: its network for a scoped kind, '' (everyone) otherwise. */
export function queueOf(kind: number, network: string, scoped: boolean): string {
  return scoped && SCOPED_KINDS.has(kind) ? network : '';
}

/** Whether a member advertising `meta` (undefined: unknown) takes records of (kind, network). */
export function takes(meta: NodeMeta | undefined, kind: number, network: string): boolean {
  if (!meta?.scoped || !SCOPED_KINDS.has(kind)) return true;
  return meta.networks!.includes(network);
}

interface Slot {
  names: string[];
  pos: Map<string, number>;
}

export class NetworkIndex {
  private readonly nets = new Map<string, Slot>();
  /** Networks each member is indexed under. */
  private readonly joined = new Map<string, readonly string[]>();
  private readonly byAddr = new Map<string, NodeMeta>();

  constructor(private readonly self: string) {}

  /** Follow one member's state or meta change. */
  update(m: Member): void {
    const live = m.state === 'alive' || m.state === 'suspect';
    const key = `${m.ip}:${m.port}`;
    if (live) this.byAddr.set(key, m.meta);
    else this.byAddr.delete(key);
    const want = live && m.meta.scoped ? (m.meta.networks ?? []) : [];
    const had = this.joined.get(m.name) ?? [];
    for (const n of had) if (!want.includes(n)) this.remove(n, m.name);
    for (const n of want) if (!had.includes(n)) this.add(n, m.name);
    if (want.length > 0) this.joined.set(m.name, [...want]);
    else this.joined.delete(m.name);
  }

  /** The meta of the live member at `ip:port`, if known. */
  metaAt(ip: string, port: number): NodeMeta | undefined {
    return this.byAddr.get(`${ip}:${port}`);
  }

  /** Live members that joined `network` (self excluded). */
  size(network: string): number {
    return this.nets.get(network)?.names.length ?? 0;
  }

  /** Up to `k` distinct random members of `network`, not `exclude` (self is never indexed). */
  pick(network: string, k: number, random: () => number): string[] {
    const s = this.nets.get(network);
    if (!s || s.names.length === 0) return [];
    const n = s.names.length;
    if (n <= k) return s.names.slice();
    const out: string[] = [];
    for (let tries = 0; out.length < k && tries < 4 * k; tries++) {
      const name = s.names[Math.floor(random() * n)];
      if (!out.includes(name)) out.push(name);
    }
    return out;
  }

  private add(network: string, name: string): void {
    if (name === this.self) return;
    let s = this.nets.get(network);
    if (!s) this.nets.set(network, (s = { names: [], pos: new Map() }));
    if (s.pos.has(name)) return;
    s.pos.set(name, s.names.length);
    s.names.push(name);
  }

  private remove(network: string, name: string): void {
    const s = this.nets.get(network);
    const i = s?.pos.get(name);
    if (!s || i === undefined) return;
    const last = s.names.pop()!;
    s.pos.delete(name);
    if (last !== name) {
      s.names[i] = last;
      s.pos.set(last, i);
    }
  }
}

/** The records of one (network, owner) group and their digest. */
export interface Group {
  network: string;
  owner: string;
  count: number;
  h0: number;
  h1: number;
  recs: SignedRecord[];
}

const groupKey = (network: string, owner: string) => `${network}\u0000${owner}`;

/** Group records by (network, owner), with count and XOR of the signatures' first 8 bytes. */
export function groupRecords(records: Iterable<SignedRecord>): Map<string, Group> {
  const out = new Map<string, Group>();
  for (const r of records) {
    const k = groupKey(r.network, r.owner);
    let g = out.get(k);
    if (!g) out.set(k, (g = { network: r.network, owner: r.owner, count: 0, h0: 0, h1: 0, recs: [] }));
    const s = r.sig;
    g.count++;
    g.h0 = (g.h0 ^ ((s[0] << 24) | (s[1] << 16) | (s[2] << 8) | s[3])) >>> 0;
    g.h1 = (g.h1 ^ ((s[4] << 24) | (s[5] << 16) | (s[6] << 8) | s[7])) >>> 0;
    g.recs.push(r);
  }
  return out;
}

export function digestOf(g: Group): RecordDigest {
  const hash = new Uint8Array(8);
  const v = new DataView(hash.buffer);
  v.setUint32(0, g.h0);
  v.setUint32(4, g.h1);
  return { network: g.network, owner: g.owner, count: g.count, hash };
}

/** Digests by group key, for comparing. */
export function digestMap(ds: readonly RecordDigest[]): Map<string, RecordDigest> {
  const m = new Map<string, RecordDigest>();
  for (const d of ds) m.set(groupKey(d.network, d.owner), d);
  return m;
}

/** Whether our group `g` differs from the peer's digest of it (absent: the peer has none). */
export function differs(g: Group, theirs: RecordDigest | undefined): boolean {
  if (!theirs || theirs.count !== g.count || theirs.hash.length !== 8) return true;
  const v = new DataView(theirs.hash.buffer, theirs.hash.byteOffset, 8);
  return v.getUint32(0) !== g.h0 || v.getUint32(4) !== g.h1;
}

export { groupKey };

/** 8-byte XOR over members of FNV-1a(name, incarnation, state): equal views, equal hashes. */
export function membersHash(members: Iterable<{ name: string; incarnation: number; state: string }>): Uint8Array {
  let a = 0;
  let b = 0;
  for (const m of members) {
    let h = 0x811c9dc5;
    let g = 0x01000193;
    const s = `${m.name}\u0000${m.incarnation}\u0000${m.state}`;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      h = Math.imul(h ^ c, 0x01000193);
      g = Math.imul(g ^ c, 0x811c9dc5) + i;
    }
    a = (a ^ h) >>> 0;
    b = (b ^ g) >>> 0;
  }
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint32(0, a);
  v.setUint32(4, b);
  return out;
}

/**
 * The agent's side of per-network gossip: what it advertises, where each record is queued, what
 * a destination takes, and extra gossip targets for networks with news.
 */
export class NetworkGossip {
  readonly index: NetworkIndex;
  /** Reused per packet: the destination's meta (no allocation per packet). */
  private destMeta: NodeMeta | undefined;
  private readonly dest: RecordScope = {
    accepts: (network) => network === '' || takes(this.destMeta, 1, network),
    sizeOf: (network, n) => (network === '' || !this.scoped ? n : this.index.size(network) + 1),
  };

  constructor(self: string, readonly scoped: boolean) {
    this.index = new NetworkIndex(self);
  }

  /** NodeMeta fields advertising `networks` (nothing when not scoped: we take every record). */
  metaFields(networks: readonly string[]): Pick<NodeMeta, 'networks' | 'scoped'> {
    return this.scoped ? { scoped: true, networks: [...new Set(networks)].sort() } : {};
  }

  queueOf(r: { kind: number; network: string }): string {
    return queueOf(r.kind, r.network, this.scoped);
  }

  /** What a packet to `to` may carry. */
  scopeFor(to: { ip: string; port: number }): RecordScope {
    this.destMeta = this.index.metaAt(to.ip, to.port);
    return this.dest;
  }

  /** Records a peer advertising `peer` takes. */
  *recordsFor(records: Iterable<SignedRecord>, peer: NodeMeta | undefined): IterableIterator<SignedRecord> {
    for (const r of records) if (takes(peer, r.kind, r.network)) yield r;
  }

  /**
   * This round's gossip targets: `general` (random members) plus, for each network with records
   * queued, `k` random members of that network, so its news spreads inside it at the same
   * fan-out as cluster-wide news does in the cluster.
   */
  targets(general: { ip: string; port: number }[], withNews: readonly string[], k: number, random: () => number, addrOf: (name: string) => { ip: string; port: number } | undefined): { ip: string; port: number }[] {
    if (!this.scoped) return general;
    const out = general.slice();
    const seen = new Set(out.map((a) => `${a.ip}:${a.port}`));
    for (const net of withNews) {
      if (net === '') continue;
      for (const name of this.index.pick(net, k, random)) {
        const a = addrOf(name);
        if (!a || seen.has(`${a.ip}:${a.port}`)) continue;
        seen.add(`${a.ip}:${a.port}`);
        out.push(a);
      }
    }
    return out;
  }
}
