import { CounterSet, PASS, dropVerdict, type Stage, type StageContext } from '@overlay/dataplane';
import { Conntrack, PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_RST, TCP_SYN, type ConntrackTimeouts } from '../vip/conntrack.js';
import { ACTION_ALLOW, CompiledPolicy } from './compile.js';
import { preparePolicy, type PreparedPolicy } from './compile-off-thread.js';
import { IdentityTable } from './identity.js';
import { FragmentTable } from '../fragments.js';
import { Policy6Path } from './filter6.js';
import {
  AUX_DIR, AUX_GEN, AUX_IDENTITY, AUX_KEY, D_DENIED, D_FRAGMENT, D_FULL, D_MALFORMED, D_NO_FLOW, INSIDE, L4_DPORT, L4_FLAGS, L4_KEY, L4_OK, L4_SPORT, L4_TRACKED, OUTSIDE,
  logged, readL4, recordFlow, revokeFlow, tally,
} from './filter-shared.js';
import { PolicyError, validatePolicy, type Policy } from './rules.js';
import { explainFlow, type Explanation, type FlowQuery } from './explain.js';
import { DecisionLog, type PolicyLogEntry } from './decision-log.js';

export type { Explanation, FlowQuery } from './explain.js';
export type { Direction, PolicyLogEntry } from './decision-log.js';

/**
 * The policy filter: a dataplane `filter` stage per network that enforces a Policy statefully.
 *
 * Direction. `inside` (device → network) is traffic FROM the local workload: its new flows are
 * judged as egress. `outside` (network → device) is traffic TO the local workload: its new flows
 * are judged as ingress. Every host enforces both, so a flow between two hosts with the filter
 * is judged twice with the same rules (egress at its source, ingress at its destination) and a
 * host without it still cannot reach past a host with it.
 *
 * State. The first packet of a flow is judged; an allowed flow is tracked (the VIP's conntrack,
 * src/vip/conntrack.ts, with client = initiator, vip = backend = responder) and every later packet
 * of it passes in its direction, every reply in the other, without consulting the rules. A TCP
 * flow opens only with a SYN without ACK/RST: any other TCP packet of an unknown flow (a SYN-less
 * ACK, a SYN-ACK, a RST, a FIN) is dropped as `no_flow`. UDP and other protocols open on any
 * packet. ICMP echo requests open a flow keyed by their identifier and the matching echo replies
 * are its replies; other ICMP types (errors) and echo replies of no tracked request are judged
 * per packet and open nothing. Timeouts per state are the conntrack's (configurable); a timer expires flows every
 * `tickMs`. Fragments: a first fragment is judged as its datagram; when it passes, the rest of
 * that datagram pass after it (fragments.ts, counted `fragments_passed`); a non-first fragment of
 * no passed first fragment is dropped (`fragment`): it carries no ports to judge.
 * IPv6 is judged the same way by filter6.ts (its own conntrack; ICMPv6 echo tracked, Neighbor
 * Discovery passed as ARP is). Non-IP frames (ARP) pass.
 *
 * Reload. `setPolicy` validates and compiles off to the side, then swaps one reference (a bad
 * policy throws PolicyError and leaves the old one in force). Each tracked flow remembers the
 * generation of the ruleset and of the identity table it was judged under; its next packet under
 * a newer one re-judges the flow's first-packet tuple: still allowed, it goes on untouched;
 * denied, it is removed and that packet dropped — so a flow the new rules deny stops within one
 * packet of the swap, in either direction.
 *
 * Counting. Drops by reason in the stage's `reasons` (the dataplane's stats().stages.policy) and
 * by direction and reason in `counters` (`inside_denied` … on `overlay.services.policy`);
 * per deciding rule (and the default) in the compiled ruleset's `drops`/`allows` arrays, which
 * start at zero with each ruleset. Denials (and allows of rules with `log: true`) go to `log`
 * through a token bucket (`logRate` per second, `logBurst`), suppressions counted.
 */
/** Indexes as D_* in filter6.ts. `tuple_clash`: an IPv6 flow whose address keys collide with another's. */
export const POLICY_DROP_REASONS = ['denied', 'no_flow', 'malformed', 'fragment', 'flow_table_full', 'tuple_clash'] as const;
export type PolicyDropReason = (typeof POLICY_DROP_REASONS)[number];
const NR = POLICY_DROP_REASONS.length;

export const POLICY_COUNTERS = [
  ...POLICY_DROP_REASONS.map((r) => `inside_${r}` as const),
  ...POLICY_DROP_REASONS.map((r) => `outside_${r}` as const),
  'flows_opened',
  'flows_rejudged',
  'flows_revoked',
  'log_written',
  'log_suppressed',
  /** Non-first fragments let through after their first fragment passed (fragments.ts). */
  'fragments_passed',
  /** New flows whose source was identified by the VXLAN-GBP Group Policy ID, not by address. */
  'gbp_identified',
] as const;
export type PolicyCounter = (typeof POLICY_COUNTERS)[number];
export const POLICY_CHANNEL = 'overlay.services.policy';


const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;

/**
 * judge()'s per-packet constants as a same-file const enum, compiled to numbers: imported
 * constants and `Conntrack.AUX` cost a module-binding or property load and a check each, on
 * every packet. Checked against their sources below.
 */
const enum K { PASS = 0, TCP = 6, UDP = 17, AUX = 8, GEN = 0, IDENTITY = 1, DIR = 2 }
if (K.PASS !== PASS || K.TCP !== PROTO_TCP || K.UDP !== PROTO_UDP || K.AUX !== Conntrack.AUX || K.GEN !== AUX_GEN || K.IDENTITY !== AUX_IDENTITY || K.DIR !== AUX_DIR) {
  throw new Error('policy/filter.ts: enum K differs from the constants');
}


export interface PolicyFilterOptions {
  policy: Policy;
  /** Shared with other networks' filters if the agent wants one table. Default: a new one. */
  identity?: IdentityTable;
  /** Flows tracked at most (default 65536). A new allowed flow past it is dropped (`flow_table_full`). */
  capacity?: number;
  timeouts?: Partial<ConntrackTimeouts>;
  /** Expiry granularity, ms (default 1000). */
  tickMs?: number;
  /** Milliseconds (default performance.now). Read per tick and per control call, not per packet. */
  clock?: () => number;
  /** Run the expiry timer (default true; tests call tick()). */
  timers?: boolean;
  /** Where logged decisions go (default: one JSON line on stderr). */
  log?: (e: PolicyLogEntry) => void;
  /** Log entries per second (default 10) and burst (default 20). */
  logRate?: number;
  logBurst?: number;
  /**
   * Write each outgoing packet's Group Policy ID (its source address's, IdentityTable) for a
   * network that sends VXLAN-GBP. Default false: one identity lookup less per packet.
   */
  gbp?: boolean;
}

export class PolicyFilter implements Stage {
  readonly name = 'policy';
  readonly kind = 'filter' as const;
  readonly reasons = POLICY_DROP_REASONS;
  readonly counters = new CounterSet(POLICY_COUNTERS, POLICY_CHANNEL);
  readonly identity: IdentityTable;
  readonly gbp: boolean;
  /** IPv4 flows; IPv6 flows are in `conntrack6`. */
  readonly conntrack: Conntrack;
  readonly conntrack6: Conntrack;
  private readonly v6: Policy6Path;
  /** Datagrams whose first fragment passed, for their later fragments (IPv4 and IPv6). */
  readonly fragments = new FragmentTable();
  /** judgeFragment is having judge() decide a first fragment as its datagram. */
  private firstFragment = false;
  /** The L4 fields of the packet being judged (readL4). */
  private readonly l4 = new Int32Array(5);
  /** The ruleset in force; replaced whole by setPolicy. */
  compiled: CompiledPolicy;
  private generation = 1;
  private vni = -1;
  private now: number;
  private readonly clock: () => number;
  private readonly tickMs: number;
  private readonly timers: boolean;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly decisions: DecisionLog;

  constructor(o: PolicyFilterOptions) {
    this.identity = o.identity ?? new IdentityTable();
    this.gbp = o.gbp ?? false;
    this.clock = o.clock ?? (() => performance.now());
    this.now = this.clock();
    this.tickMs = o.tickMs ?? 1000;
    this.timers = o.timers ?? true;
    this.conntrack = new Conntrack({ capacity: o.capacity ?? 65536, timeouts: o.timeouts, tickMs: this.tickMs, startMs: this.now });
    this.v6 = new Policy6Path(this, { capacity: o.capacity ?? 65536, timeouts: o.timeouts, tickMs: this.tickMs, startMs: this.now });
    this.conntrack6 = this.v6.conntrack;
    const sink = o.log ?? ((e: PolicyLogEntry) => void process.stderr.write(`${JSON.stringify(e)}\n`));
    this.decisions = new DecisionLog(sink, o.logRate ?? 10, o.logBurst ?? 20, this.now, (written) => this.counters.add(written ? this.counters.at.log_written : this.counters.at.log_suppressed));
    this.compiled = new CompiledPolicy(validatePolicy(o.policy), (g) => this.identity.groupId(g), this.generation);
  }

  /** Validate and compile `policy`, then swap it in. Throws PolicyError (old policy kept). */
  setPolicy(policy: Policy): void {
    this.swapIn(new CompiledPolicy(validatePolicy(policy), (g) => this.identity.groupId(g), this.generation + 1));
  }

  /**
   * Validate and compile `policy` for installPolicy, a large one in a worker so that packets
   * keep flowing meanwhile (compile-off-thread.ts). Rejects with PolicyError or PolicyCompileError.
   */
  preparePolicy(policy: Policy): Promise<PreparedPolicy> {
    return preparePolicy(policy, (g) => this.identity.groupId(g));
  }

  /** Swap in a policy preparePolicy made (no compile left but a small one's). */
  installPolicy(p: PreparedPolicy): void {
    this.swapIn(new CompiledPolicy(p.built ?? p.normal!, (g) => this.identity.groupId(g), this.generation + 1));
  }

  private swapIn(next: CompiledPolicy): void {
    this.generation++;
    this.compiled = next;
    this.fragments.clear();
    this.now = this.clock();
  }

  attach(ctx: StageContext): void {
    this.vni = ctx.vni;
    if (this.timers && this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref?.();
    }
  }

  detach(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Read the clock and expire flows (the timer calls it every tickMs). */
  tick(): number {
    this.now = this.clock();
    return this.conntrack.advance(this.now) + this.conntrack6.advance(this.now);
  }

  /** The clock as of the last tick or control call (what packets are timed with). */
  get nowMs(): number {
    return this.now;
  }

  inside(ctx: StageContext, slot: number): number {
    return this.judge(ctx, slot, INSIDE);
  }

  outside(ctx: StageContext, slot: number): number {
    return this.judge(ctx, slot, OUTSIDE);
  }

  /** Count a drop (direction, reason index) and return its verdict. */
  dropAs(dir: number, reason: number): number {
    this.counters.add(dir * NR + reason, 1, this.vni);
    return dropVerdict(reason);
  }

  /**
   * Where the source's groups are in the identity bitsets: from the Group Policy ID the packet
   * arrived with (VXLAN-GBP, no address lookup), else by its address. An ID nobody declared
   * stands for no groups.
   */
  private sourceIdentity(pool: StageContext['pool'], slot: number, src: number, dir: number): number {
    const gbp = dir === OUTSIDE ? pool.group[slot] : -1;
    if (gbp >= 0) {
      this.counters.add(this.counters.at.gbp_identified);
      return this.identity.lookupGroupPolicy(gbp);
    }
    return this.identity.lookup(src);
  }

  private judge(ctx: StageContext, slot: number, dir: number): number {
    const et = ctx.etherType;
    if (et !== 0x0800) return et === 0x86dd ? this.v6.judge(ctx, slot, dir) : K.PASS;
    const pool = ctx.pool;
    const d = pool.data;
    // The header's fields read whole (one bounds check each), not byte by byte.
    const v = pool.view;
    const l3 = ctx.l3;
    const end = pool.off[slot] + pool.len[slot];
    if (l3 + 20 > end) return this.dropAs(dir, D_MALFORMED);
    const w0 = v.getInt32(l3); // version, IHL, DSCP/ECN, total length
    const hl = (w0 >>> 22) & 0x3c;
    const total = w0 & 0xffff;
    if (w0 >>> 28 !== 4 || hl < 20 || total < hl || l3 + total > end) return this.dropAs(dir, D_MALFORMED);
    const ff = v.getUint16(l3 + 6);
    // A fragment (MF set or an offset): judgeFragment (the first is judged here, as its datagram).
    if ((ff & 0x3fff) !== 0 && !this.firstFragment) return this.judgeFragment(ctx, slot, dir, ff);
    const proto = d[l3 + 9];
    const src = v.getInt32(l3 + 12);
    const dst = v.getInt32(l3 + 16);
    // Identity on the wire: the sender's Group Policy ID, sent where the network speaks GBP.
    if (this.gbp && dir === INSIDE) pool.group[slot] = this.identity.groupPolicyOf(src);
    let sport: number;
    let dport: number;
    let flags = 0;
    let tracked = true;
    const l4 = l3 + hl;
    if (proto === K.TCP || proto === K.UDP) {
      // Most packets: the ports read here, not through readL4's array (the established path's cost).
      if (l4 + (proto === K.TCP ? 20 : 8) > l3 + total) return this.dropAs(dir, D_MALFORMED);
      const ports = v.getInt32(l4);
      sport = ports >>> 16;
      dport = ports & 0xffff;
      if (proto === K.TCP) flags = d[l4 + 13];
    } else {
      const l4f = this.l4;
      if (readL4(d, l4, l3 + total, proto, PROTO_ICMP, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, l4f) !== L4_OK) return this.dropAs(dir, D_MALFORMED);
      sport = l4f[L4_SPORT];
      dport = l4f[L4_DPORT];
      tracked = l4f[L4_TRACKED] === 1;
    }

    const ct = this.conntrack;
    const aux = ct.aux;
    if (tracked) {
      let e = ct.find(proto, src, dst, sport, dport);
      let reply = false;
      if (e >= 0 && aux[e * K.AUX + K.DIR] !== dir) e = -1;
      if (e < 0) {
        e = ct.findReply(proto, src, dst, sport, dport);
        if (e >= 0 && aux[e * K.AUX + K.DIR] === dir) e = -1;
        reply = e >= 0;
      }
      if (e >= 0) {
        const c = this.compiled;
        const a = e * K.AUX;
        const id = this.identity;
        if (aux[a + K.GEN] !== c.generation || aux[a + K.IDENTITY] !== id.version) {
          // Re-judge the flow as first seen: its initiator, responder, protocol and key.
          this.counters.add(this.counters.at.flows_rejudged);
          const client = ct.client[e];
          const server = ct.vip[e];
          const okey = aux[a + AUX_KEY];
          const r = c.evaluate(proto, client, server, okey, id, id.lookup(client), id.lookup(server));
          if (c.actionOf(r) !== ACTION_ALLOW) {
            const cport = revokeFlow(ct, e, this.counters, c, dir, r);
            if (logged(c, r, 0)) this.writeLog(dir, 0, proto, client, server, cport, okey, r);
            return this.dropAs(dir, D_DENIED);
          }
          recordFlow(aux, e, c, id.version, aux[a + AUX_DIR], r, okey);
        }
        ct.observe(e, reply, flags, this.now);
        return K.PASS;
      }
      if (proto === PROTO_TCP && (flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) return this.dropAs(dir, D_NO_FLOW);
      // An echo reply of no tracked request is judged alone and opens nothing (else an allowed
      // stray reply would let the other side's echo requests in as its "replies").
      if (proto === PROTO_ICMP && this.l4[L4_KEY] === ICMP_ECHO_REPLY) tracked = false;
    }

    const key = proto === PROTO_TCP || proto === PROTO_UDP ? dport : this.l4[L4_KEY];
    const c = this.compiled;
    const id = this.identity;
    const r = c.evaluate(proto, src, dst, key, id, this.sourceIdentity(pool, slot, src, dir), id.lookup(dst));
    const allow = tally(c, dir, r);
    if (logged(c, r, allow)) this.writeLog(dir, allow, proto, src, dst, sport, key, r);
    if (allow === 0) return this.dropAs(dir, D_DENIED);
    if (!tracked) return PASS;
    const e = ct.open(proto, src, dst, sport, dport, dst, flags, this.now);
    if (e < 0) return this.dropAs(dir, D_FULL);
    recordFlow(aux, e, c, id.version, dir, r, key);
    this.counters.add(this.counters.at.flows_opened);
    return PASS;
  }

  /**
   * An IPv4 fragment. A later one passes only when its datagram's first fragment did; the first is
   * judged by judge() as the datagram (its L4 header is whole) and, when it passes, remembered.
   * Off the per-packet path: an unfragmented packet never comes here.
   */
  private judgeFragment(ctx: StageContext, slot: number, dir: number, ff: number): number {
    const d = ctx.pool.data;
    const l3 = ctx.l3;
    const proto = d[l3 + 9];
    const src = (d[l3 + 12] << 24) | (d[l3 + 13] << 16) | (d[l3 + 14] << 8) | d[l3 + 15];
    const dst = (d[l3 + 16] << 24) | (d[l3 + 17] << 16) | (d[l3 + 18] << 8) | d[l3 + 19];
    const ident = (d[l3 + 4] << 8) | d[l3 + 5];
    if ((ff & 0x1fff) !== 0) {
      if (!this.fragments.passes(src, dst, ident, proto, dir, 0, this.now)) return this.dropAs(dir, D_FRAGMENT);
      if (this.gbp && dir === INSIDE) ctx.pool.group[slot] = this.identity.groupPolicyOf(src);
      this.counters.add(this.counters.at.fragments_passed);
      return PASS;
    }
    this.firstFragment = true;
    let v: number;
    try {
      v = this.judge(ctx, slot, dir);
    } finally {
      this.firstFragment = false;
    }
    if (v === PASS) this.fragments.remember(src, dst, ident, proto, dir, 0, this.now);
    return v;
  }

  /** Log an IPv4 decision (decision-log.ts: rate-limited; allocates only for an entry written). */
  private writeLog(dir: number, allow: number, proto: number, src: number, dst: number, sport: number, dport: number, r: number): void {
    this.decisions.write4(this.now, this.vni, this.compiled, dir, allow, proto, src, dst, sport, dport, r);
  }

  /** Log an IPv6 decision (addresses at buf[srcAt], buf[dstAt]). */
  log6(dir: number, allow: number, proto: number, buf: Uint8Array, srcAt: number, dstAt: number, sport: number, dport: number, r: number): void {
    this.decisions.write6(this.now, this.vni, this.compiled, dir, allow, proto, buf, srcAt, dstAt, sport, dport, r);
  }

  /** `policy explain <flow>`: the deciding tier, rule and action for a new flow like `q`, now. */
  explain(q: FlowQuery): Explanation {
    return explainFlow(this.compiled, this.identity, q);
  }

  /** Drops and allows per rule id of the ruleset in force (and `(default)`), by direction. Allocates. */
  ruleCounters(): Record<string, { inside: { drops: number; allows: number }; outside: { drops: number; allows: number } }> {
    const c = this.compiled;
    const out: ReturnType<PolicyFilter['ruleCounters']> = {};
    const n = c.size;
    for (let i = 0; i <= n; i++) {
      out[i < n ? c.ids[i] : '(default)'] = {
        inside: { drops: c.drops[i], allows: c.allows[i] },
        outside: { drops: c.drops[n + 1 + i], allows: c.allows[n + 1 + i] },
      };
    }
    return out;
  }

  /** `flows` counts both families; `conntrack` is the IPv4 table's counters, `conntrack6` the IPv6 one's. */
  stats(): { generation: number; rules: number; flows: number; counters: Record<PolicyCounter, number>; conntrack: Record<string, number>; conntrack6: Record<string, number> } {
    return {
      generation: this.compiled.generation,
      rules: this.compiled.size,
      flows: this.conntrack.size + this.conntrack6.size,
      counters: this.counters.snapshot(),
      conntrack: this.conntrack.counters.snapshot(),
      conntrack6: this.conntrack6.counters.snapshot(),
    };
  }
}

export { TCP_ACK, TCP_SYN, TCP_RST };
