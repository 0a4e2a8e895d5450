/**
 * CA rollover under load (issue 13; docs/pki.md "CA rollover"), real agents in two namespace
 * hosts admitted by certificate (no cluster key: gossip keys derived from the trusted CAs). An
 * iperf3 TCP stream (paced at 200 Mbit/s, so it leaves CPU to a shared machine) runs over the
 * encrypted overlay from host 1 to host 2 while, on both hosts,
 * the operator's three steps are written to the files the agents watch: the trust file gets CA2
 * beside CA1; each node's certificate is re-issued by CA2 (same keys); CA1 is dropped. The stream
 * must see no error and bytes in every one-second interval, nobody is evicted, and at the end both
 * hosts admit both members under CA2 only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { createCa, encodePem, generateSigningKey, signCert, type CaKeyPair } from '@overlay/pki';
import type { AgentStatus } from '@overlay/agent';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { PkiAgentCluster } from './lib/pki-cluster.js';

const STREAM_S = 16;

/** Two agents whose certificates and trust files the test rewrites. */
class PkiCluster extends PkiAgentCluster {
  readonly ids = this.hosts.map(() => generateSigningKey());
  override namePrefix = 'ro';
  /** Write node i's certificate from `ca` (same keys every time). */
  issue(i: number, ca: CaKeyPair): number {
    const cert = signCert(ca, { name: `ro${i}`, prefixes: [`${this.ip(i)}/32`], groups: ['web'], wgKey: this.wgPublic(i), signKey: this.ids[i].publicKey, now: Date.now() - 1000 });
    writeFileSync(this.file(i, 'node.crt'), encodePem('CERTIFICATE', cert.bytes));
    return cert.notAfter;
  }
  trust(i: number, cas: CaKeyPair[]): void {
    writeFileSync(this.file(i, 'ca.crt'), cas.map((c) => encodePem('CERTIFICATE', c.cert.bytes)).join(''));
  }
}

describe('CA rollover under iperf3 (netns, real agents)', () => {
  let tb: Testbed;
  let c: PkiCluster;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'pkro' });
    c = new PkiCluster(tb.hosts, { encrypt: true, startTimeoutMs: 150_000 });
  });
  afterAll(async () => {
    await c?.stopAll();
    await tb?.destroy();
  });

  it('trust CA1+CA2, re-issue from CA2, drop CA1: the stream never stalls, nobody is evicted', async () => {
    const t0 = Date.now();
    const ca1 = createCa({ name: 'ca-one', now: Date.now() - 60_000 });
    const ca2 = createCa({ name: 'ca-two', now: Date.now() - 60_000 });
    for (let i = 0; i < 2; i++) {
      writeFileSync(c.file(i, 'node.key'), encodePem('ED25519 PRIVATE KEY', c.ids[i].seed), { mode: 0o600 });
      c.trust(i, [ca1]);
      c.issue(i, ca1);
    }
    await Promise.all([c.start(0), c.start(1)]);
    const all = (pred: (s: AgentStatus) => boolean) => (ss: (AgentStatus | null)[]) => ss.every((s) => s !== null && pred(s));
    await c.until(all((s) => s.pki?.admitted === 2 && s.counters.programmed === 1 && (s.peers ?? []).length === 1), 40_000);
    const [h1, h2] = tb.hosts;
    let ok = false;
    for (let t = 0; t < 40 && !ok; t++) ok = (await h1.run('ping', ['-c', '1', '-W', '1', c.ip(1)], { timeoutMs: 5000 })).code === 0;
    expect(ok, 'overlay ping before the stream').toBe(true);
    console.log(`rollover: 2 agents admitted under CA1 and pinging ${Date.now() - t0} ms after the test began`);

    const server = h2.spawn('iperf3', ['-s', '-p', '5201', '-1']);
    await new Promise((r) => setTimeout(r, 500));
    const stream = h1.run('iperf3', ['-c', c.ip(1), '-p', '5201', '-t', String(STREAM_S), '-i', '1', '-b', '200M', '-J'], { timeoutMs: (STREAM_S + 30) * 1000 });
    const tStream = Date.now();
    const at = () => `${((Date.now() - tStream) / 1000).toFixed(1)} s`;
    const steps: string[] = [];
    await new Promise((r) => setTimeout(r, 2500));

    // 1. Trust both (CA1 first: it keeps sealing gossip until every host trusts CA2).
    for (let i = 0; i < 2; i++) c.trust(i, [ca1, ca2]);
    await c.until(all((s) => s.pki?.trusted === 2), 10_000, 100);
    steps.push(`both trust CA1+CA2 at ${at()}`);
    // 2. Re-issue every node's certificate from CA2 (same keys): each peer re-admits under CA2.
    for (let i = 0; i < 2; i++) c.issue(i, ca2);
    await c.until(all((s) => s.pki?.byIssuer['ca-two'] === 2), 10_000, 100);
    steps.push(`both admit both under CA2 at ${at()}`);
    // 3. Drop CA1.
    for (let i = 0; i < 2; i++) c.trust(i, [ca2]);
    await c.until(all((s) => s.pki?.trusted === 1), 10_000, 100);
    steps.push(`CA1 dropped on both at ${at()}`);
    const before = (await c.statuses()) as AgentStatus[];

    const r = await stream;
    server.kill();
    // ≥ 10 s after the drop: gossip sealed with the CA2-derived key still flows (a key mismatch
    // would stop every probe: suspect, then dead), and nothing was refused for want of a key.
    const ss = (await c.statuses()) as AgentStatus[];
    for (const [k, s] of ss.entries()) {
      expect(s.counters.packets_received, `${s.name} hears gossip after CA1 went`).toBeGreaterThan(before[k].counters.packets_received);
      expect([s.drops.auth_failed ?? 0, s.drops.pushpull_auth_failed ?? 0], `${s.name}: no packet failed to open`).toEqual([0, 0]);
    }
    const j = JSON.parse(r.stdout) as { error?: string; intervals: { sum: { bytes: number } }[]; end: { sum_received: { bytes: number }; sum_sent: { retransmits?: number } } };
    const bytes = j.intervals.map((x) => x.sum.bytes);
    console.log(`rollover under iperf3: ${steps.join('; ')}; stream ${(j.end.sum_received.bytes / 2 ** 20).toFixed(1)} MiB in ${bytes.length} intervals, per interval [${bytes.map((b) => (b / 2 ** 20).toFixed(1)).join(' ')}] MiB, retransmits ${j.end.sum_sent.retransmits ?? 'n/a'}, error ${j.error ?? 'none'}; test ${Date.now() - t0} ms`);
    expect(r.code, r.stderr).toBe(0);
    expect(j.error).toBeUndefined();
    expect(bytes.length).toBeGreaterThanOrEqual(STREAM_S);
    expect(bytes.filter((b) => b === 0), 'one-second intervals without bytes').toEqual([]);
    for (const s of ss) {
      expect(s.pki!.admitted, `${s.name} admits both`).toBe(2);
      expect(s.pki!.byIssuer).toEqual({ 'ca-two': 2 });
      expect(s.pki!.counters.evicted_expired + s.pki!.counters.evicted_revoked + s.pki!.counters.self_evicted, `${s.name} evicted nobody`).toBe(0);
      expect(s.pki!.counters.trust_reloaded).toBe(2);
      expect(s.members.filter((m) => m.state === 'alive').length, `${s.name} sees both alive`).toBe(2);
      expect((s.peers ?? []).length).toBe(1);
    }
    // Gossip still flows under the CA2-derived key: a ping and a fresh status round trip.
    expect((await h1.run('ping', ['-c', '2', '-W', '1', c.ip(1)], { timeoutMs: 5000 })).code).toBe(0);
  }, 300_000);
});
