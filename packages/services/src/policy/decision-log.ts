import { InvalidConfigError, formatIpAddress, formatIpv4Address } from '@overlay/dataplane';
import type { CompiledPolicy } from './compile.js';
import { INSIDE } from './filter-shared.js';
import type { Tier } from './rules.js';

export type Direction = 'inside' | 'outside';

/** One logged policy decision (a denial, or an allow of a rule with `log: true`). */
export interface PolicyLogEntry {
  /** Clock time (ms) of the decision. */
  time: number;
  vni: number;
  direction: Direction;
  action: 'allow' | 'deny';
  proto: number;
  src: string;
  dst: string;
  sport: number;
  /** Destination port (TCP/UDP) or ICMP type. */
  dport: number;
  tier: Tier | 'default';
  ruleId: string | null;
}

/**
 * The policy filter's log of decisions: a token bucket (`rate` entries per second, `burst`) in
 * front of the sink, so a flood of denials costs a counter each, not a line each. `count(true)`
 * per entry written, `count(false)` per entry suppressed. Nothing is allocated for a suppressed
 * entry; an entry written allocates its strings and object.
 */
export class DecisionLog {
  private tokens: number;
  private tokensAt: number;

  constructor(
    private readonly sink: (e: PolicyLogEntry) => void,
    private readonly rate: number,
    private readonly burst: number,
    startMs: number,
    private readonly count: (written: boolean) => void,
  ) {
    if (!(rate >= 0) || !(burst >= 0)) throw new InvalidConfigError('logRate', 'logRate and logBurst must be ≥ 0');
    this.tokens = burst;
    this.tokensAt = startMs;
  }

  /** Whether an entry may be written at `now` (ms), taking its token; counted either way. */
  private take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.tokensAt) * this.rate) / 1000);
    this.tokensAt = now;
    const ok = this.tokens >= 1;
    if (ok) this.tokens -= 1;
    this.count(ok);
    return ok;
  }

  /** An IPv4 decision of rule `r` (−1: the default) of `c`. */
  write4(now: number, vni: number, c: CompiledPolicy, dir: number, allow: number, proto: number, src: number, dst: number, sport: number, dport: number, r: number): void {
    if (this.take(now)) this.emit(now, vni, c, dir, allow, proto, formatIpv4Address(src >>> 0), formatIpv4Address(dst >>> 0), sport, dport, r);
  }

  /** An IPv6 decision, the addresses at buf[srcAt] and buf[dstAt]. */
  write6(now: number, vni: number, c: CompiledPolicy, dir: number, allow: number, proto: number, buf: Uint8Array, srcAt: number, dstAt: number, sport: number, dport: number, r: number): void {
    if (this.take(now)) this.emit(now, vni, c, dir, allow, proto, formatIpAddress(6, buf, srcAt), formatIpAddress(6, buf, dstAt), sport, dport, r);
  }

  private emit(now: number, vni: number, c: CompiledPolicy, dir: number, allow: number, proto: number, src: string, dst: string, sport: number, dport: number, r: number): void {
    this.sink({
      time: now,
      vni,
      direction: dir === INSIDE ? 'inside' : 'outside',
      action: allow === 1 ? 'allow' : 'deny',
      proto,
      src,
      dst,
      sport,
      dport,
      tier: r < 0 ? 'default' : c.tiers[r],
      ruleId: r < 0 ? null : c.ids[r],
    });
  }
}
