import {
  ARP_LENGTH, ARP_REQUEST, CounterSet, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, InvalidConfigError, PASS, PairTable, REPLY, dropVerdict, formatIpAddress, isEthernetIpv4Arp, parseIpAddress,
  rewriteArpRequestAsReply, type Stage, type StageContext,
} from '@overlay/dataplane';
import { Conntrack, OPEN_FULL, PROTO_ICMP, PROTO_TCP, PROTO_UDP, ST_TCP_CLOSING, ST_TCP_SYN, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type ConntrackTimeouts } from './conntrack.js';
import { MAGLEV_SIZE, flowHash } from './maglev.js';
import { A_BE_HI, A_BE_LO, A_CLI_HI, A_CLI_LO, A_CLI_NXT, A_SRV_NXT, A_VIP_HI, A_VIP_LO, VIP_COUNTERS, VIP_DROP_REASONS, setFlowMacs, type VipCounter, type VipDropReason } from './shared.js';
import { addressKey6, equal16, ipv4Total, read32, tcpSeqEnd } from './packet.js';
import { Vip6Path } from './translator6.js';
import { FragmentTable } from '../fragments.js';
import { isIcmpError, newQuoted, quoted, rewriteIcmpError } from './icmp-error.js';
import { rewriteIpv4Address, viewOf, writeMacView, writeRst } from './rewrite.js';
import { BACKEND_DOWN, BACKEND_DRAINING, VipService, compileBackends, type Backend, type VipSpec } from './service.js';

export { VIP_COUNTERS, VIP_DROP_REASONS, type VipCounter, type VipDropReason };

/**
 * The hot path's constants as a same-file const enum, which TypeScript and esbuild compile to the
 * numbers themselves. Node 20's V8 loads an imported or module-level binding from its cell (with
 * a hole check) on every use: this enum took 4 % off the instructions per packet (callgrind,
 * bench/run.sh vip-callgrind). Checked against their definitions when this module loads.
 */
const enum H {
  PASS = 0, REPLY = 1, IPV4 = 0x0800, ARP = 0x0806, IPV6 = 0x86dd,
  ICMP = 1, TCP = 6, UDP = 17, FIN = 0x01, SYN = 0x02, RST = 0x04, ACK = 0x10, CLOSING = 3,
  CLI_HI = 0, CLI_LO = 1, BE_HI = 2, BE_LO = 3, CLI_NXT = 4, SRV_NXT = 5, VIP_HI = 6, VIP_LO = 7,
  MAGLEV_SIZE = 65537, OPEN_FULL = -1,
}
const CHECK: [number, number][] = [
  [H.PASS, PASS], [H.REPLY, REPLY], [H.IPV4, ETHERTYPE_IPV4], [H.ARP, ETHERTYPE_ARP], [H.IPV6, ETHERTYPE_IPV6],
  [H.ICMP, PROTO_ICMP], [H.TCP, PROTO_TCP], [H.UDP, PROTO_UDP], [H.FIN, TCP_FIN], [H.SYN, TCP_SYN], [H.RST, TCP_RST], [H.ACK, TCP_ACK], [H.CLOSING, ST_TCP_CLOSING],
  [H.CLI_HI, A_CLI_HI], [H.CLI_LO, A_CLI_LO], [H.BE_HI, A_BE_HI], [H.BE_LO, A_BE_LO], [H.CLI_NXT, A_CLI_NXT], [H.SRV_NXT, A_SRV_NXT], [H.VIP_HI, A_VIP_HI], [H.VIP_LO, A_VIP_LO],
  [H.MAGLEV_SIZE, MAGLEV_SIZE], [H.OPEN_FULL, OPEN_FULL],
];
if (CHECK.some(([a, b]) => a !== b)) throw new Error('vip/translator.ts: the hot-path constants (enum H) differ from their definitions');
const D = Object.fromEntries(VIP_DROP_REASONS.map((r, i) => [r, dropVerdict(i)])) as Record<VipDropReason, number>;
/** Fragment table directions: client → VIP, backend → client. */
const IN = 0;
const OUT = 1;


export interface VipTranslatorOptions {
  /** Flows tracked at most (default 65536). A full table refuses new flows, counted as `table_full`. */
  capacity?: number;
  timeouts?: Partial<ConntrackTimeouts>;
  /** How long a draining backend keeps its flows (default 30 s); then they are reset. */
  drainMs?: number;
  /** Expiry and drain granularity (default 250 ms). */
  tickMs?: number;
  /** Milliseconds (default performance.now). Tests pass a fake clock. */
  clock?: () => number;
  /** Run the tick on a timer while attached (default true). Tests call `tick()` themselves. */
  timers?: boolean;
}

/**
 * The VIP translator stage ('vip', kind translator) for one network. inside: an IPv4 TCP, UDP or
 * ICMP echo packet to a VIP gets a flow — found in the conntrack, or picked by the VIP's Maglev
 * table over its healthy backends and tracked — and its destination address and MAC are
 * rewritten to the backend's (checksums updated incrementally); the FDB lookup that follows
 * sends it to the backend's host. ARP requests for a VIP are answered with the VIP's MAC.
 * outside: a packet from a backend on a tracked flow gets the VIP back as its source address
 * and MAC before it reaches the client's device; so does an ICMP error about one of its packets
 * (icmp-error.ts). A flow to a `local` backend is hairpinned: the source is rewritten to the VIP
 * too and the frame goes back to the device (REPLY); the backend's reply, addressed to the VIP,
 * is translated back on inside. IPv6 VIPs (ND instead of ARP) take the same paths in
 * translator6.ts. Everything else passes untouched; a packet to a VIP that cannot be translated
 * is dropped under one of `VIP_DROP_REASONS`.
 *
 * Health: `setVip` rebuilds the table at once, so a backend that turns down or is removed gets
 * no new flow from that call on, and each of its TCP flows gets a RST written to the client's
 * device (its UDP/ICMP flows are forgotten); a draining backend gets no new flows and keeps its
 * own until the drain timeout, then they are reset the same way. Allocation-free per packet.
 */
export class VipTranslator implements Stage {
  readonly name = 'vip';
  readonly kind = 'translator';
  readonly reasons = VIP_DROP_REASONS;
  readonly conntrack: Conntrack;
  readonly counters = new CounterSet(VIP_COUNTERS);
  /** Same counts as the dataplane keeps for this stage, so the translator can report alone. */
  readonly drops = new CounterSet(VIP_DROP_REASONS);
  readonly drainMs: number;
  readonly tickMs: number;
  private readonly clock: () => number;
  private readonly timers: boolean;
  // The tables below are shared with the IPv6 path (translator6.ts); keys (0, IPv4 address) or (6, addressKey6).
  /** vip → index in `services`. */
  readonly vipIndex = new PairTable(4096, 16);
  /** backend → how many VIPs list it (outside's quick test). */
  readonly backendIndex = new PairTable(1 << 20, 16);
  /** backend → how many VIPs list it as local (inside's hairpin-reply test; empty: skipped). */
  readonly localIndex = new PairTable(1 << 20, 16);
  readonly services: (VipService | undefined)[] = [];
  /** The IPv6 path, made with the first IPv6 VIP. */
  v6: Vip6Path | undefined;
  private readonly options: VipTranslatorOptions;
  private readonly quote = newQuoted();
  private ctx: StageContext | undefined;
  /** The pool's bytes as a DataView (`view`), made once per pool. */
  private dvData: Uint8Array | undefined;
  private dv: DataView = new DataView(new ArrayBuffer(0));
  private timer: NodeJS.Timeout | undefined;
  /** The clock as of the last tick or control call: one read per tick, not per packet. */
  now: number;
  /** IPv4 datagrams whose first fragment was translated: their later fragments follow its flow. */
  readonly fragments = new FragmentTable();

  constructor(o: VipTranslatorOptions = {}) {
    this.clock = o.clock ?? (() => performance.now());
    this.timers = o.timers ?? true;
    this.drainMs = o.drainMs ?? 30_000;
    this.tickMs = o.tickMs ?? 250;
    if (!(this.drainMs >= 0 && this.drainMs <= 2 ** 40)) throw new InvalidConfigError('drainMs', `must be a non-negative number of ms, got ${this.drainMs}`);
    this.now = this.clock();
    this.options = o;
    this.conntrack = new Conntrack({ capacity: o.capacity ?? 65536, timeouts: o.timeouts, tickMs: this.tickMs, startMs: this.now });
  }

  attach(ctx: StageContext): void {
    this.ctx = ctx;
    if (this.timers) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  detach(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.ctx = undefined;
  }

  /** Read the clock, expire flows, end drains whose time is up. The timer calls it every tickMs. */
  tick(): void {
    const now = (this.now = this.clock());
    this.conntrack.advance(now);
    this.v6?.conntrack.advance(now);
    for (const svc of this.services) {
      if (svc === undefined) continue;
      for (const b of svc.backends) {
        if (b.state === BACKEND_DRAINING && b.drainUntil >= 0 && b.drainUntil <= now) {
          b.drainUntil = -1;
          this.counters.add(this.counters.at.drains_expired);
          this.resetFlows(svc, new Set([b.ip]));
        }
      }
    }
  }

  /** Install or replace the VIP `spec.vip` (typed `VipConfigError` on a bad spec). */
  setVip(spec: VipSpec): void {
    this.now = this.clock();
    if (spec?.endpointMode === 'dnsrr') {
      if (typeof spec.vip === 'string') this.removeVip(spec.vip);
      return;
    }
    const prevAt = typeof spec?.vip === 'string' ? this.findVip(spec.vip) : -1;
    const previous = prevAt >= 0 ? this.services[prevAt] : undefined;
    const backends = compileBackends(spec, previous, this.now, this.drainMs);
    const svc = new VipService(spec, backends, previous);
    if (svc.family === 6 && this.v6 === undefined) {
      const o = this.options;
      this.v6 = new Vip6Path(this, { capacity: this.conntrack.capacity, timeouts: o.timeouts, tickMs: this.tickMs, startMs: this.now });
    }
    let at = prevAt;
    if (at < 0) {
      at = this.services.indexOf(undefined);
      if (at < 0) at = this.services.length;
      const e = this.vipIndex.insert(svc.family === 6 ? 6 : 0, svc.vip);
      if (e < 0) throw new InvalidConfigError('vip', `at most ${this.vipIndex.maxEntries} VIPs per network`);
      this.vipIndex.va[e] = at;
    }
    for (const b of svc.backends) this.refBackend(svc, b, 1);
    if (previous) for (const b of previous.backends) this.refBackend(previous, b, -1);
    this.services[at] = svc;
    // Flows of backends now down or gone are reset; draining ones keep theirs (drainUntil).
    if (previous) {
      const gone = new Set<number>();
      for (const b of previous.backends) {
        const now = svc.backendByIp(b.ip);
        if (now === undefined || now.state === BACKEND_DOWN) gone.add(b.ip);
      }
      for (const b of svc.backends) if (b.state === BACKEND_DRAINING && b.drainUntil <= this.now) gone.add(b.ip);
      if (gone.size > 0) this.resetFlows(svc, gone);
    }
  }

  /** Remove a VIP: its TCP flows are reset, the rest forgotten. Unknown VIPs are ignored. */
  removeVip(vip: string): void {
    const at = this.findVip(vip);
    if (at < 0) return;
    const svc = this.services[at]!;
    this.services[at] = undefined;
    this.vipIndex.remove(svc.family === 6 ? 6 : 0, svc.vip);
    for (const b of svc.backends) this.refBackend(svc, b, -1);
    this.resetFlows(svc, new Set(svc.backends.map((b) => b.ip)));
  }

  vips(): string[] {
    return this.services.filter((s) => s !== undefined).map((s) => formatIpAddress(s.family, s.vipBytes));
  }

  stats(): { flows: number; capacity: number; vips: number; counters: Record<VipCounter, number>; drops: Record<VipDropReason, number>; conntrack: ReturnType<Conntrack['counters']['snapshot']> } {
    return {
      flows: this.conntrack.size + (this.v6?.conntrack.size ?? 0),
      capacity: this.conntrack.capacity,
      vips: this.services.filter((s) => s !== undefined).length,
      counters: this.counters.snapshot(),
      drops: this.drops.snapshot(),
      conntrack: this.conntrack.counters.snapshot(),
    };
  }

  private findVip(vip: string): number {
    let a: ReturnType<typeof parseIpAddress>;
    try {
      a = parseIpAddress(vip);
    } catch {
      return -1;
    }
    const e = a.family === 4 ? this.vipIndex.find(0, read32(a.bytes, 0)) : this.vipIndex.find(6, addressKey6(a.bytes, 0));
    return e < 0 ? -1 : this.vipIndex.va[e];
  }

  private refBackend(svc: VipService, b: Backend, delta: number): void {
    const f = svc.family === 6 ? 6 : 0;
    refCount(this.backendIndex, f, b.ip, delta);
    if (b.local) refCount(this.localIndex, f, b.ip, delta);
  }

  /** Count a drop reason; its verdict. (The IPv6 path's drops.) */
  dropAs(reason: VipDropReason): number {
    return this.drop(D[reason]);
  }

  /** RST every TCP flow from `svc`'s VIP to a backend in `ips` towards its client; forget every such flow. One scan (control path). */
  private resetFlows(svc: VipService, ips: ReadonlySet<number>): void {
    const v6 = svc.family === 6 ? this.v6 : undefined;
    const ct = v6 ? v6.conntrack : this.conntrack;
    ct.forEach((e) => {
      if (ct.vip[e] !== svc.vip || !ips.has(ct.backend[e]) || (v6 && !equal16(v6.vipOf(e), 0, svc.vipBytes, 0))) return;
      if (ct.proto[e] === PROTO_TCP && ct.state[e] !== ST_TCP_CLOSING) this.sendRst(e, v6);
      ct.remove(e);
      this.counters.add(this.counters.at.flows_reset);
    });
  }

  private sendRst(e: number, v6: Vip6Path | undefined): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const pool = ctx.pool;
    const slot = pool.acquire();
    if (slot < 0) {
      this.counters.add(this.counters.at.rst_no_slot);
      return;
    }
    if (v6) {
      pool.len[slot] = v6.writeRst(e, pool.data, pool.off[slot]);
      this.counters.add(this.counters.at.rst_sent);
      ctx.toDevice(slot);
      return;
    }
    const ct = this.conntrack;
    const a = e * Conntrack.AUX;
    const hi = ct.aux[a + A_VIP_HI];
    const lo = ct.aux[a + A_VIP_LO];
    // Before the backend answered, the client is in SYN-SENT and takes a RST whose ACK covers its SYN.
    const seq = ct.state[e] === ST_TCP_SYN ? 0 : ct.aux[a + A_SRV_NXT];
    pool.len[slot] = writeRst(pool.data, pool.off[slot], ct.aux[a + A_CLI_HI], ct.aux[a + A_CLI_LO], hi, lo, ct.vip[e], ct.client[e], ct.vipPort[e], ct.clientPort[e], seq, ct.aux[a + A_CLI_NXT]);
    this.counters.add(this.counters.at.rst_sent);
    ctx.toDevice(slot);
  }

  /** A DataView over `d`, the pool's bytes (made when the pool is first seen). */
  view(d: Uint8Array): DataView {
    if (d !== this.dvData) {
      this.dvData = d;
      this.dv = viewOf(d);
    }
    return this.dv;
  }

  private drop(verdict: number): number {
    this.drops.add(-1 - verdict);
    return verdict;
  }

  inside(ctx: StageContext, slot: number): number {
    const et = ctx.etherType;
    if (et !== H.IPV4) {
      if (et === H.ARP) return this.answerArp(ctx, slot);
      return et === H.IPV6 && this.v6 !== undefined ? this.v6.inside(ctx, slot) : H.PASS;
    }
    const pool = ctx.pool;
    const d = pool.data;
    const v = d === this.dvData ? this.dv : this.view(d);
    const l3 = ctx.l3;
    const off = pool.off[slot];
    const end = off + pool.len[slot];
    if (l3 + 20 > end) return H.PASS;
    const dst = v.getInt32(l3 + 16);
    const vi = this.vipIndex.find(0, dst);
    if (vi < 0) {
      if (d[l3 + 9] === H.TCP && this.backendIndex.find(0, dst) >= 0) this.supersede(d, l3, end, v.getInt32(l3 + 12), dst);
      return H.PASS;
    }
    const svc = this.services[this.vipIndex.va[vi]]!;
    // Ours from here on: every failure is a counted drop.
    const total = ipv4Total(d, l3, end);
    if (total < 0) return this.drop(D.malformed);
    const frag = v.getUint16(l3 + 6) & 0x3fff;
    // A fragment: a later one follows its datagram's first (laterFragment); a first of UDP or ICMP is translated below and remembered.
    if (frag !== 0 && ((frag & 0x1fff) !== 0 || d[l3 + 9] === H.TCP)) return (frag & 0x1fff) !== 0 ? this.laterFragment(ctx, slot, l3, IN) : this.drop(D.fragment);
    const proto = d[l3 + 9];
    const ihl = (d[l3] & 0x0f) << 2;
    const l4 = l3 + ihl;
    const l4len = total - ihl;
    let sport: number;
    let dport = 0;
    let flags = 0;
    if (proto === H.TCP) {
      if (l4len < 20) return this.drop(D.malformed);
      flags = d[l4 + 13];
    } else if (proto === H.UDP || proto === H.ICMP) {
      if (l4len < 8) return this.drop(D.malformed);
    } else return this.drop(D.unsupported_protocol);
    if (proto === H.ICMP) sport = v.getUint16(l4 + 4);
    else {
      const ports = v.getInt32(l4);
      sport = ports >>> 16;
      dport = ports & 0xffff;
    }
    const src = v.getInt32(l3 + 12);
    const ct = this.conntrack;
    // From a local backend to the VIP: the reply of a hairpin flow (the client was source-NATed to the VIP).
    if (this.localIndex.size > 0 && this.localIndex.find(0, src) >= 0) {
      const r = proto === H.ICMP ? (d[l4] === 0 ? ct.findReply(proto, src, dst, 0, sport) : -1) : ct.findReply(proto, src, dst, sport, dport);
      if (r >= 0) return this.hairpinReply(ctx, slot, r, proto, l3, l4, l4len, flags);
    }
    if (proto === H.ICMP) {
      if (d[l4] !== 8) return this.drop(D.unsupported_protocol); // echo requests only
    } else if (!svc.portOpen(dport)) return this.drop(D.port_closed);
    const now = this.now;
    let e = ct.find(proto, src, dst, sport, dport);
    // A new connection reusing the ports of one that is closing gets a fresh pick.
    if (e >= 0 && proto === H.TCP && ct.state[e] === H.CLOSING && (flags & (H.SYN | H.ACK)) === H.SYN) {
      ct.remove(e);
      e = -1;
    }
    const aux = ct.aux;
    const fresh = e < 0;
    if (fresh) {
      const b = svc.table[flowHash(proto, src, sport, dport) % H.MAGLEV_SIZE];
      if (b < 0) return this.drop(D.no_backend);
      e = ct.open(proto, src, dst, sport, dport, svc.healthyIp[b], flags, now, svc.healthyLocal[b] === 1 ? dst : src);
      if (e < 0) return this.drop(e === H.OPEN_FULL ? D.table_full : D.tuple_clash);
      setFlowMacs(aux, e * Conntrack.AUX, d, off + 6, svc, b);
    } else ct.observe(e, false, flags, now);
    const a = e * Conntrack.AUX;
    if (proto === H.TCP) {
      // End of this segment in sequence space (payload + SYN + FIN; packet.ts tcpSeqEnd, written out on the hot path). Kept when it is ahead.
      const seqEnd = (v.getInt32(l4 + 4) + (l4len - ((d[l4 + 12] >>> 4) << 2)) + (flags & H.SYN ? 1 : 0) + (flags & H.FIN ? 1 : 0)) | 0;
      if (fresh || ((flags & H.RST) === 0 && ((seqEnd - aux[a + H.CLI_NXT]) | 0) > 0)) aux[a + H.CLI_NXT] = seqEnd;
    }
    writeMacView(v, off, aux[a + H.BE_HI], aux[a + H.BE_LO]);
    rewriteIpv4Address(v, l3, 16, dst, ct.backend[e], proto, l4);
    this.counters.values[0]++; // translated_inside (an event counter: no channel to publish on)
    if (ct.peer[e] === src) {
      if (frag !== 0) this.fragments.remember(src, dst, v.getUint16(l3 + 4), proto, IN, 0, now, e);
      return H.PASS;
    }
    // Hairpin: the backend is on this host. From the VIP, back to the device.
    writeMacView(v, off + 6, aux[a + H.VIP_HI], aux[a + H.VIP_LO]);
    rewriteIpv4Address(v, l3, 12, src, dst, proto, l4);
    this.counters.add(this.counters.at.hairpinned);
    return H.REPLY;
  }

  /** A local backend's packet to the VIP on hairpin flow `e`: from the VIP to the client, back to the device. */
  private hairpinReply(ctx: StageContext, slot: number, e: number, proto: number, l3: number, l4: number, l4len: number, flags: number): number {
    const ct = this.conntrack;
    const d = ctx.pool.data;
    this.observeReply(e, proto, d, l4, l4len, flags);
    const a = e * Conntrack.AUX;
    const off = ctx.pool.off[slot];
    const v = this.view(d);
    writeMacView(v, off, ct.aux[a + H.CLI_HI], ct.aux[a + H.CLI_LO]);
    writeMacView(v, off + 6, ct.aux[a + H.VIP_HI], ct.aux[a + H.VIP_LO]);
    rewriteIpv4Address(v, l3, 12, ct.backend[e], ct.vip[e], proto, l4);
    rewriteIpv4Address(v, l3, 16, ct.vip[e], ct.client[e], proto, l4);
    this.counters.add(this.counters.at.hairpin_replies);
    return H.REPLY;
  }

  /** A packet from the backend of flow `e`: state, timeout, and the next sequence number it will send (for a RST). */
  private observeReply(e: number, proto: number, d: Uint8Array, l4: number, l4len: number, flags: number): void {
    const ct = this.conntrack;
    ct.observe(e, true, flags, this.now);
    if (proto !== H.TCP) return;
    const n = e * Conntrack.AUX + H.SRV_NXT;
    const seqEnd = tcpSeqEnd(d, l4, l4len, flags);
    if ((flags & H.RST) === 0 && (((seqEnd - ct.aux[n]) | 0) > 0 || (flags & H.SYN) !== 0)) ct.aux[n] = seqEnd;
  }

  /**
   * A connection opened straight to a backend (not through the VIP) from the same client address
   * and port as a tracked flow has that flow's backend-side 4-tuple: the backend cannot tell them
   * apart, and its answers would be translated to come from the VIP. The client's kernel reuses a
   * port only once its own socket is gone, so the tracked flow is over: forget it (counted
   * `flows_superseded`) and let the direct connection's packets pass untouched.
   */
  private supersede(d: Uint8Array, l3: number, end: number, src: number, dst: number): void {
    const l4 = l3 + ((d[l3] & 0x0f) << 2);
    if (l4 + 20 > end || (d[l4 + 13] & (H.SYN | H.ACK)) !== H.SYN) return;
    const ct = this.conntrack;
    const e = ct.findReply(H.TCP, dst, src, (d[l4 + 2] << 8) | d[l4 + 3], (d[l4] << 8) | d[l4 + 1]);
    if (e < 0) return;
    ct.remove(e);
    this.counters.add(this.counters.at.flows_superseded);
  }

  outside(ctx: StageContext, slot: number): number {
    if (ctx.etherType !== H.IPV4) return ctx.etherType === H.IPV6 && this.v6 !== undefined ? this.v6.outside(ctx, slot) : H.PASS;
    const pool = ctx.pool;
    const d = pool.data;
    const v = d === this.dvData ? this.dv : this.view(d);
    const l3 = ctx.l3;
    const off = pool.off[slot];
    const end = off + pool.len[slot];
    if (l3 + 20 > end) return H.PASS;
    const src = v.getInt32(l3 + 12);
    if (this.backendIndex.find(0, src) < 0) return H.PASS;
    // From a backend: ours only when it parses and belongs to a tracked flow; anything else passes.
    const total = ipv4Total(d, l3, end);
    if (total < 0) return H.PASS;
    const frag = v.getUint16(l3 + 6) & 0x3fff;
    if (frag !== 0 && ((frag & 0x1fff) !== 0 || d[l3 + 9] === H.TCP)) return (frag & 0x1fff) !== 0 ? this.laterFragment(ctx, slot, l3, OUT) : H.PASS;
    const proto = d[l3 + 9];
    const ihl = (d[l3] & 0x0f) << 2;
    const l4 = l3 + ihl;
    const l4len = total - ihl;
    let ports: number;
    let flags = 0;
    if (proto === H.TCP && l4len >= 20) {
      flags = d[l4 + 13];
      ports = v.getInt32(l4);
    } else if (proto === H.UDP && l4len >= 8) ports = v.getInt32(l4);
    else if (proto === H.ICMP && l4len >= 8 && d[l4] === 0) ports = v.getUint16(l4 + 4);
    else if (proto === H.ICMP && l4len >= 8 && isIcmpError(d[l4])) return this.icmpError(ctx, slot, l3, l4, l3 + total, src);
    else return H.PASS;
    // ports: (backend port << 16) | client port; an echo reply's identifier is the client "port".
    const ct = this.conntrack;
    const e = ct.findReply(proto, src, v.getInt32(l3 + 16), ports >>> 16, ports & 0xffff);
    if (e < 0) return H.PASS;
    const a = e * Conntrack.AUX;
    this.observeReply(e, proto, d, l4, l4len, flags);
    writeMacView(v, off + 6, ct.aux[a + H.VIP_HI], ct.aux[a + H.VIP_LO]);
    rewriteIpv4Address(v, l3, 12, src, ct.vip[e], proto, l4);
    this.counters.values[1]++; // translated_outside
    if (frag !== 0 && ct.peer[e] === ct.client[e]) this.fragments.remember(src, ct.client[e], v.getUint16(l3 + 4), proto, OUT, 0, this.now, e);
    return H.PASS;
  }

  /**
   * A non-first IPv4 fragment (no ports): it follows its datagram's first fragment, remembered
   * with that flow — to the flow's backend (inside, `IN`), or from it to the client as the VIP
   * (outside, `OUT`); only the IP header changes (the L4 checksum, in the first fragment, was
   * updated there for the whole datagram). Hairpinned flows' fragments are not followed. Inside,
   * a fragment of no remembered datagram is dropped (`fragment`); outside it passes untouched,
   * as any packet of no flow does. Off the per-packet path of unfragmented traffic.
   */
  private laterFragment(ctx: StageContext, slot: number, l3: number, dir: number): number {
    const d = ctx.pool.data;
    const v = this.view(d);
    const src = v.getInt32(l3 + 12);
    const dst = v.getInt32(l3 + 16);
    const ct = this.conntrack;
    const e = this.fragments.find(src, dst, v.getUint16(l3 + 4), d[l3 + 9], dir, 0, this.now);
    const ok = e >= 0 && ct.state[e] !== 0 && ct.peer[e] === ct.client[e] && (dir === IN ? ct.client[e] === src && ct.vip[e] === dst : ct.backend[e] === src && ct.client[e] === dst);
    if (!ok) return dir === IN ? this.drop(D.fragment) : H.PASS;
    const a = e * Conntrack.AUX;
    const off = ctx.pool.off[slot];
    if (dir === IN) {
      writeMacView(v, off, ct.aux[a + H.BE_HI], ct.aux[a + H.BE_LO]);
      rewriteIpv4Address(v, l3, 16, dst, ct.backend[e], 0, 0); // protocol 0: the IP header only
    } else {
      writeMacView(v, off + 6, ct.aux[a + H.VIP_HI], ct.aux[a + H.VIP_LO]);
      rewriteIpv4Address(v, l3, 12, src, ct.vip[e], 0, 0);
    }
    this.counters.add(this.counters.at.fragments_translated);
    return H.PASS;
  }

  /** An ICMP error from a backend about a packet of a tracked flow: translated back to the VIP (quote and all). */
  private icmpError(ctx: StageContext, slot: number, l3: number, l4: number, end: number, src: number): number {
    const d = ctx.pool.data;
    const q = this.quote;
    if (!quoted(d, l4, end, q) || q.dst !== src) return PASS;
    const ct = this.conntrack;
    const e = ct.findReply(q.proto, q.dst, q.src, q.dport, q.sport);
    if (e < 0 || ct.peer[e] !== ct.client[e]) return PASS;
    const a = e * Conntrack.AUX;
    const v = this.view(d);
    writeMacView(v, ctx.pool.off[slot] + 6, ct.aux[a + A_VIP_HI], ct.aux[a + A_VIP_LO]);
    rewriteIcmpError(d, v, l3, l4, end, q, src, ct.vip[e]);
    this.counters.add(this.counters.at.icmp_errors_translated);
    return PASS;
  }

  /** An ARP request for a VIP, answered in place with the VIP's MAC (the client then sends to it). */
  private answerArp(ctx: StageContext, slot: number): number {
    const d = ctx.pool.data;
    const end = ctx.pool.off[slot] + ctx.pool.len[slot];
    const arp = ctx.l3;
    if (arp + ARP_LENGTH > end || !isEthernetIpv4Arp(d, arp) || ((d[arp + 6] << 8) | d[arp + 7]) !== ARP_REQUEST) return PASS;
    const tpa = (d[arp + 24] << 24) | (d[arp + 25] << 16) | (d[arp + 26] << 8) | d[arp + 27];
    const vi = this.vipIndex.find(0, tpa);
    if (vi < 0) return PASS;
    const svc = this.services[this.vipIndex.va[vi]]!;
    ctx.pool.len[slot] = rewriteArpRequestAsReply(d, ctx.pool.off[slot], arp, svc.macHi, svc.macLo);
    this.counters.add(this.counters.at.arp_answered);
    return REPLY;
  }
}

/** Add `delta` to the count of `ip` in `t` (removed at 0). */
function refCount(t: PairTable, family: number, ip: number, delta: number): void {
  const e = t.insert(family, ip);
  if (e < 0) return;
  t.va[e] += delta;
  if (t.va[e] <= 0) t.remove(family, ip);
}
