import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, waitForLine, type Testbed } from '../../../test/lib/testbed.js';
import { ping } from '../../../test/lib/transfer.js';
import { meshConfig, repoRoot } from '../../../test/lib/vtep.js';
import { collectLines, until } from '../../../test/lib/wait.js';
import type { Policy } from '../src/policy/rules.js';
import { RUNNER_STOP_AND_READY } from '../../../test/lib/runner-script.js';

// Real TCP and ping through the policy filter, in network namespaces: host 1 (web, 198.19.0.1)
// and host 2 (db, 198.19.0.2) each run openHost with a PolicyFilter on the network; kernel
// sockets on each TAP are the workloads.
const VNI = 100;
const WEB = '198.19.0.1';
const DB = '198.19.0.2';
const IPERF_PORT = 5201;

const POLICY: Policy = {
  defaultAction: 'deny',
  tiers: {
    network: [
      { id: 'web-db', action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432-5433', String(IPERF_PORT)] },
      { id: 'ping', action: 'allow', proto: 'icmp', icmpTypes: [8] },
    ],
  },
};
/** iperf3's port denied by an admin rule (reloaded during a stream). */
const IPERF_DENIED: Policy = { defaultAction: 'deny', tiers: { ...POLICY.tiers, admin: [{ id: 'deny-iperf', action: 'deny', proto: 'tcp', ports: [String(IPERF_PORT)] }] } };
/** Port 5432 quarantined by an admin rule; 5433 still allowed. */
const QUARANTINE: Policy = { defaultAction: 'deny', tiers: { ...POLICY.tiers, admin: [{ id: 'quarantine-5432', action: 'deny', proto: 'tcp', ports: ['5432'] }] } };

/** openHost + PolicyFilter; stdin `policy <json>` → `SET <ms> <stats>`, `stats` → `STATS <stats>`. */
const RUNNER = `
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { PolicyFilter } from '@overlay/services';
const { hostOptions } = await import(process.env.HOST_CONFIG_TS);
const host = await openHost(hostOptions(JSON.parse(process.env.HOST_CFG)));
const f = new PolicyFilter({ policy: JSON.parse(process.env.POLICY), log: () => {} });
f.identity.set('${WEB}', ['web']);
f.identity.set('${DB}', ['db']);
host.dataplane.addStage(${VNI}, f);
// Counts the IPv4 TCP packets to port ${IPERF_PORT} the filter let through toward the workload (a
// responder: outside, it runs after every filter).
let passed = 0;
host.dataplane.addStage(${VNI}, {
  name: 'count_iperf',
  kind: 'responder',
  outside(ctx, slot) {
    const d = ctx.pool.data;
    const l3 = ctx.l3;
    if (ctx.etherType === 0x0800 && d[l3 + 9] === 6 && ((d[l3 + ((d[l3] & 15) << 2) + 2] << 8) | d[l3 + ((d[l3] & 15) << 2) + 3]) === ${IPERF_PORT}) passed++;
    return 0;
  },
});
const report = () => JSON.stringify({ ...f.stats(), rules: f.ruleCounters(), stage: host.dataplane.stats().stages.policy, passed });
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.startsWith('policy ')) {
    f.setPolicy(JSON.parse(line.slice(7)));
    process.stdout.write('SET ' + Date.now() + ' ' + report() + '\\n');
  } else if (line === 'stats') process.stdout.write('STATS ' + report() + '\\n');
});
${RUNNER_STOP_AND_READY}`;

/** Listens on ADDR for each of PORTS; every connection gets a line every 50 ms for LIFE_MS. */
const SERVER = `
const net = require('node:net');
let n = 0;
for (const port of process.env.PORTS.split(',').map(Number)) {
  net.createServer((s) => {
    s.on('error', () => {});
    const t = setInterval(() => s.write('tick ' + port + '\\n'), 50);
    s.on('close', () => clearInterval(t));
  }).listen(port, process.env.ADDR, () => { if (++n === process.env.PORTS.split(',').length) process.stdout.write('LISTEN\\n'); });
}
setTimeout(() => process.exit(0), Number(process.env.LIFE_MS));
`;

/** One connection to ADDR:PORT: CONN <ms>, DATA <ms> per chunk, FAIL <code> (or TIMEOUT after CONNECT_MS). */
const CLIENT = `
const net = require('node:net');
const s = net.connect(Number(process.env.PORT), process.env.ADDR);
const t = setTimeout(() => { process.stdout.write('TIMEOUT\\n'); process.exit(0); }, Number(process.env.CONNECT_MS));
s.on('connect', () => { clearTimeout(t); process.stdout.write('CONN ' + Date.now() + '\\n'); });
s.on('data', () => process.stdout.write('DATA ' + Date.now() + '\\n'));
s.on('error', (e) => process.stdout.write('FAIL ' + e.code + '\\n'));
setTimeout(() => process.exit(0), Number(process.env.LIFE_MS));
`;

describe('policy filter with real sockets, in namespaces', () => {
  let tb: Testbed;
  const children: ChildProcess[] = [];
  const runners: { child: ChildProcess; out: string[] }[] = [];

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'pol' });
    const cfg = meshConfig(tb.hosts, [VNI]);
    for (const [k, h] of tb.hosts.entries()) {
      const child = h.spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', RUNNER], {
        cwd: `${repoRoot}/test`,
        env: { ...process.env, HOST_CFG: JSON.stringify(cfg[k]), POLICY: JSON.stringify(POLICY), HOST_CONFIG_TS: `${repoRoot}/test/lib/host-config.ts` },
      });
      children.push(child);
      const out = collectLines(child);
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
      runners.push({ child, out });
      await until(`runner ${k + 1} READY`, () => (out.includes('READY') ? true : undefined), 40_000).catch((e: Error) => {
        throw new Error(`${e.message}; its stderr (last lines): ${err.split('\n').slice(-12).join(' | ')}`);
      });
    }
    const servers: [number, string, string][] = [[1, WEB, '9000'], [2, DB, '5432,5433,8080']];
    for (const [i, addr, ports] of servers) {
      const s = tb.hosts[i - 1].spawn(process.execPath, ['-e', SERVER], { env: { ...process.env, ADDR: addr, PORTS: ports, LIFE_MS: '120000' } });
      children.push(s);
      await waitForLine(s, /^LISTEN/, 20_000);
    }
  }, 120_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await tb?.destroy();
  }, 60_000);

  function client(from: number, addr: string, port: number, lifeMs: number, connectMs = 3000) {
    const child = tb.hosts[from - 1].spawn(process.execPath, ['-e', CLIENT], { env: { ...process.env, ADDR: addr, PORT: String(port), LIFE_MS: String(lifeMs), CONNECT_MS: String(connectMs) } });
    children.push(child);
    return collectLines(child);
  }

  async function stats(k: number): Promise<{ passed: number; counters: Record<string, number>; stage: Record<string, number>; rules: Record<string, Record<"inside" | "outside", { drops: number; allows: number }>> }> {
    const r = runners[k - 1];
    const before = r.out.length;
    r.child.stdin!.write('stats\n');
    const l = await until('STATS', () => r.out.slice(before).find((x) => x.startsWith('STATS ')), 10_000);
    return JSON.parse(l.slice(6));
  }

  it('web → db:5432 connects and streams; web → db:8080 and db → web:9000 are denied; ping passes, fragmented too', async () => {
    const ok = client(1, DB, 5432, 3000);
    await until('data from db:5432', () => (ok.filter((l) => l.startsWith('DATA')).length >= 5 ? true : undefined), 15_000);
    const denied = client(1, DB, 8080, 5000, 3000);
    const back = client(2, WEB, 9000, 5000, 3000);
    await until('both denied attempts to end', () => (denied.length > 0 && back.length > 0 ? true : undefined), 15_000);
    expect(denied).toEqual(['TIMEOUT']);
    expect(back).toEqual(['TIMEOUT']);
    expect(await ping(tb.hosts[0], DB, 3)).toBe(3);
    // 3000-byte echoes: each request and reply is 3 IP fragments on the TAP (MTU below 1500); the
    // later fragments pass on their first fragment's verdict (they were all dropped before).
    expect(await ping(tb.hosts[0], DB, 3, ['-s', '3000', '-M', 'dont'])).toBe(3);
    const web = await stats(1);
    const db = await stats(2);
    // db → web:9000 dropped at db's egress, web → db:8080 at web's egress, each SYN counted by default.
    expect(web.rules['(default)'].inside.drops).toBeGreaterThanOrEqual(1);
    expect(db.rules['(default)'].inside.drops).toBeGreaterThanOrEqual(1);
    expect(web.rules['web-db'].inside.allows).toBeGreaterThanOrEqual(1);
    expect(db.rules['web-db'].outside.allows).toBeGreaterThanOrEqual(1);
    expect(db.stage.denied).toBe(db.counters.inside_denied + db.counters.outside_denied);
  }, 60_000);

  it('reload on db mid-stream: the quarantined connection gets no data from 200 ms after the swap on, the other keeps streaming', async () => {
    const a = client(1, DB, 5432, 12_000);
    const b = client(1, DB, 5433, 12_000);
    await until('both streams', () => (a.filter((l) => l.startsWith('DATA')).length >= 5 && b.filter((l) => l.startsWith('DATA')).length >= 5 ? true : undefined), 15_000);
    const r = runners[1];
    const before = r.out.length;
    r.child.stdin!.write(`policy ${JSON.stringify(QUARANTINE)}\n`);
    const set = await until('SET', () => r.out.slice(before).find((l) => l.startsWith('SET ')), 10_000);
    const setAt = Number(set.split(' ')[1]);
    await new Promise((res) => setTimeout(res, 3000));
    const after = (out: string[]) => out.filter((l) => l.startsWith('DATA ') && Number(l.split(' ')[1]) > setAt + 200).length;
    expect(after(a)).toBe(0);
    expect(after(b)).toBeGreaterThan(10);
    const db = await stats(2);
    expect(db.counters.flows_revoked).toBe(1);
    expect(db.rules['quarantine-5432'].inside.drops + db.rules['quarantine-5432'].outside.drops).toBeGreaterThanOrEqual(1);
    // A new connection to 5432 is refused by the new rules (at db's ingress: web still has the old policy).
    const c = client(1, DB, 5432, 5000, 3000);
    await until('new attempt to end', () => (c.length > 0 ? true : undefined), 15_000);
    expect(c).toEqual(['TIMEOUT']);
  }, 60_000);

  it('a deny reloaded on db during iperf3 stops the stream within one packet: no packet to its port passes db\'s filter after the swap', async () => {
    // The iperf3 processes are bounded (`timeout`) and killed in afterAll with the rest.
    const server = tb.hosts[1].spawn('timeout', ['40', 'iperf3', '-s', '-1', '--forceflush', '-B', DB, '-p', String(IPERF_PORT)]);
    children.push(server);
    await waitForLine(server, /Server listening/, 20_000);
    const iperf = tb.hosts[0].spawn('timeout', ['30', 'iperf3', '-c', DB, '-p', String(IPERF_PORT), '-t', '20', '-i', '1', '--forceflush', '--connect-timeout', '5000']);
    children.push(iperf);
    const iperfOut = collectLines(iperf);
    const r = runners[1];
    // Streaming: packets to the port pass db's filter (the SET report below is taken in the same
    // turn as the swap, so no packet is judged between the swap and the count).
    for (let t = Date.now(); (await stats(2)).passed <= 200; ) {
      if (Date.now() - t > 20_000) throw new Error(`iperf3 not streaming through db: ${iperfOut.join(' | ')}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const before = r.out.length;
    r.child.stdin!.write(`policy ${JSON.stringify(IPERF_DENIED)}\n`);
    const set = await until('SET', () => r.out.slice(before).find((l) => l.startsWith('SET ')), 10_000);
    const atSwap = JSON.parse(set.slice(set.indexOf(' ', 4) + 1)) as { passed: number; counters: Record<string, number> };
    // Keep the sender trying for 2 s (it retransmits into the deny), then count again.
    await new Promise((res) => setTimeout(res, 2000));
    const later = await stats(2);
    expect(later.passed - atSwap.passed).toBe(0);
    // The stream's next packets were judged: its flows revoked (data and control connection), the
    // rest dropped as no_flow (their flow is gone) or denied by the new rule — which of the two
    // depends on whether iperf3 opened a new connection meanwhile, so both are counted together.
    expect(later.counters.flows_revoked - atSwap.counters.flows_revoked).toBeGreaterThanOrEqual(1);
    expect(later.counters.outside_no_flow + later.counters.outside_denied).toBeGreaterThan(atSwap.counters.outside_no_flow + atSwap.counters.outside_denied);
    expect(iperfOut.some((l) => /sec\s+[\d.]+ [KMG]?Bytes/.test(l))).toBe(true);
    // A new connection to the port is judged by the new rule at db's ingress (web keeps the old policy).
    const denied = later.rules['deny-iperf'].outside.drops;
    const c = client(1, DB, IPERF_PORT, 5000, 2000);
    await until('new attempt to end', () => (c.length > 0 ? true : undefined), 15_000);
    expect(c).toEqual(['TIMEOUT']);
    expect((await stats(2)).rules['deny-iperf'].outside.drops).toBeGreaterThan(denied);
  }, 60_000);
});
