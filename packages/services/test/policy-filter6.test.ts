import { afterEach, describe, expect, it } from 'vitest';
import { parseIpAddress, type Dataplane } from '@overlay/dataplane';
import { ACK, DB, MAC, NO_TELNET, OTHER, SYN, WEB, WEB_DB, policyHosts, tcpExchange, type PolicyHost } from './policy-bed.js';
import { addressKey6 } from '../src/vip/packet.js';
import type { Policy } from '../src/policy/rules.js';
import { frame6, parse6, type F6 } from './vip-frames.js';

/** The policy filter on IPv6: three hosts on an in-memory underlay, workloads 2001:db8::1..3. */
const VNI = 43;
const IP = (n: number) => `2001:db8::${n}`;

const POLICY: Policy = {
  defaultAction: 'deny',
  tiers: {
    admin: [NO_TELNET],
    network: [
      WEB_DB,
      { id: 'ping6', action: 'allow', proto: 'icmpv6', icmpTypes: [128] },
      { id: 'dns', action: 'allow', from: { cidrs: ['2001:db8::/126'] }, to: { cidrs: ['2001:db8::2/128'] }, proto: 'udp', ports: ['53'] },
      { id: 'v4-only', action: 'allow', from: { cidrs: ['0.0.0.0/0'] }, proto: 'udp', ports: ['9999'] },
    ],
  },
};

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

type Host = PolicyHost;

function bed(policy: Policy = POLICY) {
  const b = policyHosts({ vni: VNI, open, filter: { policy, timeouts: { udpMs: 2_000, udpRepliedMs: 2_000 } }, identity: [[IP(WEB), ['web']], [IP(DB), ['db']]] });
  const inject = async (a: number, b2: number, frame: Buffer) => (await b.inject(a, b2, frame)).map(parse6);
  const send = (a: number, b2: number, o: Partial<F6>) => inject(a, b2, frame6({ srcMac: MAC(a), dstMac: MAC(b2), src: IP(a), dst: IP(b2), nh: 6, ...o }));
  return { ...b, send, inject };
}

const drops = (h: Host) => h.dp.stats().stages.policy;

describe('policy filter on IPv6', () => {
  it('web → db:5432 by groups of IPv6 addresses: allowed both ends, replies pass, tracked in the IPv6 table; db → web denied; a SYN-less ACK is no_flow', async () => {
    const b = bed();
    const [web, db] = b.hosts;
    await tcpExchange(b.send, WEB, DB, 3);
    expect([web.f.conntrack6.size, web.f.conntrack.size, db.f.conntrack6.size]).toEqual([1, 0, 1]);
    expect(db.f.ruleCounters()['web-db']).toEqual({ inside: { drops: 0, allows: 0 }, outside: { drops: 0, allows: 1 } });
    expect(await b.send(DB, WEB, { sport: 40001, dport: 5432, flags: SYN })).toHaveLength(0);
    expect(db.log.map((e) => [e.direction, e.action, e.src, e.dst, e.dport, e.ruleId])).toEqual([['inside', 'deny', IP(DB), IP(WEB), 5432, null]]);
    expect(await b.send(WEB, DB, { sport: 40002, dport: 5432, flags: ACK })).toHaveLength(0);
    expect(drops(web)).toMatchObject({ denied: 0, no_flow: 1 });
    expect(drops(db)).toMatchObject({ denied: 1, no_flow: 0 });
    // A deny in the admin tier wins over later allows.
    expect(await b.send(WEB, DB, { sport: 40003, dport: 23, flags: SYN })).toHaveLength(0);
    expect(web.f.explain({ src: IP(WEB), dst: IP(DB), proto: 'tcp', port: 23 })).toMatchObject({ action: 'deny', ruleId: 'no-telnet', tier: 'admin' });
  });

  it('IPv6 CIDRs decide by prefix; an IPv4 CIDR never matches an IPv6 address', async () => {
    const b = bed();
    expect(await b.send(WEB, DB, { nh: 17, sport: 5353, dport: 53 })).toHaveLength(1);
    expect(await b.send(DB, WEB, { nh: 17, sport: 53, dport: 5353 })).toHaveLength(1); // the reply
    expect(await b.send(WEB, OTHER, { nh: 17, sport: 5353, dport: 53 })).toHaveLength(0); // not 2001:db8::2/128
    expect(await b.send(WEB, DB, { nh: 17, sport: 5353, dport: 9999 })).toHaveLength(0); // 0.0.0.0/0 is IPv4 only
    const f = b.hosts[0].f;
    expect(f.explain({ src: IP(WEB), dst: IP(DB), proto: 'udp', port: 53 })).toMatchObject({ action: 'allow', ruleId: 'dns' });
    expect(f.explain({ src: '2001:db8::4', dst: IP(DB), proto: 'udp', port: 53 })).toMatchObject({ action: 'deny', ruleId: null });
    expect(f.explain({ src: '198.19.0.1', dst: '198.19.0.2', proto: 'udp', port: 9999 })).toMatchObject({ action: 'allow', ruleId: 'v4-only' });
    expect(() => f.explain({ src: IP(WEB), dst: '198.19.0.2', proto: 'udp', port: 53 })).toThrow(/explain.dst/);
  });

  it('ICMPv6: echo requests judged by type and tracked by identifier, replies pass, a stray reply is denied; Neighbor Discovery passes unjudged', async () => {
    const b = bed();
    const [web, db] = b.hosts;
    expect(await b.send(WEB, DB, { nh: 58, type: 128, id: 7 })).toHaveLength(1);
    expect(await b.send(DB, WEB, { nh: 58, type: 129, id: 7 })).toHaveLength(1);
    expect(await b.send(DB, WEB, { nh: 58, type: 129, id: 8 })).toHaveLength(0); // no request with id 8
    expect(drops(db)).toMatchObject({ denied: 1 });
    expect(await b.send(DB, WEB, { nh: 58, type: 1, id: 0 })).toHaveLength(0); // destination unreachable: judged, no rule
    for (const type of [135, 136]) expect(await b.send(DB, WEB, { nh: 58, type })).toHaveLength(1);
    expect(web.f.conntrack6.size).toBe(1);
    expect(db.log.map((e) => [e.proto, e.dport, e.action])).toEqual([[58, 129, 'deny'], [58, 1, 'deny']]);
  });

  it('extension headers: a non-first fragment of no passed first fragment is dropped, a first fragment and destination options are judged by their ports; truncated chains are malformed', async () => {
    const b = bed();
    const [web] = b.hosts;
    /** Insert an extension header (8 bytes) of type `ext` before the TCP header. */
    const withExt = (ext: number, body: (h: Buffer) => void) => {
      const f = frame6({ srcMac: MAC(WEB), dstMac: MAC(DB), src: IP(WEB), dst: IP(DB), nh: 6, sport: 40100, dport: 5432, flags: SYN });
      const h = Buffer.alloc(8);
      h[0] = 6;
      body(h);
      const out = Buffer.concat([f.subarray(0, 54), h, f.subarray(54)]);
      out[20] = ext;
      out.writeUInt16BE(out.readUInt16BE(18) + 8, 18);
      return out;
    };
    expect(await b.inject(WEB, DB, withExt(44, (h) => h.writeUInt16BE(0x0001, 2)))).toHaveLength(1); // offset 0, more fragments
    expect(await b.inject(WEB, DB, withExt(60, () => {}))).toHaveLength(1);
    // A later fragment of another datagram (ident 7; the first fragment above was ident 0): no first
    // fragment of its own passed, so it is dropped (policy-fragments.test.ts has the rest).
    expect(await b.inject(WEB, DB, withExt(44, (h) => (h.writeUInt16BE(185 << 3, 2), h.writeUInt32BE(7, 4))))).toHaveLength(0);
    const cut = frame6({ srcMac: MAC(WEB), dstMac: MAC(DB), src: IP(WEB), dst: IP(DB), nh: 6, sport: 1, dport: 5432 }).subarray(0, 54 + 10);
    cut.writeUInt16BE(10, 18);
    expect(await b.inject(WEB, DB, cut)).toHaveLength(0);
    const longer = frame6({ srcMac: MAC(WEB), dstMac: MAC(DB), src: IP(WEB), dst: IP(DB), nh: 6 });
    longer.writeUInt16BE(200, 18); // payload length past the frame
    expect(await b.inject(WEB, DB, longer)).toHaveLength(0);
    expect(drops(web)).toMatchObject({ fragment: 1, malformed: 2, denied: 0 });
  });

  it('reload and identity change re-judge IPv6 flows: a denied flow stops within one packet', async () => {
    const b = bed();
    const [web, db] = b.hosts;
    expect(await b.send(WEB, DB, { sport: 41000, dport: 5432, flags: SYN })).toHaveLength(1);
    expect(await b.send(WEB, DB, { nh: 58, type: 128, id: 9 })).toHaveLength(1);
    db.f.setPolicy({ ...POLICY, tiers: { ...POLICY.tiers, network: POLICY.tiers.network!.filter((r) => r.id !== 'web-db') } });
    expect(await b.send(WEB, DB, { sport: 41000, dport: 5432, flags: ACK })).toHaveLength(0);
    expect(await b.send(WEB, DB, { nh: 58, type: 128, id: 9 })).toHaveLength(1); // still allowed by ping6
    expect(db.f.stats().counters).toMatchObject({ flows_revoked: 1, flows_rejudged: 2 });
    // Web leaves its group on web's host: its own egress flow is re-judged and revoked.
    expect(await b.send(WEB, OTHER, { nh: 58, type: 128, id: 10 })).toHaveLength(1);
    web.f.identity.set(IP(WEB), []);
    expect(await b.send(WEB, DB, { sport: 41000, dport: 5432, flags: ACK })).toHaveLength(0);
    expect(web.f.stats().counters.flows_revoked).toBe(1);
    expect(web.f.identity.groupsOf(IP(DB))).toEqual(['db']);
  });

  it('two flows whose IPv6 address keys collide never share an entry: the second is tuple_clash', async () => {
    // Find two addresses 2001:db8::i:i (i in the last two 32-bit words) with the same 32-bit key
    // (a birthday search; one word alone maps to keys one to one).
    const seen = new Map<number, number>();
    const buf = new Uint8Array(16);
    buf.set(parseIpAddress('2001:db8::').bytes);
    let pair: [number, number] | undefined;
    for (let i = 1; pair === undefined && i < 2_000_000; i++) {
      for (const at of [8, 12]) {
        buf[at] = i >>> 24;
        buf[at + 1] = (i >>> 16) & 255;
        buf[at + 2] = (i >>> 8) & 255;
        buf[at + 3] = i & 255;
      }
      const k = addressKey6(buf, 0);
      const j = seen.get(k);
      if (j !== undefined) pair = [j, i];
      else seen.set(k, i);
    }
    expect(pair).toBeDefined();
    const half = (i: number) => `${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}`;
    const addr = (i: number) => `2001:db8::${half(i)}:${half(i)}`;
    const b = bed({ defaultAction: 'allow', tiers: {} });
    const [web] = b.hosts;
    const a1 = frame6({ srcMac: MAC(WEB), dstMac: MAC(DB), src: addr(pair![0]), dst: IP(DB), nh: 17, sport: 7000, dport: 7000 });
    const a2 = frame6({ srcMac: MAC(WEB), dstMac: MAC(DB), src: addr(pair![1]), dst: IP(DB), nh: 17, sport: 7000, dport: 7000 });
    expect(await b.inject(WEB, DB, a1)).toHaveLength(1);
    expect(await b.inject(WEB, DB, a2)).toHaveLength(0);
    expect(await b.inject(WEB, DB, a1)).toHaveLength(1);
    expect(drops(web)).toMatchObject({ tuple_clash: 1 });
    expect(web.f.conntrack6.size).toBe(1);
  });
});
