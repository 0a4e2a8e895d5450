import type { ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, waitForLine, type Testbed } from './lib/testbed.js';

// The embedded DNS in network namespaces. Host 1 runs openHost (the agent's assembly) with the
// 'dns' responder stage on its network: its own kernel, behind the TAP vx0 (198.19.0.1), is the
// endpoint, and the resolver address 198.19.0.53 / 2001:db8:42::53 exists nowhere but in the
// stage (ARP/ND answered from a neighbour entry, no socket, no DNAT rule). Names that are not
// ours go from host 1's namespace over the underlay to dnsmasq on host 2. Host processes use the
// socket server on 127.0.0.53 (TCP, and UDP on @overlay/native's batched UdpTransport).

const testDir = fileURLToPath(new URL('.', import.meta.url));

const RUNNER = `
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { UdpTransport } from '@overlay/native';
import { ServiceDirectory, Forwarder, DnsResponder, DnsServer, createDnsCounters } from '@overlay/services';
const cfg = JSON.parse(process.argv[1]);
const host = await openHost({
  underlay: { address: cfg.address },
  networks: [{ vni: 42, tap: 'vx0', mac: '02:00:00:00:01:01', addresses: ['198.19.0.1/24', '2001:db8:42::1/64'],
    neighbours: [{ ip: '198.19.0.53', mac: '02:00:00:00:00:53' }, { ip: '2001:db8:42::53', mac: '02:00:00:00:00:53' }] }],
});
const directory = new ServiceDirectory();
directory.setService({ name: 'web', network: 'blue', vip: ['198.19.1.10'] });
for (let i = 1; i <= 3; i++) directory.updateInstance('blue', 'web', { id: 'web-' + i, addresses: ['198.19.0.' + (10 + i), '2001:db8:42::' + (10 + i)], ports: [{ name: 'http', port: 8080, proto: 'tcp' }], healthy: true });
directory.setService({ name: 'big', network: 'blue' });
for (let i = 0; i < 300; i++) directory.updateInstance('blue', 'big', { id: 'b' + i, addresses: ['198.19.' + (2 + (i >> 8)) + '.' + (i & 255)], healthy: true });
directory.setService({ name: 'secret', network: 'red' });
directory.updateInstance('red', 'secret', { id: 's1', addresses: ['198.19.9.1'], healthy: true });
const counters = createDnsCounters();
const forwarder = new Forwarder({ counters, upstreams: cfg.upstreams });
const responder = new DnsResponder({ directory, networks: ['blue'], address4: '198.19.0.53', address6: '2001:db8:42::53', forwarder, counters, mtu: host.devices[0].mtu });
host.dataplane.addStage(42, responder);
const server = await DnsServer.listen({ directory, networks: ['blue'], address: '127.0.0.53', port: 53, counters, forward: { upstreams: cfg.upstreams },
  udpTransport: (address, port) => UdpTransport.bind({ address, port }) });
const stop = async () => { forwarder.close(); await server.close(); await host.close(); process.stdout.write('BYE\\n', () => process.exit(0)); };
process.on('SIGTERM', () => void stop());
createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, a, b] = l.trim().split(' ');
  if (cmd === 'stats') process.stdout.write('STATS ' + JSON.stringify({ dns: counters.snapshot(), dataplane: host.stats().dataplane, held: responder.heldCount, udpBatched: server.udpBatched }) + '\\n');
  if (cmd === 'health') { directory.setHealthy('blue', 'web', a, b === 'true'); process.stdout.write('OK\\n'); }
});
process.stdout.write('READY\\n');
`;

interface Stats {
  dns: Record<string, number>;
  dataplane: { inside: { stageReplies: number; stageTaken: number; frames: number }; drops: Record<string, number>; stages: Record<string, Record<string, number>> };
  held: number;
  udpBatched: boolean;
}

describe('embedded DNS in network namespaces (dig through our resolver)', () => {
  let tb: Testbed;
  let runner: ChildProcess;
  let dnsmasq: ChildProcess;
  const lines: string[] = [];
  let waiters: Array<(l: string) => void> = [];
  const next = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${prefix} from the runner`)), 10_000);
      waiters.push((l) => {
        if (!l.startsWith(prefix)) return;
        clearTimeout(t);
        resolve(l.slice(prefix.length));
      });
    });
  const stats = async (): Promise<Stats> => {
    const p = next('STATS ');
    runner.stdin!.write('stats\n');
    return JSON.parse(await p) as Stats;
  };
  const dig = async (args: string[], timeoutMs = 30_000) => (await tb.hosts[0].run('dig', ['+tries=3', '+time=2', ...args], { timeoutMs })).stdout;
  const status = (out: string) => /status: (\w+)/.exec(out)?.[1];

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'dns' });
    const [h1, h2] = tb.hosts;
    dnsmasq = h2.spawn('dnsmasq', ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${h2.underlay}`, '--address=/example.test/198.19.7.7', '--address=/nothing.test/', '--log-facility=-', '--pid-file=', '--user=root']);
    runner = h1.spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', RUNNER, JSON.stringify({ address: h1.underlay, upstreams: [h2.underlay] })], { cwd: testDir });
    let err = '';
    runner.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    runner.stdout!.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n')) {
        if (l === '') continue;
        lines.push(l);
        for (const w of waiters) w(l);
      }
    });
    try {
      await waitForLine(runner, /^READY/, 60_000);
    } catch (e) {
      throw new Error(`runner did not start: ${err}`, { cause: e });
    }
  }, 90_000);
  afterAll(async () => {
    waiters = [];
    runner?.kill('SIGTERM');
    dnsmasq?.kill('SIGTERM');
    await tb?.destroy();
  });

  it('answers an endpoint inline: A, AAAA over IPv6, SRV, PTR, and nothing listens on port 53 for the overlay', async () => {
    const before = await stats();
    expect((await dig(['@198.19.0.53', '+short', 'web'])).trim()).toBe('198.19.1.10');
    expect((await dig(['@198.19.0.53', '+short', 'tasks.web'])).trim().split('\n').sort()).toEqual(['198.19.0.11', '198.19.0.12', '198.19.0.13']);
    expect((await dig(['@2001:db8:42::53', '+short', 'tasks.web', 'AAAA'])).trim().split('\n').sort()).toEqual(['2001:db8:42::11', '2001:db8:42::12', '2001:db8:42::13']);
    expect((await dig(['@198.19.0.53', '+short', '_http._tcp.web', 'SRV'])).trim().split('\n')).toHaveLength(3);
    expect((await dig(['@198.19.0.53', '+short', '-x', '198.19.0.12'])).trim()).toBe('web-2.tasks.web.');
    expect(status(await dig(['@198.19.0.53', 'secret']))).toBe('NXDOMAIN');
    const after = await stats();
    expect(after.dataplane.inside.stageReplies - before.dataplane.inside.stageReplies).toBeGreaterThanOrEqual(6);
    // No socket holds the resolver address, no NAT rule exists: the stage answered.
    const ss = (await tb.hosts[0].exec('ss', ['-Hlnu'])).split('\n').filter((l) => /198\.19\.0\.53|2001:db8:42::53|\*:53 |0\.0\.0\.0:53 /.test(l));
    expect(ss).toEqual([]);
    expect(await tb.hosts[0].exec('ip', ['-o', 'addr', 'show'])).not.toMatch(/198\.19\.0\.53/);
  });

  it('health changes show at once (TTL 5): an unhealthy instance leaves tasks.<svc>', async () => {
    const ok = next('OK');
    runner.stdin!.write('health web-3 false\n');
    await ok;
    expect((await dig(['@198.19.0.53', '+short', 'tasks.web'])).trim().split('\n').sort()).toEqual(['198.19.0.11', '198.19.0.12']);
    expect((await dig(['@198.19.0.53', '+short', 'all.tasks.web'])).trim().split('\n')).toHaveLength(3);
  });

  it('a 300-instance RRset: TC over UDP, all 300 over TCP to the resolver address (answered by the stage) and from the host socket', async () => {
    const udp = await dig(['@198.19.0.53', '+ignore', '+bufsize=1232', 'all.tasks.big']);
    expect(udp).toMatch(/flags: qr aa tc/);
    const tcp = await dig(['@198.19.0.53', '+tcp', '+short', 'all.tasks.big']);
    expect(new Set(tcp.trim().split('\n')).size).toBe(300);
    const fallback = await dig(['@198.19.0.53', '+short', 'all.tasks.big']);
    expect(new Set(fallback.trim().split('\n')).size).toBe(300);
    const tcp6 = await dig(['@2001:db8:42::53', '+tcp', '+short', 'tasks.web', 'AAAA']);
    expect(tcp6.trim().split('\n')).toHaveLength(2);
    const host = await dig(['@127.0.0.53', '+tcp', '+short', 'all.tasks.big']);
    expect(new Set(host.trim().split('\n')).size).toBe(300);
  });

  it('a TCP query split over two segments (route MTU 300 to the resolver, a 400-byte padded query) is answered by the stage', async () => {
    const h1 = tb.hosts[0];
    await h1.exec('ip', ['route', 'add', '198.19.0.53/32', 'dev', 'vx0', 'mtu', 'lock', '300']);
    try {
      const before = await stats();
      const out = await dig(['@198.19.0.53', '+tcp', '+padding=400', '+tries=1', '+short', 'all.tasks.web']);
      expect(out.trim().split('\n').sort()).toEqual(['198.19.0.11', '198.19.0.12', '198.19.0.13']);
      const after = await stats();
      expect(after.dns.tcp_reassembled - before.dns.tcp_reassembled).toBe(1);
      for (const k of ['tcp_reassembly_full', 'tcp_reassembly_oversize', 'tcp_reassembly_expired', 'tcp_reassembly_out_of_order']) expect(after.dns[k] - before.dns[k]).toBe(0);
    } finally {
      await h1.run('ip', ['route', 'del', '198.19.0.53/32', 'dev', 'vx0']);
    }
  });

  it('the host socket answers over batched UDP (native UdpTransport)', async () => {
    expect((await stats()).udpBatched).toBe(true);
    expect((await dig(['@127.0.0.53', '+short', 'web'])).trim()).toBe('198.19.1.10');
    expect(status(await dig(['@127.0.0.53', 'secret']))).toBe('NXDOMAIN');
  });

  it('forwards other names to the upstream (dnsmasq on host 2) from the responder and from the socket', async () => {
    expect((await dig(['@198.19.0.53', '+short', 'example.test'])).trim()).toBe('198.19.7.7');
    expect((await dig(['@127.0.0.53', '+short', 'www.example.test'])).trim()).toBe('198.19.7.7');
    expect(status(await dig(['@198.19.0.53', 'a.nothing.test']))).toBe('NXDOMAIN');
    const s = await stats();
    expect(s.dataplane.inside.stageTaken).toBeGreaterThanOrEqual(2);
    expect(s.dns.forward_answered).toBeGreaterThanOrEqual(3);
    expect(s.held).toBe(0);
  });

  it('under 5 % loss (nftables on the endpoint side of vx0, both ways, and netem on the underlay) every query is answered', async () => {
    const h1 = tb.hosts[0];
    const batch = join(tmpdir(), `services-dns-${process.pid}.txt`);
    const rules = [
      'add table inet h9dnsloss',
      'add chain inet h9dnsloss out { type filter hook output priority 0 ; }',
      'add chain inet h9dnsloss in { type filter hook input priority 0 ; }',
      'add rule inet h9dnsloss out oifname "vx0" udp dport 53 numgen random mod 100 < 5 counter drop',
      'add rule inet h9dnsloss in iifname "vx0" udp sport 53 numgen random mod 100 < 5 counter drop',
    ];
    await h1.exec('nft', ['-f', '-'], { input: rules.join('\n') + '\n' });
    await tb.netem(h1, 'loss 5%');
    try {
      const names: string[] = [];
      for (let i = 0; i < 120; i++) names.push(i % 6 === 5 ? `n${i}.example.test` : `b${i}.tasks.big`);
      writeFileSync(batch, names.map((n) => `${n} A`).join('\n') + '\n');
      // Each try of a forwarded name crosses three 5 % drops (query on vx0, upstream query on the
      // underlay, answer on vx0): lost with p ≈ 1 − 0.95³ ≈ 0.143; ours cross two: p ≈ 0.0975. A
      // retry joins the pending upstream query and resends it (forward.ts), and the forwarder's
      // 1.5 s timeout outlasts dig's 1 s retry interval, so no SERVFAIL ends a try early. P(some
      // name never answered in 8 tries) ≈ 20 × 0.143⁸ + 100 × 0.0975⁸ ≈ 3 × 10⁻⁶ per run.
      const r = await h1.run('dig', ['@198.19.0.53', '+short', '+tries=8', '+time=1', '-f', batch], { timeoutMs: 240_000 });
      const answers = r.stdout.split('\n').filter((l) => /^198\.19\./.test(l));
      expect(answers).toHaveLength(120);
      expect(answers.filter((a) => a === '198.19.7.7')).toHaveLength(20);
      // Queries dig gave up on may still wait for upstream (≤ 1.5 s timeout): then every slot is back.
      let s = await stats();
      for (let i = 0; i < 30 && s.held > 0; i++) {
        await new Promise((r) => setTimeout(r, 200));
        s = await stats();
      }
      expect(s.held).toBe(0);
      // The loss was real: the rules dropped queries and answers.
      const dropped = [...(await h1.exec('nft', ['list', 'table', 'inet', 'h9dnsloss'])).matchAll(/packets (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
      expect(dropped).toBeGreaterThan(0);
    } finally {
      rmSync(batch, { force: true });
      await h1.run('nft', ['delete', 'table', 'inet', 'h9dnsloss']);
      await tb.clearNetem(h1);
    }
  }, 300_000);
});
