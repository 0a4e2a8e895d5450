import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { parse } from 'yaml';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { queryControl, type AgentStatus } from '@overlay/agent';
import { publicKeyOf } from '@overlay/crypto';
import { createTestbed, type Testbed, type TestHost } from './lib/testbed.js';
import { AgentCluster } from './lib/agent-cluster.js';
import { FAMILIES } from '../packages/agent/src/metrics.js';
import { describeStatus, formatBytes, formatStatus, type NodeStatus } from '../packages/agent/src/status.js';

const PORT = 9464; // each namespace has its own loopback

/** AgentCluster configs plus a metrics endpoint on loopback and debug logs. */
class MetricsCluster extends AgentCluster {
  override config(i: number): string {
    // A policy that denies TCP port 22 and allows the rest: its filter's counters are exported too.
    const policy = `policies: [{ network: blue, defaultAction: allow, tiers: { admin: [{ id: no-ssh, action: deny, proto: tcp, ports: ['22'] }] } }]\n`;
    return super.config(i) + `metrics: { listen: 127.0.0.1:${PORT} }\nlog: { level: debug }\n` + policy;
  }
}

interface Running {
  proc: ChildProcess;
  stderr: () => string;
  socket: string;
}

async function curlMetrics(h: TestHost): Promise<ParsedFamily[]> {
  const text = await h.exec('curl', ['-sfS', '--max-time', '5', `http://127.0.0.1:${PORT}/metrics`], { timeoutMs: 10_000 });
  return parsePrometheusTextFormat(text);
}

const value = (fams: ParsedFamily[], name: string, labels: Record<string, string>) => {
  const f = fams.find((x) => x.name === name);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return m ? Number(m.value) : NaN;
};
const sum = (fams: ParsedFamily[], name: string) => (fams.find((x) => x.name === name)?.metrics ?? []).reduce((a, s) => a + Number(s.value), 0);

// Two namespace hosts run the real agent (encrypted overlay) with `metrics:` and debug logs. The
// endpoint is scraped with curl inside each namespace and parsed by a Prometheus text parser;
// traffic, junk datagrams and gossip must move the matching counters. Every log line is JSON
// with time and level, and no key of the config appears anywhere in the logs.
describe('agent metrics endpoint and structured logs', () => {
  let tb: Testbed;
  let c: MetricsCluster;
  const run: Running[] = [];
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'mtr' });
    c = new MetricsCluster(tb.hosts, { encrypt: true });
    for (let i = 0; i < 2; i++) {
      const file = join(c.dir, `m${i}.yaml`);
      writeFileSync(file, c.config(i), { mode: 0o600 });
      const proc = tb.hosts[i].spawn('node', ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts', '--config', file], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr?.on('data', (d) => (err += d));
      run.push({ proc, stderr: () => err, socket: join(c.dir, `a${i}.sock`) });
    }
    const deadline = Date.now() + 60_000;
    for (;;) {
      const st = await Promise.all(run.map((r) => (queryControl(r.socket) as Promise<AgentStatus>).catch(() => null)));
      if (st.every((s) => s && s.members.filter((m) => m.state === 'alive').length === 2)) break;
      for (const r of run) if (r.proc.exitCode !== null) throw new Error(`agent exited: ${r.stderr()}`);
      if (Date.now() > deadline) throw new Error(`agents did not converge: ${run.map((r) => r.stderr()).join('\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }, 120_000);
  afterAll(async () => {
    for (const r of run) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await c?.stopAll();
    await tb?.destroy();
  });

  it('every family is served with its help text; traffic, junk and gossip move the counters', async () => {
    const [h0, h1] = tb.hosts;
    const before = await curlMetrics(h0);
    for (const f of FAMILIES) {
      const got = before.find((x) => x.name === f.name);
      expect(got, f.name).toBeDefined();
      expect(got!.help).toBe(f.help);
      expect(got!.type).toBe(f.type.toUpperCase());
    }
    for (const f of before) expect(f.name).toMatch(/^overlay_[a-z]+_[a-z_]+$/);
    expect(value(before, 'overlay_agent_members', { state: 'alive' })).toBe(2);
    expect(value(before, 'overlay_agent_endpoints', { network: 'blue', state: 'active' })).toBe(2);

    // Overlay traffic (bounded), a junk datagram to the VXLAN port and one to the gossip port.
    await h0.exec('ping', ['-c', '10', '-i', '0.05', '-W', '2', c.ip(1)], { timeoutMs: 15_000 });
    await h0.exec('bash', ['-c', `printf 'x' > /dev/udp/${h1.underlay}/4789; printf 'junk' > /dev/udp/${h1.underlay}/7946`]);
    // A TCP connect to port 22 the policy denies (refused or timed out: either way bounded to 2 s).
    await h0.run('timeout', ['2', 'bash', '-c', `exec 3<>/dev/tcp/${c.ip(1)}/22`], { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 300));
    const after0 = await curlMetrics(h0);
    const after1 = await curlMetrics(h1);
    const moved = (name: string, labels: Record<string, string>, by = 10) => {
      expect(value(after0, name, labels) - value(before, name, labels), `${name} ${JSON.stringify(labels)}`).toBeGreaterThanOrEqual(by);
    };
    moved('overlay_dataplane_inside_total', { counter: 'frames' });
    moved('overlay_dataplane_outside_total', { counter: 'delivered' });
    moved('overlay_native_device_total', { network: 'blue', vni: '100', device: 'ov0', counter: 'rxPackets' });
    moved('overlay_crypto_tunnel_total', { direction: 'tx', counter: 'packets' });
    moved('overlay_agent_gossip_total', { counter: 'packets_received' }, 1);
    const peer1 = after0.find((f) => f.name === 'overlay_crypto_peer_bytes_total')!.metrics.find((m) => m.labels?.direction === 'tx')!;
    expect(Number(peer1.value)).toBeGreaterThan(10 * 84);
    expect(value(after0, 'overlay_crypto_peer_up', { peer: peer1.labels!.peer })).toBe(1);
    expect(value(after0, 'overlay_crypto_peer_last_handshake_seconds', { peer: peer1.labels!.peer }) * 1000).toBeGreaterThan(Date.now() - 60_000);
    // The junk went to host 2: a one-byte datagram is too short for WireGuard; the gossip junk does not open.
    expect(value(after1, 'overlay_crypto_drops_total', { reason: 'too_short' })).toBeGreaterThanOrEqual(1);
    expect(sum(after1, 'overlay_agent_drops_total')).toBeGreaterThanOrEqual(1);
    // The policy: the ping opened flows, the SYN to port 22 was denied (at the sender's or the receiver's filter).
    const pol = (f: ParsedFamily[], re: RegExp) => (f.find((x) => x.name === 'overlay_policy_total')?.metrics ?? []).filter((m) => re.test(m.labels!.counter) && m.labels!.network === 'blue').reduce((a, m) => a + Number(m.value), 0);
    expect(pol(after0, /^flows_opened$/) + pol(after1, /^flows_opened$/)).toBeGreaterThanOrEqual(1);
    expect(pol(after0, /_denied$/) + pol(after1, /_denied$/)).toBeGreaterThanOrEqual(1);
    expect(value(after0, 'overlay_policy_flows', { network: 'blue', vni: '100' })).toBeGreaterThanOrEqual(0);
    // Every dataplane and agent drop reason is listed (zeros included): the list is the contract.
    expect(after1.find((f) => f.name === 'overlay_dataplane_drops_total')!.metrics.map((m) => m.labels!.reason)).toContain('unknown_vni');

    expect((await h0.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${PORT}/`])).stdout).toBe('404');
  }, 60_000);

  it('status shows per-peer endpoint, handshake and transfer and per-network device counters, in text and --json alike', async () => {
    const s = (await queryControl(run[0].socket)) as NodeStatus;
    const j = describeStatus(s);
    const text = formatStatus(s);
    const peer = j.peers![0];
    expect(peer.rxBytes).toBeGreaterThan(10 * 84);
    expect(peer.txBytes).toBeGreaterThan(10 * 84);
    expect(peer.lastHandshake).toBeGreaterThan(Date.now() - 60_000);
    expect(text).toContain(`\n  listening: ${tb.hosts[0].underlay}:7946  vtep: ${tb.hosts[0].underlay}:4789\n  public key: ${publicKeyOf(parse(c.config(0)).wireguard.privateKey as string)}\n  metrics: http://127.0.0.1:${PORT}/metrics\n`);
    expect(text).toContain(`  ${peer.publicKey} ${peer.endpoint} up handshake`);
    expect(text).toContain(`    member: ${j.members.find((m) => m.wireguard === peer.publicKey)!.name}`);
    expect(text).toContain(`    endpoint: ${tb.hosts[1].underlay}:4789`);
    expect(text).toMatch(/    latest handshake: (\d+ seconds? ago|just now)/);
    expect(text).toContain(`    transfer: ${formatBytes(peer.rxBytes!)} received, ${formatBytes(peer.txBytes!)} sent`);
    const dev = j.dataplane!.devices.find((d) => d.network === 'blue')!;
    expect(dev).toMatchObject({ vni: 100, device: 'ov0' });
    expect(dev.rxPackets).toBeGreaterThanOrEqual(10);
    expect(text).toContain(`NETWORK blue  vni 100  device ov0  mtu ${dev.mtu}`);
    expect(text).toContain('  endpoints: 2 active, 0 owner-dead, 0 tombstoned');
    expect(text).toContain(`  device: ${dev.rxPackets} packets (${formatBytes(dev.rxBytes)}) received, ${dev.txPackets} packets`);
    expect(j.dataplane!.inside.frames).toBeGreaterThanOrEqual(10);
    expect(text).toContain(`inside:  frames ${j.dataplane!.inside.frames} `);
    // The junk datagram host 1 sent host 2 is a tunnel drop in host 2's DROPS.
    expect(formatStatus((await queryControl(run[1].socket)) as NodeStatus)).toMatch(/\n  tunnel\.too_short [1-9]/);
  }, 30_000);

  it('logs are JSON lines with time, level and node; no key of the config is in them', async () => {
    // Stop gracefully so the leave is logged too.
    for (const r of run) r.proc.kill('SIGTERM');
    await Promise.all(run.map((r) => new Promise((res) => (r.proc.exitCode !== null ? res(null) : r.proc.once('exit', res)))));
    for (let i = 0; i < run.length; i++) {
      const text = run[i].stderr();
      const lines = text.split('\n').filter(Boolean);
      expect(lines.length).toBeGreaterThanOrEqual(3);
      const recs = lines.map((l) => JSON.parse(l) as { time: number; level: number; msg: string; node: string });
      for (const r of recs) {
        expect(typeof r.time).toBe('number');
        expect(typeof r.level).toBe('number');
        expect(r.node).toMatch(/-a\d$/);
      }
      expect(recs.map((r) => r.msg)).toEqual(expect.arrayContaining(['agent started', 'member joined', 'metrics endpoint listening']));
      const cfg = parse(c.config(i)) as { signingKey: string; encryption: { clusterKeys: string[] }; wireguard: { privateKey: string } };
      const keys = [cfg.signingKey, ...cfg.encryption.clusterKeys, cfg.wireguard.privateKey];
      for (const k of keys) {
        expect(k.length).toBeGreaterThanOrEqual(40);
        // The whole key and any 16-character piece of it, in base64 and hex.
        const hex = Buffer.from(k, 'base64').toString('hex');
        for (const form of [k, hex]) for (let j = 0; j + 16 <= form.length; j += 8) expect(text.includes(form.slice(j, j + 16)), `a piece of a key in host ${i}'s log`).toBe(false);
      }
    }
  }, 30_000);
});
