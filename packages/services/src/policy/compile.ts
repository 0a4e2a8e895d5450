import type { NormalPolicy, NormalRule, PolicyAction, Tier } from './rules.js';

/**
 * The compiled evaluator: (protocol, source, destination, destination port or ICMP type, the
 * two addresses' group bitsets) → the index of the deciding rule, or -1 for the default, with no
 * allocation.
 *
 * Layout. Packets fall in four protocol classes: TCP (key: destination port), UDP (port), ICMP
 * (key: type) and every other protocol (one key). Per class, the rules that apply to it are split
 * in two lists of rule indices, each ascending:
 *
 * - the class's wildcard list: rules with proto `any`, or this class's proto without ports/types;
 * - per key, a bucket of the rules whose port ranges (ICMP types) contain the key. Keys are mapped
 *   to buckets by one Int32Array per class (65536 entries for TCP and UDP, 256 for ICMP); the key
 *   space is cut at every range boundary into elementary intervals, and identical candidate
 *   lists share one bucket.
 *
 * A verdict walks the two ascending lists merged, in rule order, and tests each candidate's
 * endpoints (groups by bit in the address's bitset, CIDRs by mask); the first candidate that
 * matches is the first matching rule of the whole list, because every rule the two lists leave
 * out cannot match this protocol and key. The cost is the number of candidates before the
 * decision: rules that name other ports cost nothing. The worst case — thousands of wildcard
 * rules on the same protocol that do not match — is linear in them (bench/micro-policy.ts
 * measures both).
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
  /** Per class: [start, end) into wildRules. */
  private readonly wildStart: Int32Array;
  private readonly wildRules: Int32Array;

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
    this.wildStart = new Int32Array(5);
    const wildFlat: number[] = [];
    for (let c = 0; c < 4; c++) {
      this.wildStart[c] = wildFlat.length;
      for (const i of wild[c]) wildFlat.push(i);
    }
    this.wildStart[4] = wildFlat.length;
    this.wildRules = Int32Array.from(wildFlat);

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
    const b = c === CLASS_OTHER ? 0 : this.keyBucket[CLASS_OFFSET[c] + key];
    let i = this.bucketStart[b];
    const iEnd = this.bucketStart[b + 1];
    let w = this.wildStart[c];
    const wEnd = this.wildStart[c + 1];
    const br = this.bucketRules;
    const wr = this.wildRules;
    const f = this.from;
    const t = this.to;
    const fk = f.kind;
    const fb = f.base1;
    const fm = f.mask1;
    const tk = t.kind;
    const tb = t.base1;
    const tm = t.mask1;
    while (i < iEnd || w < wEnd) {
      let r: number;
      if (w >= wEnd || (i < iEnd && br[i] < wr[w])) r = br[i++];
      else r = wr[w++];
      const a = fk[r];
      if (a === KIND_CIDR ? (src & fm[r]) !== fb[r] : a === KIND_GENERAL && !matches(f, r, src, bits, srcBase)) continue;
      const b2 = tk[r];
      if (b2 === KIND_CIDR ? (dst & tm[r]) !== tb[r] : b2 === KIND_GENERAL && !matches(t, r, dst, bits, dstBase)) continue;
      return r;
    }
    return -1;
  }

  /** The action of a verdict from `evaluate`. */
  actionOf(rule: number): number {
    return rule < 0 ? this.defaultAction : this.action[rule];
  }
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
