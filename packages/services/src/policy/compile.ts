import type { NormalPolicy, NormalRule, PolicyAction, Tier } from './rules.js';

/**
 * The compiled evaluator: (protocol, source, destination, destination port or ICMP type, the
 * two addresses' group bitsets) → the index of the deciding rule, or -1 for the default, with no
 * allocation.
 *
 * Layout. Packets fall in four protocol classes: TCP (key: destination port), UDP (port), ICMP
 * (key: type) and every other protocol (one key). Per class, the rules that apply to it are split
 * three ways:
 *
 * - per key, a bucket of the rules whose port ranges (ICMP types) contain the key, ascending. Keys
 *   are mapped to buckets by one Int32Array per class (65536 entries for TCP and UDP, 256 for
 *   ICMP); the key space is cut at every range boundary into elementary intervals, and identical
 *   candidate lists share one bucket;
 * - wildcard rules (proto `any`, or this class's proto without ports/types) whose two endpoints are
 *   each "any" or exactly one CIDR: a tuple space — per (source mask, destination mask) pair of
 *   the class, a hash entry per (masked source, masked destination) holding the lowest rule index
 *   with that key. Every rule under a key matches any packet that hashes to it, so one probe per
 *   mask pair gives that pair's first match;
 * - the residual wildcard rules (an endpoint with groups or several CIDRs), ascending.
 *
 * A verdict probes the tuple space, then walks the bucket and the residual list, each only while
 * the rule index is below the best match so far, testing endpoints (one mask compare for a single
 * CIDR, group bits or the CIDR list otherwise). The lowest matching index is the first matching
 * rule of the whole list: every rule left out cannot match this protocol and key. The cost is the
 * mask pairs of the class plus the candidates walked: rules naming other ports cost nothing, CIDR
 * wildcards cost one probe per distinct mask pair, and the worst case — thousands of residual
 * (group) wildcard rules of one protocol that do not match — is linear in them
 * (bench/micro-policy.ts measures it).
 *
 * Groups are small integers given by the filter's registry (`groupId`); an address's groups are a
 * bitset of 32-bit words at `base` in a shared Int32Array (`base` -1: in no group).
 */
export const CLASS_TCP = 0;
export const CLASS_UDP = 1;
export const CLASS_ICMP = 2;
export const CLASS_OTHER = 3;
const CLASS_OFFSET = [0, 65536, 131072, 131328] as const;
const KEY_SPACE = 131329;

export const ACTION_DENY = 0;
export const ACTION_ALLOW = 1;

export function classOf(proto: number): number {
  return proto === 6 ? CLASS_TCP : proto === 17 ? CLASS_UDP : proto === 1 ? CLASS_ICMP : CLASS_OTHER;
}

/** Endpoint selector kinds per rule: any address, exactly one CIDR (base1/mask1), or the general loop. */
const KIND_ANY = 0;
const KIND_CIDR = 1;
const KIND_GENERAL = 2;

interface Side {
  kind: Uint8Array;
  base1: Int32Array;
  mask1: Int32Array;
  any: Uint8Array;
  groupStart: Int32Array;
  groups: Int32Array;
  cidrStart: Int32Array;
  cidrBase: Int32Array;
  cidrMask: Int32Array;
}

export class CompiledPolicy {
  readonly size: number;
  readonly ids: readonly string[];
  readonly tiers: readonly Tier[];
  readonly rules: readonly NormalRule[];
  readonly defaultAction: number;
  /** Per rule: ACTION_ALLOW or ACTION_DENY. */
  readonly action: Uint8Array;
  /** Per rule: 1 when its decisions are logged. */
  readonly log: Uint8Array;
  /** Packets dropped per deciding rule: [inside rules…, inside default, outside rules…, outside default]. */
  readonly drops: Float64Array;
  /** Flows allowed per deciding rule, same layout. */
  readonly allows: Float64Array;
  private readonly from: Side;
  private readonly to: Side;
  /** key (class offset + port/type) → bucket. */
  private readonly keyBucket: Int32Array;
  private readonly bucketStart: Int32Array;
  private readonly bucketRules: Int32Array;
  /** Per class: [start, end) into wildRules (the residual wildcard rules, ascending). */
  private readonly wildStart: Int32Array;
  private readonly wildRules: Int32Array;
  /** Per class: [start, end) into the tuples (source mask, destination mask). */
  private readonly tupleStart: Int32Array;
  private readonly tupleMs: Int32Array;
  private readonly tupleMd: Int32Array;
  /** Tuple-space hash (open addressing): (tuple, masked source, masked destination) → lowest rule; hRule -1 = empty. */
  private readonly hMask: number;
  private readonly hTuple: Int32Array;
  private readonly hSrc: Int32Array;
  private readonly hDst: Int32Array;
  private readonly hRule: Int32Array;

  constructor(
    p: NormalPolicy,
    groupId: (name: string) => number,
    readonly generation: number,
  ) {
    const rules = p.rules;
    const n = rules.length;
    this.size = n;
    this.rules = rules;
    this.ids = rules.map((r) => r.id);
    this.tiers = rules.map((r) => r.tier);
    this.defaultAction = p.defaultAction === 'allow' ? ACTION_ALLOW : ACTION_DENY;
    this.action = Uint8Array.from(rules, (r) => (r.action === 'allow' ? ACTION_ALLOW : ACTION_DENY));
    this.log = Uint8Array.from(rules, (r) => (r.log ? 1 : 0));
    this.drops = new Float64Array(2 * (n + 1));
    this.allows = new Float64Array(2 * (n + 1));
    this.from = side(rules, (r) => r.from, groupId);
    this.to = side(rules, (r) => r.to, groupId);

    // Wildcard lists and ranged buckets per class.
    const wild: number[][] = [[], [], [], []];
    const ranged: number[][] = [[], [], [], []];
    rules.forEach((r, i) => {
      for (let c = 0; c < 4; c++) {
        if (!applies(r, c)) continue;
        if (r.ranges === undefined || r.proto === 0) wild[c].push(i);
        else ranged[c].push(i);
      }
    });
    // Wildcard rules whose endpoints are each any or one CIDR go to the tuple space: per class,
    // one hash entry per (source prefix, destination prefix, masked source, masked destination)
    // holding the lowest rule index with that key — every rule under a key matches the packet
    // fully, so its first one is all a verdict needs. The rest (groups, several CIDRs) stay in
    // the residual list, walked in order.
    const fk = this.from.kind;
    const tk = this.to.kind;
    this.wildStart = new Int32Array(5);
    this.tupleStart = new Int32Array(5);
    const wildFlat: number[] = [];
    const tupleMs: number[] = [];
    const tupleMd: number[] = [];
    const entries = new Map<string, [number, number, number, number]>(); // key → [tuple, s, d, rule]
    for (let c = 0; c < 4; c++) {
      this.wildStart[c] = wildFlat.length;
      this.tupleStart[c] = tupleMs.length;
      const tupleOf = new Map<string, number>();
      for (const i of wild[c]) {
        if (fk[i] === KIND_GENERAL || tk[i] === KIND_GENERAL) {
          wildFlat.push(i);
          continue;
        }
        const ms = fk[i] === KIND_ANY ? 0 : this.from.mask1[i];
        const md = tk[i] === KIND_ANY ? 0 : this.to.mask1[i];
        const tkey = `${ms},${md}`;
        let t = tupleOf.get(tkey);
        if (t === undefined) {
          t = tupleMs.length;
          tupleMs.push(ms);
          tupleMd.push(md);
          tupleOf.set(tkey, t);
        }
        const sb = fk[i] === KIND_ANY ? 0 : this.from.base1[i];
        const db = tk[i] === KIND_ANY ? 0 : this.to.base1[i];
        const ekey = `${t},${sb},${db}`;
        if (!entries.has(ekey)) entries.set(ekey, [t, sb, db, i]); // rules come in ascending order: the first is the lowest
      }
    }
    this.wildStart[4] = wildFlat.length;
    this.tupleStart[4] = tupleMs.length;
    this.wildRules = Int32Array.from(wildFlat);
    this.tupleMs = Int32Array.from(tupleMs);
    this.tupleMd = Int32Array.from(tupleMd);
    let hn = 16;
    while (hn < entries.size * 2) hn *= 2;
    this.hMask = hn - 1;
    this.hTuple = new Int32Array(hn);
    this.hSrc = new Int32Array(hn);
    this.hDst = new Int32Array(hn);
    this.hRule = new Int32Array(hn).fill(-1);
    for (const [t, sb, db, r] of entries.values()) {
      let h = tupleHash(t, sb, db) & this.hMask;
      while (this.hRule[h] >= 0) h = (h + 1) & this.hMask;
      this.hTuple[h] = t;
      this.hSrc[h] = sb;
      this.hDst[h] = db;
      this.hRule[h] = r;
    }

    this.keyBucket = new Int32Array(KEY_SPACE);
    const starts: number[] = [0, 0]; // bucket 0: empty
    const flat: number[] = [];
    const shared = new Map<string, number>([['', 0]]);
    for (let c = 0; c < 3; c++) {
      const space = c === CLASS_ICMP ? 256 : 65536;
      // Elementary intervals: cut at every lo and hi+1.
      const cuts = new Set<number>([0, space]);
      for (const i of ranged[c]) {
        const rg = rules[i].ranges!;
        for (let k = 0; k < rg.length; k += 2) cuts.add(rg[k]).add(rg[k + 1] + 1);
      }
      const edges = [...cuts].sort((a, b) => a - b);
      const lists: number[][] = edges.slice(0, -1).map(() => []);
      for (const i of ranged[c]) {
        const rg = rules[i].ranges!;
        for (let k = 0; k < rg.length; k += 2) {
          for (let j = lowerBound(edges, rg[k]); edges[j] <= rg[k + 1]; j++) {
            const l = lists[j];
            if (l[l.length - 1] !== i) l.push(i); // overlapping ranges of one rule: once
          }
        }
      }
      for (let j = 0; j < lists.length; j++) {
        const key = lists[j].join(',');
        let b = shared.get(key);
        if (b === undefined) {
          b = starts.length - 1;
          for (const i of lists[j]) flat.push(i);
          starts.push(flat.length);
          shared.set(key, b);
        }
        this.keyBucket.fill(b, CLASS_OFFSET[c] + edges[j], CLASS_OFFSET[c] + edges[j + 1]);
      }
    }
    this.bucketStart = Int32Array.from(starts);
    this.bucketRules = Int32Array.from(flat);
  }

  /** Buckets after sharing (for tests and the benchmark's description). */
  get bucketCount(): number {
    return this.bucketStart.length - 1;
  }

  /**
   * The deciding rule's index, or -1 when no rule matches (the default action decides).
   * `src`/`dst` as int32 (`x | 0`), `key` the destination port (TCP/UDP) or ICMP type, else 0.
   */
  evaluate(proto: number, src: number, dst: number, key: number, bits: Int32Array, srcBase: number, dstBase: number): number {
    const c = proto === 6 ? CLASS_TCP : proto === 17 ? CLASS_UDP : proto === 1 ? CLASS_ICMP : CLASS_OTHER;
    let best = NONE;
    // Tuple space: one probe per (source prefix, destination prefix) of this class.
    const te = this.tupleStart[c + 1];
    const hm = this.hMask;
    const hr = this.hRule;
    for (let t = this.tupleStart[c]; t < te; t++) {
      const s = src & this.tupleMs[t];
      const d = dst & this.tupleMd[t];
      for (let h = tupleHash(t, s, d) & hm; ; h = (h + 1) & hm) {
        const r = hr[h];
        if (r < 0) break;
        if (this.hTuple[h] === t && this.hSrc[h] === s && this.hDst[h] === d) {
          if (r < best) best = r;
          break;
        }
      }
    }
    // The port/type bucket and the residual wildcard rules, each ascending, only below the best so far.
    const b = c === CLASS_OTHER ? 0 : this.keyBucket[CLASS_OFFSET[c] + key];
    best = this.walk(this.bucketRules, this.bucketStart[b], this.bucketStart[b + 1], best, src, dst, bits, srcBase, dstBase);
    best = this.walk(this.wildRules, this.wildStart[c], this.wildStart[c + 1], best, src, dst, bits, srcBase, dstBase);
    return best === NONE ? -1 : best;
  }

  /** The first rule of list[i..end) below `best` whose endpoints match, else `best`. */
  private walk(list: Int32Array, i: number, end: number, best: number, src: number, dst: number, bits: Int32Array, srcBase: number, dstBase: number): number {
    const f = this.from;
    const t = this.to;
    const fk = f.kind;
    const fb = f.base1;
    const fm = f.mask1;
    const tk = t.kind;
    const tb = t.base1;
    const tm = t.mask1;
    for (; i < end; i++) {
      const r = list[i];
      if (r >= best) return best;
      const a = fk[r];
      if (a === KIND_CIDR ? (src & fm[r]) !== fb[r] : a === KIND_GENERAL && !matches(f, r, src, bits, srcBase)) continue;
      const b2 = tk[r];
      if (b2 === KIND_CIDR ? (dst & tm[r]) !== tb[r] : b2 === KIND_GENERAL && !matches(t, r, dst, bits, dstBase)) continue;
      return r;
    }
    return best;
  }

  /** The action of a verdict from `evaluate`. */
  actionOf(rule: number): number {
    return rule < 0 ? this.defaultAction : this.action[rule];
  }
}

const NONE = 0x7fffffff;

function tupleHash(t: number, s: number, d: number): number {
  let h = Math.imul(s ^ 0x9e3779b9, 0xcc9e2d51) ^ d;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ t;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function matches(s: Side, r: number, addr: number, bits: Int32Array, base: number): boolean {
  if (s.any[r] === 1) return true;
  if (base >= 0) {
    const ge = s.groupStart[r + 1];
    for (let k = s.groupStart[r]; k < ge; k++) {
      const g = s.groups[k];
      if ((bits[base + (g >>> 5)] & (1 << (g & 31))) !== 0) return true;
    }
  }
  const ce = s.cidrStart[r + 1];
  for (let k = s.cidrStart[r]; k < ce; k++) if ((addr & s.cidrMask[k]) === s.cidrBase[k]) return true;
  return false;
}

function applies(r: NormalRule, c: number): boolean {
  if (r.proto === 0) return true;
  return classOf(r.proto) === c;
}

function lowerBound(a: number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (a[m] < v) lo = m + 1;
    else hi = m;
  }
  return lo;
}

function side(rules: readonly NormalRule[], pick: (r: NormalRule) => NormalRule['from'], groupId: (name: string) => number): Side {
  const n = rules.length;
  const any = new Uint8Array(n);
  const kind = new Uint8Array(n);
  const base1 = new Int32Array(n);
  const mask1 = new Int32Array(n);
  const groupStart = new Int32Array(n + 1);
  const cidrStart = new Int32Array(n + 1);
  const groups: number[] = [];
  const base: number[] = [];
  const mask: number[] = [];
  rules.forEach((r, i) => {
    const s = pick(r);
    groupStart[i] = groups.length;
    cidrStart[i] = base.length;
    if (s === undefined) {
      any[i] = 1;
      kind[i] = KIND_ANY;
    } else {
      kind[i] = s.groups.length === 0 && s.cidrs.length === 1 ? KIND_CIDR : KIND_GENERAL;
      for (const g of s.groups) groups.push(groupId(g));
      for (const c of s.cidrs) {
        const m = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) | 0;
        mask.push(m);
        base.push(c.base & m);
        base1[i] = c.base & m;
        mask1[i] = m;
      }
    }
  });
  groupStart[n] = groups.length;
  cidrStart[n] = base.length;
  return { kind, base1, mask1, any, groupStart, groups: Int32Array.from(groups), cidrStart, cidrBase: Int32Array.from(base), cidrMask: Int32Array.from(mask) };
}

export type { PolicyAction };
