import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOIN_RETRY_MAX_MS, LAN, suspicionTimeoutMs } from '@overlay/agent';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { AgentCluster } from './lib/agent-cluster.js';

const N = 5;

/** Ping until one reply or `tries` rounds: a lost first initiation is retried after REKEY_TIMEOUT (5 s). */
async function reachable(host: Parameters<typeof ping>[0], ip: string, tries = 4): Promise<boolean> {
  for (let t = 0; t < tries; t++) if ((await ping(host, ip, 2)) > 0) return true;
  return false;
}
const liveCount = (s: { members: { state: string }[] } | null) => (s ? s.members.filter((m) => m.state === 'alive').length : -1);

// Five namespace hosts run the real agent (LAN profile, cluster-key gossip, WireGuard underlay
// encryption) with our dataplane over a TAP each; they join through host 1 only.
describe('agents in network namespaces', () => {
  let tb: Testbed;
  let c: AgentCluster;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: N, prefix: 'agt' });
    c = new AgentCluster(tb.hosts, { profile: 'lan', encrypt: true });
    await c.start(0);
    for (let i = 1; i < N; i++) await c.start(i);
  }, 120_000);
  afterAll(async () => {
    await c?.stopAll();
    await tb?.destroy();
  });

  it('join through one seed, learn every endpoint by gossip, and reach all-pairs ping', async () => {
    await c.until((s) => s.every((x) => liveCount(x) === N && x!.counters.programmed === N - 1), 30_000);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        if (i === j) continue;
        expect(await reachable(tb.hosts[i], c.ip(j)), `host ${i + 1} → ${c.ip(j)}`).toBe(true);
      }
    }
  }, 180_000);

  it('carries full-size TCP across the encrypted overlay with a matching checksum', async () => {
    // Full-size frames prove the agent sized the overlay MTU for VXLAN + WireGuard overhead:
    // a TAP at the underlay MTU would have its large frames refused by the underlay socket.
    const r = await tcpTransfer(tb.hosts[0], tb.hosts[1], c.ip(1), 5021, 8 * 1024 * 1024, 60_000);
    expect(r.received).toEqual(r.sent);
    expect(r.received.bytes).toBe(8 * 1024 * 1024);
  }, 90_000);

  it('`agent status` shows members, endpoints, WireGuard peers and drop counters', async () => {
    const h = tb.hosts[0];
    const r = await h.run('node', ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts', 'status', '--socket', c.procs[0]!.socket], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('MEMBERS');
    expect(r.stdout.match(/ alive /g)?.length).toBe(N);
    expect(r.stdout).toContain('NETWORK blue');
    for (let i = 0; i < N; i++) expect(r.stdout).toContain(c.ip(i));
    expect(r.stdout).toContain('PEERS');
    expect(r.stdout.match(/ up handshake/g)?.length ?? 0).toBeGreaterThanOrEqual(1);
    const j = await h.run('node', ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts', 'status', '--json', '--socket', c.procs[0]!.socket], { timeoutMs: 20_000 });
    const s = JSON.parse(j.stdout);
    expect(s.peers).toHaveLength(N - 1);
    expect(s.drops).toBeTypeOf('object');
  }, 60_000);

  it('kill -9 one agent: every other removes its endpoints within the suspicion bound; restarted, it rejoins and is reachable', async () => {
    const victim = N - 1;
    const t0 = Date.now();
    await c.procs[victim]!.kill('SIGKILL');
    c.procs[victim] = null;
    // Bound: every member probes it within 2 rounds, then at most the max suspicion timeout.
    const bound = 2 * N * LAN.probeIntervalMs + LAN.suspicionMaxTimeoutMult * suspicionTimeoutMs(LAN, N) + 3000;
    await c.until((s) => s.every((x, i) => i === victim || (x !== null && x.counters.programmed === N - 2 && x.members.some((m) => m.state === 'dead'))), bound);
    const took = Date.now() - t0;
    console.log(`agent kill -9 → endpoints removed everywhere after ${took} ms (bound ${bound} ms)`);
    expect(took).toBeLessThanOrEqual(bound);

    await c.start(victim);
    await c.until((s) => s.every((x) => liveCount(x) === N && x!.counters.programmed === N - 1), 30_000);
    expect(await reachable(tb.hosts[0], c.ip(victim))).toBe(true);
    expect(await reachable(tb.hosts[victim], c.ip(1))).toBe(true);
  }, 120_000);

  it('partition 2 | 3 with a change on one side, heal: tables converge to the same digest everywhere', async () => {
    const [a, b] = [tb.hosts.slice(0, 2), tb.hosts.slice(2)];
    await tb.partition(a, b);
    // Each side declares the other dead.
    await c.until((s) => s.every((x, i) => x !== null && liveCount(x) === (i < 2 ? 2 : 3)), 60_000, 500);
    // A change on side B while split: host 4 restarts with another overlay address, joining
    // through host 3 (host 1, the usual seed, is on the other side).
    // SIGTERM is a graceful leave: exit code 0, and its side hears `left`, not a failure.
    const name3 = c.procs[3]!.host.name.slice(-12) + '-a3';
    expect(await c.procs[3]!.kill('SIGTERM')).toBe(0);
    c.procs[3] = null;
    await c.until((s) => [2, 4].every((i) => s[i]!.members.find((m) => m.name === name3)?.state === 'left'), 10_000);
    await c.start(3, '198.19.0.44', 2);
    c.ip = (i: number) => (i === 3 ? '198.19.0.44' : `198.19.0.${i + 1}`);
    await c.until((s) => new Set(s.slice(2).map((x) => x?.digest)).size === 1, 30_000);
    const split = await c.statuses();
    expect(split[0]!.digest).not.toBe(split[2]!.digest);
    await tb.heal();
    const t = await c.until((s) => s.every((x) => liveCount(x) === N) && new Set(s.map((x) => x?.digest)).size === 1, 90_000, 500);
    console.log(`partition healed → tables converged after ${t} ms`);
    expect(await reachable(tb.hosts[0], '198.19.0.44')).toBe(true);
  }, 240_000);
});

// Mixed versions: host 1 runs a "newer" agent whose records carry a field this build has no
// schema for. The older agents must verify those records over the bytes received, store them and
// pass them on unchanged (protocol 1 re-encoded before verifying and refused them all).
describe('a mixed-version cluster in network namespaces', () => {
  const M = 3;
  let tb: Testbed;
  let c: AgentCluster;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: M, prefix: 'agm' });
    c = new AgentCluster(tb.hosts, { profile: 'lan', newer: [0] });
    for (let i = 0; i < M; i++) await c.start(i);
  }, 120_000);
  afterAll(async () => {
    await c?.stopAll();
    await tb?.destroy();
  });

  it('converges: every agent holds and programs every endpoint, tables identical, no record refused', async () => {
    const t = await c.until((s) => s.every((x) => liveCount(x) === M && x!.counters.programmed === M - 1) && new Set(s.map((x) => x?.digest)).size === 1, 60_000);
    console.log(`mixed-version cluster (1 newer, ${M - 1} older) converged after ${t} ms`);
    const s = await c.statuses();
    for (const x of s) {
      expect(x!.networks.blue.filter((e) => !e.deleted)).toHaveLength(M);
      expect(x!.drops.record_bad_signature + x!.drops.record_malformed).toBe(0);
    }
    // The newer node's endpoint reached host 3 and is usable across the overlay both ways.
    expect(await reachable(tb.hosts[2], c.ip(0))).toBe(true);
    expect(await reachable(tb.hosts[0], c.ip(2))).toBe(true);
  }, 120_000);
});

// A seed that is not up yet: the agent retries the join with backoff (1 s doubling to 8 s) instead
// of waiting for its push-pull timer (60 s in the LAN profile).
describe('joining through a seed that starts later, in network namespaces', () => {
  let tb: Testbed;
  let c: AgentCluster;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'agj' });
    c = new AgentCluster(tb.hosts, { profile: 'lan', seed: 0 });
  }, 60_000);
  afterAll(async () => {
    await c?.stopAll();
    await tb?.destroy();
  });

  it('the seed starting 6 s after the joiner is joined within the backoff then in effect', async () => {
    await c.start(1); // its seed (host 1's agent) is not running: every join attempt is refused
    await new Promise((r) => setTimeout(r, 6000));
    const t0 = Date.now();
    await c.start(0);
    const took = await c.until((s) => s.every((x) => liveCount(x) === 2), 30_000, 100);
    const s = await c.statuses();
    console.log(`seed up 6 s after the joiner: joined ${took} ms later (${Date.now() - t0} ms incl. seed start), ${s[1]!.counters.join_attempts} join attempts`);
    // Attempts at ~0, 1, 3, 7 s (±25 %): the one after the seed is up comes within one backoff step.
    expect(took).toBeLessThanOrEqual(JOIN_RETRY_MAX_MS * 1.25 + 2000);
    expect(s[1]!.counters.join_attempts).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
