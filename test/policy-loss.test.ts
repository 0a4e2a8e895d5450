/**
 * Group policy under 5 % underlay loss (issue 13, "all also under 5 % loss"): three namespace
 * hosts web (198.19.0.1), db (.2) and ops (.3), each an openHost VTEP with the policy filter
 * (test/lib/policy-host.ts) and the same identities; every host's underlay drops 5 % of the packets
 * entering and, independently, 5 % of those leaving it (test/lib/underlay-loss.ts), from before
 * the VTEPs start. UDP GSO and GRO are off on the VTEPs' sockets, so the rules see (and drop)
 * each VXLAN datagram on its own, not a super-packet of dozens. web → db:5432 is allowed (an intact checksummed transfer), db → web is denied by
 * a named rule, ops → db:5432 by the default; then a deny reloaded on db during iperf3 stops it.
 *
 * Failure probability per run under the loss. A packet between two hosts meets two 5 % drops:
 * lost with p = 1 − 0.95² = 0.0975; a round trip fails with r = 1 − 0.95⁴ = 0.185.
 * - A TCP handshake (tcpTransfer, iperf3's two connections): the client sends ≥ 7 SYNs within
 *   ~18 s (net.ipv4.tcp_syn_linear_timeouts = 4: at 0, 1, 2, 3, 4 s, then backing off), each
 *   answered by a SYN-ACK if it arrives, and the server repeats its SYN-ACK ≥ 4 times on its own
 *   timer (1, 3, 7, 15 s) once a SYN arrived. Failing needs every SYN lost (p⁷ = 8.4e-8) or, if
 *   the k-th is the first to arrive, those ≥ 4 timer SYN-ACKs lost and every later SYN failing its
 *   round trip: Σₖ p^(k−1) · p⁴ · r^(7−k) ≤ 9e-5 · 7e-5 = 6e-9. So ≤ 1e-7 per connection, 3 of them.
 * - The transfer itself: TCP aborts only after 15 retransmissions of one segment all lost (p¹⁵).
 * - 20 pings web → db all failing: r²⁰ = 2e-15.
 * - After the swap, a packet of the revoked stream must reach db within 15 s: web retransmits its
 *   first unacknowledged segment ≥ 6 times (RTO 0.2 s doubling) besides what was in flight:
 *   ≤ p⁶ = 8.6e-7.
 * - The named deny on a new connection to iperf3's port needs one of ≥ 10 SYNs (two attempts of
 *   5 s) to reach db: p¹⁰ = 8e-11.
 * - Everything else is decided at a host's own egress (drops counted before the underlay) or is a
 *   "nothing passes" assertion, which loss cannot make fail.
 * Total ≈ 1.2e-6 < 1e-5.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Policy } from '@overlay/services';
import { connectAttempt, startPolicyHost, type PolicyHost } from './lib/policy-host.js';
import { createTestbed, waitForLine, type Testbed } from './lib/testbed.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { clearUnderlayLoss, readUnderlayLoss, setUnderlayLoss } from './lib/underlay-loss.js';
import { meshConfig } from './lib/vtep.js';
import { collectLines } from './lib/wait.js';

const VNI = 100;
const [WEB, DB, OPS] = ['198.19.0.1', '198.19.0.2', '198.19.0.3'];
const IPERF_PORT = 5201;
const LOSS = 5;

const POLICY: Policy = {
  defaultAction: 'deny',
  tiers: {
    network: [
      { id: 'db-no-web', action: 'deny', from: { groups: ['db'] }, to: { groups: ['web'] } },
      { id: 'web-db', action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432', String(IPERF_PORT)] },
      { id: 'ping', action: 'allow', proto: 'icmp', icmpTypes: [8] },
    ],
  },
};
/** iperf3's port denied by an admin rule, reloaded on db during a stream. */
const IPERF_DENIED: Policy = { ...POLICY, tiers: { ...POLICY.tiers, admin: [{ id: 'deny-iperf', action: 'deny', proto: 'tcp', ports: [String(IPERF_PORT)] }] } };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('group policy under 5 % underlay loss (netns, 3 hosts)', () => {
  let tb: Testbed;
  const hosts: PolicyHost[] = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 3, prefix: 'polls' });
    for (const h of tb.hosts) await setUnderlayLoss(h, LOSS);
    const cfg = meshConfig(tb.hosts, [VNI]);
    for (const [k, h] of tb.hosts.entries()) {
      hosts.push(await startPolicyHost(h, { host: { ...cfg[k], gso: false, udpGro: false }, vni: VNI, policy: POLICY, countPort: IPERF_PORT, identities: [[WEB, ['web']], [DB, ['db']], [OPS, ['ops']]] }));
    }
  }, 120_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const p of hosts) await p.stop().catch(() => undefined);
    for (const h of tb?.hosts ?? []) await clearUnderlayLoss(h).catch(() => undefined);
    await tb?.destroy();
  }, 60_000);

  it('web → db:5432 transfers intact, replies pass; db → web and ops → db:5432 time out, each drop counted by its rule', async () => {
    const t0 = Date.now();
    const [h1, h2, h3] = tb.hosts;
    const bytes = 1 << 20;
    const r = await tcpTransfer(h1, h2, DB, 5432, bytes, 40_000);
    const tTransfer = Date.now() - t0;
    expect(r.received).toEqual(r.sent);
    expect(r.sent.bytes).toBe(bytes);
    // Replies: echo requests web → db open a flow; every reply that arrives passes both filters.
    const pings = await ping(h1, DB, 20);
    expect(pings).toBeGreaterThan(0);
    // Denied: each SYN is dropped at the sender's own egress (before any loss), so no handshake.
    expect(await connectAttempt(h2, WEB, 9000, 4)).toBe('timeout');
    expect(await connectAttempt(h3, DB, 5432, 4)).toBe('timeout');
    const [web, db, ops] = await Promise.all(hosts.map((p) => p.stats()));
    expect(web.rules['web-db'].inside.allows, 'web opened the transfer').toBeGreaterThanOrEqual(1);
    expect(db.rules['web-db'].outside.allows, 'db admitted the transfer').toBeGreaterThanOrEqual(1);
    expect(db.rules['db-no-web'].inside.drops, 'db → web dropped by db-no-web').toBeGreaterThanOrEqual(1);
    expect(ops.rules['(default)'].inside.drops, 'ops → db:5432 dropped by the default').toBeGreaterThanOrEqual(1);
    expect(ops.rules['web-db'].inside.allows).toBe(0);
    const loss = await Promise.all(tb.hosts.map(readUnderlayLoss));
    const frac = loss.reduce((n, l) => n + l.droppedIn + l.droppedOut, 0) / loss.reduce((n, l) => n + l.seenIn + l.seenOut, 0);
    console.log(`policy, ${LOSS} % loss each way (measured ${(frac * 100).toFixed(1)} % of underlay packets dropped): 1 MiB web → db:5432 intact in ${tTransfer} ms; ${pings}/20 pings answered; db → web and ops → db:5432 timed out; drops db-no-web ${db.rules['db-no-web'].inside.drops}, ops default ${ops.rules['(default)'].inside.drops}; ${Date.now() - t0} ms`);
  }, 60_000);

  it('a deny reloaded on db during iperf3: no packet to its port passes db\'s filter after the swap', async () => {
    const t0 = Date.now();
    const [h1, h2] = tb.hosts;
    const db = hosts[1];
    // Bounded by `timeout`, killed in afterAll with the rest.
    const server = h2.spawn('timeout', ['50', 'iperf3', '-s', '-1', '--forceflush', '-B', DB, '-p', String(IPERF_PORT)]);
    children.push(server);
    await waitForLine(server, /Server listening/, 20_000);
    const iperf = h1.spawn('timeout', ['45', 'iperf3', '-c', DB, '-p', String(IPERF_PORT), '-t', '40', '-b', '20M', '-i', '1', '--forceflush']);
    children.push(iperf);
    const iperfOut = collectLines(iperf);
    for (let end = Date.now() + 25_000; (await db.stats()).passed <= 200; await sleep(200)) {
      if (Date.now() > end) throw new Error(`iperf3 not streaming through db: ${iperfOut.join(' | ')}`);
    }
    const atSwap = await db.setPolicy(IPERF_DENIED);
    const tSwap = Date.now();
    // Until a packet of the stream arrives under the new rules (it is revoked and dropped).
    let later = atSwap;
    for (let end = tSwap + 15_000; Date.now() < end; await sleep(200)) {
      later = await db.stats();
      if (later.counters.flows_revoked > atSwap.counters.flows_revoked) break;
    }
    const revokedIn = Date.now() - tSwap;
    await sleep(1000);
    later = await db.stats();
    expect(later.passed - atSwap.passed, 'packets to the port passing db after the swap').toBe(0);
    expect(later.counters.flows_revoked - atSwap.counters.flows_revoked).toBeGreaterThanOrEqual(1);
    expect(later.counters.outside_no_flow + later.counters.outside_denied).toBeGreaterThan(atSwap.counters.outside_no_flow + atSwap.counters.outside_denied);
    // New connections to the port: refused at db's ingress by the reloaded rule (web keeps the old policy).
    const denied = later.rules['deny-iperf'].outside.drops;
    expect(await Promise.all([connectAttempt(h1, DB, IPERF_PORT, 5), connectAttempt(h1, DB, IPERF_PORT, 5)])).toEqual(['timeout', 'timeout']);
    const end = await db.stats();
    expect(end.rules['deny-iperf'].outside.drops).toBeGreaterThan(denied);
    expect(end.passed - atSwap.passed).toBe(0);
    console.log(`policy reload, ${LOSS} % loss: ${atSwap.passed} iperf3 packets passed db before the swap, 0 after; stream revoked ${revokedIn} ms after it; deny-iperf drops ${end.rules['deny-iperf'].outside.drops}, no_flow+denied +${end.counters.outside_no_flow + end.counters.outside_denied - atSwap.counters.outside_no_flow - atSwap.counters.outside_denied}; ${Date.now() - t0} ms`);
  }, 60_000);
});
