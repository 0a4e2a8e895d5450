import { afterEach, describe, expect, it } from 'vitest';
import type { Dataplane } from '@overlay/dataplane';
import { buildArpRequest } from '@overlay/dataplane/testing';
import { PolicyFilter, type PolicyLogEntry } from '../src/policy/filter.js';
import { ACK, DB, MAC, NO_TELNET, OTHER, PSH, RST, SYN, WEB, WEB_DB, policyHosts, tcpExchange, type PolicyHost } from './policy-bed.js';
import { PolicyError, type Policy } from '../src/policy/rules.js';
import { ipv4Frame, parseIpv4Frame } from './vip-frames.js';

const VNI = 42;
const IP = (n: number) => `198.19.0.${n}`;

const POLICY: Policy = {
  defaultAction: 'deny',
  tiers: {
    admin: [NO_TELNET],
    network: [
      WEB_DB,
      { id: 'ping', action: 'allow', proto: 'icmp', icmpTypes: [8] },
      { id: 'dns', action: 'allow', from: { cidrs: ['198.19.0.0/24'] }, proto: 'udp', ports: ['53'] },
    ],
    service: [{ id: 'open-telnet', action: 'allow', proto: 'tcp', ports: ['23'] }],
  },
};

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

type Host = PolicyHost;

/** Three hosts on one in-memory underlay, each with one workload (web, db, other) and a policy filter; fake clock. */
function bed(policy: Policy = POLICY, o: { capacity?: number } = {}) {
  const b = policyHosts({
    vni: VNI,
    open,
    filter: { policy, capacity: o.capacity, timeouts: { tcpSynMs: 5_000, udpMs: 2_000, udpRepliedMs: 2_000, tcpClosingMs: 1_000 } },
    identity: [[IP(WEB), ['web']], [IP(DB), ['db']]],
  });
  /** Send from workload a to workload b; returns what b's device received (parsed), clearing it. */
  const send = async (a: number, b2: number, o: Partial<Parameters<typeof ipv4Frame>[0]>) =>
    (await b.inject(a, b2, ipv4Frame({ srcMac: MAC(a), dstMac: MAC(b2), src: IP(a), dst: IP(b2), proto: 'tcp', ...o }))).map(parseIpv4Frame);
  return { ...b, send };
}

const stageDrops = (h: Host) => h.dp.stats().stages.policy;

describe('policy filter in an in-memory overlay', () => {
  it('web → db:5432 allowed both ways (egress at web, ingress at db); replies pass; db → web:5432 denied at db egress', async () => {
    const b = bed();
    const [web, db] = b.hosts;
    await tcpExchange(b.send, WEB, DB, 5);
    expect(web.f.stats().counters.flows_opened).toBe(1);
    expect(db.f.stats().counters.flows_opened).toBe(1);
    expect(web.f.ruleCounters()['web-db'].inside.allows).toBe(1);
    expect(db.f.ruleCounters()['web-db'].outside.allows).toBe(1);

    // The reverse direction is a new flow db → web, which no rule allows: dropped at db (egress), by default.
    expect(await b.send(DB, WEB, { sport: 40001, dport: 5432, flags: SYN })).toHaveLength(0);
    expect(db.f.stats().counters.inside_denied).toBe(1);
    expect(db.f.ruleCounters()['(default)'].inside.drops).toBe(1);
    expect(stageDrops(db).denied).toBe(1);
    expect(db.log.map((e) => [e.direction, e.action, e.src, e.dst, e.dport, e.ruleId, e.tier])).toEqual([['inside', 'deny', IP(DB), IP(WEB), 5432, null, 'default']]);
    // Non-IP frames pass.
    web.dev.inject(buildArpRequest({ srcMac: MAC(1), srcIp: IP(1), targetIp: IP(9) }));
    await b.net.idle();
    expect(stageDrops(web)).toMatchObject({ denied: 0, malformed: 0 });
  });

  it('a host without the filter is still held at the destination: ingress judged outside, counted by rule id', async () => {
    const b = bed();
    const [, db, other] = b.hosts;
    b.hosts[2].dp.removeStage(VNI, 'policy');
    expect(await b.send(OTHER, DB, { sport: 40000, dport: 5432, flags: SYN })).toHaveLength(0);
    expect(db.f.stats().counters.outside_denied).toBe(1);
    expect(db.f.ruleCounters()['(default)'].outside.drops).toBe(1);
    // Telnet: the admin tier's deny wins over the service tier's allow, counted under its id.
    expect(await b.send(OTHER, DB, { sport: 40000, dport: 23, flags: SYN })).toHaveLength(0);
    expect(db.f.ruleCounters()['no-telnet'].outside.drops).toBe(1);
    expect(db.f.ruleCounters()['open-telnet'].outside.allows).toBe(0);
    // UDP by CIDR from a host in no group: allowed, and its reply passes back.
    expect(await b.send(OTHER, DB, { proto: 'udp', sport: 5353, dport: 53 })).toHaveLength(1);
    expect(await b.send(DB, OTHER, { proto: 'udp', sport: 53, dport: 5353 })).toHaveLength(1);
    expect(other.dev.received).toHaveLength(0);
  });

  it('a SYN-less ACK (or SYN-ACK, RST) of an unknown flow is dropped as no_flow even where a rule would allow it', async () => {
    const b = bed();
    const [web, db] = b.hosts;
    expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: ACK })).toHaveLength(0);
    expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: SYN | ACK })).toHaveLength(0);
    expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: RST })).toHaveLength(0);
    expect(web.f.stats().counters.inside_no_flow).toBe(3);
    expect(stageDrops(web).no_flow).toBe(3);
    // Arriving at db from a host without the filter: db drops it the same way.
    web.dp.removeStage(VNI, 'policy');
    expect(await b.send(WEB, DB, { sport: 40002, dport: 5432, flags: ACK | PSH })).toHaveLength(0);
    expect(db.f.stats().counters.outside_no_flow).toBe(1);
    expect(db.f.stats().flows).toBe(0);
  });

  it('ICMP echo: requests judged by type and tracked by identifier, replies pass; an unsolicited reply is denied', async () => {
    const b = bed();
    expect(await b.send(OTHER, WEB, { proto: 'icmp', icmpType: 8, id: 7 })).toHaveLength(1);
    expect(await b.send(WEB, OTHER, { proto: 'icmp', icmpType: 0, id: 7 })).toHaveLength(1);
    expect(await b.send(WEB, OTHER, { proto: 'icmp', icmpType: 0, id: 8 })).toHaveLength(0);
    expect(b.hosts[0].f.stats().counters.inside_denied).toBe(1);
  });

  it('an allowed stray echo reply opens nothing: the other side\'s echo request with its identifier is still judged', async () => {
    const strayReplies: Policy = { defaultAction: 'deny', tiers: { network: [{ id: 'replies', action: 'allow', proto: 'icmp', icmpTypes: [0] }] } };
    const b = bed(strayReplies);
    expect(await b.send(WEB, DB, { proto: 'icmp', icmpType: 0, id: 77 })).toHaveLength(1);
    expect(b.hosts[1].f.stats().flows).toBe(0);
    expect(await b.send(DB, WEB, { proto: 'icmp', icmpType: 8, id: 77 })).toHaveLength(0);
    expect(b.hosts[1].f.stats().counters.inside_denied).toBe(1);
  });

  it('reload: a flow the new rules deny stops within one packet of the swap; allowed flows untouched; a bad policy keeps the old', async () => {
    const b = bed();
    const [web, db] = b.hosts;
    const policy2: Policy = {
      defaultAction: 'deny',
      tiers: {
        admin: [{ id: 'quarantine-web', action: 'deny', from: { groups: ['web'] }, proto: 'tcp', ports: ['5432'] }],
        network: [...POLICY.tiers.network!],
      },
    };
    await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: SYN });
    await b.send(DB, WEB, { sport: 5432, dport: 40000, flags: SYN | ACK });
    expect(await b.send(OTHER, DB, { proto: 'udp', sport: 5353, dport: 53 })).toHaveLength(1);
    expect(() => db.f.setPolicy({ defaultAction: 'deny', tiers: { admin: [{ id: 'x', action: 'allow', proto: 'udp', ports: ['70000'] }] } })).toThrow(PolicyError);
    expect(db.f.compiled.generation).toBe(1);
    // Mid-stream: 3 packets pass, then the swap on db; the very next packet in either direction is dropped.
    for (let i = 0; i < 3; i++) expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: ACK | PSH })).toHaveLength(1);
    db.f.setPolicy(policy2);
    expect(await b.send(DB, WEB, { sport: 5432, dport: 40000, flags: ACK })).toHaveLength(0);
    expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: ACK | PSH })).toHaveLength(0);
    expect(db.f.stats().counters).toMatchObject({ flows_revoked: 1, inside_denied: 1, outside_no_flow: 1 });
    expect(db.f.ruleCounters()['quarantine-web'].inside.drops).toBe(1);
    // The UDP flow the new rules still allow goes on (re-judged once, kept).
    expect(await b.send(OTHER, DB, { proto: 'udp', sport: 5353, dport: 53 })).toHaveLength(1);
    expect(await b.send(DB, OTHER, { proto: 'udp', sport: 53, dport: 5353 })).toHaveLength(1);
    expect(db.f.stats().counters.flows_rejudged).toBe(2);
    expect(db.f.stats().flows).toBe(1);
    expect(web.f.stats().flows).toBe(1);
  });

  it('identity change re-judges: db leaving its group loses the flows only that group allowed', async () => {
    const b = bed();
    const [web] = b.hosts;
    await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: SYN });
    expect(await b.send(DB, WEB, { sport: 5432, dport: 40000, flags: SYN | ACK })).toHaveLength(1);
    web.f.identity.set(IP(DB), ['retired']);
    expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: ACK })).toHaveLength(0);
    expect(web.f.stats().counters.flows_revoked).toBe(1);
  });

  it('timeouts: an idle UDP flow expires and its late reply is judged as new (denied); a SYN-only flow expires on its own timeout', async () => {
    const b = bed();
    const [, db, other] = b.hosts;
    expect(await b.send(OTHER, DB, { proto: 'udp', sport: 5353, dport: 53 })).toHaveLength(1);
    b.tick(1_500);
    expect(await b.send(DB, OTHER, { proto: 'udp', sport: 53, dport: 5353 })).toHaveLength(1); // re-arms 2 s
    b.tick(2_300);
    expect(db.f.stats().flows).toBe(0);
    expect(db.f.stats().conntrack.expired).toBe(1);
    expect(await b.send(DB, OTHER, { proto: 'udp', sport: 53, dport: 5353 })).toHaveLength(0);
    expect(db.f.stats().counters.inside_denied).toBe(1);
    void other;
    await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: SYN });
    expect(db.f.stats().flows).toBe(1);
    b.tick(4_000);
    expect(db.f.stats().flows).toBe(1);
    b.tick(1_200);
    expect(db.f.stats().flows).toBe(0);
  });

  it('malformed IPv4 (header cut, IHL, version, total length past the frame or under the header) and non-first fragments are counted drops; an IPv6 frame with a truncated header chain is malformed', async () => {
    const b = bed();
    const [web] = b.hosts;
    const good = ipv4Frame({ srcMac: MAC(1), dstMac: MAC(2), src: IP(1), dst: IP(2), proto: 'tcp', dport: 5432 });
    const short = good.subarray(0, 14 + 30); // TCP header cut
    const badIhl = Buffer.from(good);
    badIhl[14] = 0x44;
    const badVersion = Buffer.from(good);
    badVersion[14] = 0x65;
    const longTotal = Buffer.from(good);
    longTotal.writeUInt16BE(good.length - 14 + 1, 14 + 2);
    const shortTotal = Buffer.from(good);
    shortTotal.writeUInt16BE(19, 14 + 2);
    const frag = Buffer.from(good);
    frag.writeUInt16BE(0x0010, 14 + 6);
    const v6 = Buffer.alloc(14 + 40);
    Buffer.from(good.subarray(0, 12)).copy(v6);
    v6.writeUInt16BE(0x86dd, 12);
    v6[14] = 0x60;
    for (const f of [short, badIhl, badVersion, longTotal, shortTotal, frag, v6]) web.dev.inject(f);
    await b.net.idle();
    expect(stageDrops(web)).toMatchObject({ malformed: 6, fragment: 1 });
    expect(b.hosts[1].dev.received).toHaveLength(0);
  });

  it('explain names the deciding tier, rule and action', () => {
    const b = bed();
    const f = b.hosts[0].f;
    expect(f.explain({ src: IP(WEB), dst: IP(DB), proto: 'tcp', port: 5432 })).toMatchObject({ action: 'allow', tier: 'network', ruleId: 'web-db', ruleIndex: 1, srcGroups: ['web'], dstGroups: ['db'] });
    expect(f.explain({ src: IP(DB), dst: IP(WEB), proto: 'tcp', port: 5432 })).toMatchObject({ action: 'deny', tier: 'default', ruleId: null, ruleIndex: -1 });
    expect(f.explain({ src: IP(OTHER), dst: IP(DB), proto: 'tcp', port: 23 })).toMatchObject({ action: 'deny', tier: 'admin', ruleId: 'no-telnet' });
    expect(f.explain({ src: IP(OTHER), dst: IP(DB), proto: 'icmp' })).toMatchObject({ action: 'allow', ruleId: 'ping' });
    expect(() => f.explain({ src: 'nope', dst: IP(DB), proto: 'tcp' })).toThrow(PolicyError);
  });

  it('the deny log is rate-limited by a token bucket and counts what it suppresses', async () => {
    const b = bed();
    const db = b.hosts[1];
    const f = new PolicyFilter({ policy: POLICY, timers: false, clock: () => b.clock.now, log: (e) => got.push(e), logRate: 2, logBurst: 3 });
    const got: PolicyLogEntry[] = [];
    b.hosts[2].dp.removeStage(VNI, 'policy');
    db.dp.removeStage(VNI, 'policy');
    db.dp.addStage(VNI, f);
    for (let i = 0; i < 10; i++) await b.send(OTHER, DB, { sport: 41000 + i, dport: 80, flags: SYN });
    expect(got).toHaveLength(3);
    expect(f.stats().counters).toMatchObject({ log_written: 3, log_suppressed: 7, outside_denied: 10 });
    b.clock.now += 1000;
    f.tick();
    for (let i = 0; i < 5; i++) await b.send(OTHER, DB, { sport: 42000 + i, dport: 80, flags: SYN });
    expect(got).toHaveLength(5);
  });

  it('conntrack edges: wrong-direction or wrong-port packets of a tracked flow are judged as new; RST shortens to the closing timeout; a full table drops new flows, counted', async () => {
    const b = bed(POLICY, { capacity: 2 });
    const [web, db, other] = b.hosts;
    await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: SYN });
    expect(await b.send(DB, WEB, { sport: 5432, dport: 40000, flags: SYN | ACK })).toHaveLength(1);
    // db's workload forging web's half of the flow: the forward tuple, but in db's inside direction.
    db.dev.inject(ipv4Frame({ srcMac: MAC(DB), dstMac: MAC(WEB), src: IP(WEB), dst: IP(DB), proto: 'tcp', sport: 40000, dport: 5432, flags: ACK }));
    await b.net.idle();
    expect(db.f.stats().counters.inside_no_flow).toBe(1);
    // A "reply" from another port is not a reply.
    expect(await b.send(DB, WEB, { sport: 5433, dport: 40000, flags: SYN | ACK })).toHaveLength(0);
    expect(db.f.stats().counters.inside_no_flow).toBe(2);
    // Table of 2 at db: the web flow plus one UDP flow; the next allowed flow is refused, counted.
    expect(await b.send(OTHER, DB, { proto: 'udp', sport: 5353, dport: 53 })).toHaveLength(1);
    expect(await b.send(OTHER, DB, { proto: 'udp', sport: 5354, dport: 53 })).toHaveLength(0);
    expect(db.f.stats().counters.outside_flow_table_full).toBe(1);
    expect(db.f.stats().conntrack.refused_full).toBe(1);
    // RST: the flow lives on for the closing timeout (1 s), not the established one.
    expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: RST | ACK })).toHaveLength(1);
    b.tick(1_300);
    expect(web.f.stats().flows).toBe(0);
    expect(await b.send(WEB, DB, { sport: 40000, dport: 5432, flags: ACK })).toHaveLength(0);
    expect(web.f.stats().counters.inside_no_flow).toBe(1);
    void other;
  });
});
