import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Conntrack, OPEN_CLASH, OPEN_FULL, PROTO_ICMP, PROTO_TCP, PROTO_UDP, ST_ICMP, ST_TCP_CLOSING, ST_TCP_ESTABLISHED, ST_TCP_SYN, ST_UDP, ST_UDP_REPLIED,
  TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type ConntrackTimeouts,
} from '../src/vip/conntrack.js';

const TICK = 100;
const T: ConntrackTimeouts = { tcpSynMs: 300, tcpEstablishedMs: 5_000, tcpClosingMs: 200, udpMs: 400, udpRepliedMs: 1_200, icmpMs: 250 };
const timeoutOf = [0, T.tcpSynMs, T.tcpEstablishedMs, T.tcpClosingMs, T.udpMs, T.udpRepliedMs, T.icmpMs];

/** The specification, written plainly: a Map of flows, expiry by deadline at tick boundaries. */
interface Flow { proto: number; client: number; vip: number; cport: number; vport: number; backend: number; state: number; deadline: number }
class Model {
  flows = new Map<string, Flow>();
  opened = 0; full = 0; clash = 0; expired = 0; removed = 0;
  constructor(readonly capacity: number) {}
  static key(p: number, c: number, o: number, cp: number, vp: number): string {
    return `${p}/${c}/${o}/${cp}/${vp}`;
  }
  find(p: number, c: number, v: number, cp: number, vp: number): Flow | undefined {
    for (const f of this.flows.values()) if (f.proto === p && f.client === c && f.vip === v && f.cport === cp && f.vport === vp) return f;
    return undefined;
  }
  findReply(p: number, b: number, c: number, vp: number, cp: number): Flow | undefined {
    for (const f of this.flows.values()) if (f.proto === p && f.client === c && f.backend === b && f.cport === cp && f.vport === vp) return f;
    return undefined;
  }
  open(p: number, c: number, v: number, cp: number, vp: number, b: number, flags: number, now: number): 'ok' | 'full' | 'clash' {
    if (this.flows.size >= this.capacity) return (this.full++, 'full');
    if (this.findReply(p, b, c, vp, cp)) return (this.clash++, 'clash');
    let state: number;
    if (p === PROTO_TCP) state = flags & (TCP_FIN | TCP_RST) ? ST_TCP_CLOSING : (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN ? ST_TCP_SYN : ST_TCP_ESTABLISHED;
    else state = p === PROTO_UDP ? ST_UDP : ST_ICMP;
    this.flows.set(Model.key(p, c, v, cp, vp), { proto: p, client: c, vip: v, cport: cp, vport: vp, backend: b, state, deadline: now + timeoutOf[state] });
    this.opened++;
    return 'ok';
  }
  observe(f: Flow, reply: boolean, flags: number, now: number): void {
    const s = f.state;
    if ((s === ST_TCP_SYN || s === ST_TCP_ESTABLISHED) && flags & (TCP_FIN | TCP_RST)) f.state = ST_TCP_CLOSING;
    else if (s === ST_TCP_SYN && reply && (flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) f.state = ST_TCP_ESTABLISHED;
    else if (s === ST_UDP && reply) f.state = ST_UDP_REPLIED;
    f.deadline = now + timeoutOf[f.state];
  }
  advance(now: number): void {
    const boundary = Math.floor(now / TICK) * TICK;
    for (const [k, f] of this.flows) if (f.deadline < boundary) (this.flows.delete(k), this.expired++);
  }
  remove(f: Flow): void {
    this.flows.delete(Model.key(f.proto, f.client, f.vip, f.cport, f.vport));
    this.removed++;
  }
}

// Small domains so keys repeat, reply keys clash and the table fills.
const proto = fc.constantFrom(PROTO_TCP, PROTO_UDP, PROTO_ICMP);
const tuple = fc.record({ proto, client: fc.integer({ min: 1, max: 3 }), vip: fc.integer({ min: 10, max: 11 }), cport: fc.integer({ min: 1, max: 3 }), vport: fc.constantFrom(80, 443) });
const flags = fc.constantFrom(TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST, 0);
const op = fc.oneof(
  fc.record({ t: fc.constant('packet' as const), k: tuple, backend: fc.integer({ min: 20, max: 22 }), flags }),
  fc.record({ t: fc.constant('reply' as const), k: tuple, backend: fc.integer({ min: 20, max: 22 }), flags }),
  fc.record({ t: fc.constant('time' as const), dt: fc.oneof(fc.integer({ min: 0, max: 150 }), fc.integer({ min: 150, max: 6_000 }), fc.constant(200_000)) }),
  fc.record({ t: fc.constant('remove' as const), k: tuple }),
);

/** A plain check: vitest's expect costs too much at 10^5 runs × 24 operations. */
function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`conntrack differs from the model: ${what}`);
}

type Op = typeof op extends fc.Arbitrary<infer O> ? O : never;
function run(ops: Op[], capacity: number, slots: number, start: number): void {
  const ct = new Conntrack({ capacity, timeouts: T, tickMs: TICK, slots, startMs: start });
  const m = new Model(capacity);
  let now = start;
  for (const o of ops) {
    if (o.t === 'time') {
      now += o.dt;
      ct.advance(now);
      m.advance(now);
    } else if (o.t === 'packet') {
      const { proto: p, client: c, vip: v, cport: cp, vport: vp } = o.k;
      const e = ct.find(p, c, v, cp, vp);
      const f = m.find(p, c, v, cp, vp);
      check(e >= 0 === (f !== undefined), 'find');
      if (f) {
        ct.observe(e, false, o.flags, now);
        m.observe(f, false, o.flags, now);
      } else {
        const r = ct.open(p, c, v, cp, vp, o.backend, o.flags, now);
        const want = m.open(p, c, v, cp, vp, o.backend, o.flags, now);
        check((r === OPEN_FULL ? 'full' : r === OPEN_CLASH ? 'clash' : 'ok') === want, `open ${r} vs ${want}`);
      }
    } else if (o.t === 'reply') {
      const { proto: p, client: c, cport: cp, vport: vp } = o.k;
      const e = ct.findReply(p, o.backend, c, vp, cp);
      const f = m.findReply(p, o.backend, c, vp, cp);
      check(e >= 0 === (f !== undefined), 'findReply');
      if (f) {
        ct.observe(e, true, o.flags, now);
        m.observe(f, true, o.flags, now);
      }
    } else {
      const { proto: p, client: c, vip: v, cport: cp, vport: vp } = o.k;
      const e = ct.find(p, c, v, cp, vp);
      const f = m.find(p, c, v, cp, vp);
      if (e >= 0 && f) (ct.remove(e), m.remove(f));
    }
    // Same flows, same states, same deadlines, same counters after every operation.
    check(ct.size === m.flows.size, `size ${ct.size} vs ${m.flows.size}`);
    for (const f of m.flows.values()) {
      const e = ct.find(f.proto, f.client, f.vip, f.cport, f.vport);
      check(e >= 0 && ct.findReply(f.proto, f.backend, f.client, f.vport, f.cport) === e, 'indexes');
      check(ct.state[e] === f.state && ct.deadline[e] === f.deadline && ct.backend[e] === f.backend, `flow ${Model.key(f.proto, f.client, f.vip, f.cport, f.vport)}`);
    }
  }
  const c = ct.counters;
  check(c.get('opened') === m.opened && c.get('refused_full') === m.full && c.get('refused_clash') === m.clash && c.get('expired') === m.expired && c.get('removed') === m.removed, 'counters');
}

describe('conntrack against a reference model', () => {
  it('10^5 random operation sequences (packets, replies, removals, fake-clock time incl. jumps past the wheel horizon)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 24 }), fc.integer({ min: 1, max: 6 }), fc.constantFrom(2, 4, 64), fc.integer({ min: 0, max: 1e6 }), (ops, cap, slots, start) => run(ops, cap, slots, start)),
      { numRuns: 100_000 },
    );
  }, 300_000);

  it('a full table refuses new flows and keeps the established ones', () => {
    const ct = new Conntrack({ capacity: 4, timeouts: T, tickMs: TICK });
    for (let c = 1; c <= 4; c++) {
      const e = ct.open(PROTO_TCP, c, 10, 1000, 80, 20, TCP_SYN, 0);
      ct.observe(e, true, TCP_SYN | TCP_ACK, 0);
    }
    for (let c = 5; c < 1005; c++) expect(ct.open(PROTO_TCP, c, 10, 1000, 80, 20, TCP_SYN, 10)).toBe(OPEN_FULL);
    expect(ct.counters.get('refused_full')).toBe(1000);
    for (let c = 1; c <= 4; c++) expect(ct.state[ct.find(PROTO_TCP, c, 10, 1000, 80)]).toBe(ST_TCP_ESTABLISHED);
  });

  it('refuses a bad capacity, tick or timeout with a typed error', () => {
    expect(() => new Conntrack({ capacity: 0 })).toThrow(expect.objectContaining({ code: 'OVL_ERR_INVALID_CONFIG', field: 'capacity' }));
    expect(() => new Conntrack({ capacity: 4, tickMs: 0.5 })).toThrow(expect.objectContaining({ field: 'tickMs' }));
    expect(() => new Conntrack({ capacity: 4, timeouts: { udpMs: -1 } })).toThrow(expect.objectContaining({ field: 'timeouts.udpMs' }));
  });
});
