/**
 * CA rollover under 5 % underlay loss while iperf3 runs (issue 13: "CA rollover under iperf3 → 0
 * reconnect errors … all also under 5 % loss"; the lossless test is test/pki-rollover.test.ts).
 * Three agents admitted by certificate (no cluster key: gossip keys come from the trusted CAs);
 * every host's underlay drops 5 % of the packets entering and, independently, 5 % of those
 * leaving (test/lib/underlay-loss.ts) from before the agents start. A paced iperf3 TCP stream runs
 * over the encrypted overlay from host 1 to host 2 while on every host the trust file gets CA2
 * beside CA1, the certificates are re-issued by CA2 (same keys), and CA1 is dropped. The stream
 * must end without error, nobody is evicted, every host keeps both tunnel peers and sees every
 * member alive, no packet fails to open, and a checksummed transfer after the rollover is intact.
 *
 * The rules act on what a socket hands the kernel: where the agent's data path sends with UDP
 * GSO, a dropped packet is a super-packet of several datagrams (harsher for the stream than
 * per-datagram loss; gossip datagrams are single).
 *
 * Failure probability per run (a packet between two hosts is lost with p = 1 − 0.95² = 0.0975,
 * a round trip with r = 1 − 0.95⁴ = 0.185):
 * - admission of every member within 60 s: as in test/pki-loss.test.ts, ≤ 1.4e-14 per pair;
 * - each TCP handshake (iperf3's two connections, the transfer): ≤ 1e-7 (the SYN/SYN-ACK
 *   arithmetic of test/policy-loss.test.ts); TCP gives up only after 15 losses of one segment;
 * - steps 1 and 3 are each agent's own file reload: loss cannot delay them;
 * - step 2, each host learning a peer's CA2 certificate within 30 s: it travels in the peer's
 *   alive (gossiped over UDP, ≥ 2 copies straight to each member plus the third host's relays:
 *   lost ≤ p² · 2p² = 1.8e-4) and in a TCP push-pull the peer starts with both others at once
 *   (Agent.renewCert; fails ≤ 5.4e-4, test/pki-loss.test.ts), plus the 30 s periodic push-pull:
 *   ≤ 1.8e-4 · 5.4e-4 = 1e-7 per ordered pair, 6 pairs: 6e-7;
 * - a member declared dead (which would drop its tunnel peer): a probe fails with the direct
 *   round trip (r), the indirect one through the third host (1 − 0.95⁸ = 0.34) and the TCP ping
 *   (≈ r) all failing, ≈ 0.012; the suspect then hears its suspicion in the ≥ 4 probes the others
 *   send it during the ≥ 4 s timeout and refutes unless all are lost (p⁴ = 9e-5), and a refutation
 *   reaches them unless lost (p): ~100 probes per host in the test: 3 · 100 · 0.012 · 9e-6 ≈ 3e-6;
 * - 10 pings at the end all failing: r¹⁰ = 5e-8.
 * Total ≈ 4e-6 < 1e-5.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { createCa, encodePem, generateSigningKey, signCert, type CaKeyPair } from '@overlay/pki';
import type { AgentStatus } from '@overlay/agent';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { PkiAgentCluster } from './lib/pki-cluster.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { clearUnderlayLoss, readUnderlayLoss, setUnderlayLoss } from './lib/underlay-loss.js';

const STREAM_S = 30;
const LOSS = 5;
const HOSTS = 3;

/** Agents whose trust file and certificate the test writes: `roll(i, trusted, issuer)`. */
class RollingCluster extends PkiAgentCluster {
  override namePrefix = 'rl';
  private readonly idKeys = this.hosts.map(() => generateSigningKey());
  /** Host i trusts `trusted`; with `issuer`, its certificate (same keys) is re-issued by it. */
  roll(i: number, trusted: CaKeyPair[], issuer?: CaKeyPair): void {
    writeFileSync(this.file(i, 'node.key'), encodePem('ED25519 PRIVATE KEY', this.idKeys[i].seed), { mode: 0o600 });
    writeFileSync(this.file(i, 'ca.crt'), trusted.map((c) => encodePem('CERTIFICATE', c.cert.bytes)).join(''));
    if (!issuer) return;
    const cert = signCert(issuer, { name: `rl${i}`, prefixes: [`${this.ip(i)}/32`], groups: ['web'], wgKey: this.wgPublic(i), signKey: this.idKeys[i].publicKey, now: Date.now() - 1000 });
    writeFileSync(this.file(i, 'node.crt'), encodePem('CERTIFICATE', cert.bytes));
  }
}

const all = (pred: (s: AgentStatus) => boolean) => (ss: (AgentStatus | null)[]) => ss.every((s) => s !== null && pred(s));

describe('CA rollover under iperf3 and 5 % underlay loss (netns, 3 real agents)', () => {
  let tb: Testbed;
  let c: RollingCluster;
  const ca1 = createCa({ name: 'ca-one', now: Date.now() - 60_000 });
  const ca2 = createCa({ name: 'ca-two', now: Date.now() - 60_000 });
  let ready = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    tb = await createTestbed({ hosts: HOSTS, prefix: 'pkrl' });
    c = new RollingCluster(tb.hosts, { encrypt: true, startTimeoutMs: 150_000 });
    for (const h of tb.hosts) await setUnderlayLoss(h, LOSS);
    for (let i = 0; i < HOSTS; i++) c.roll(i, [ca1], ca1);
    await Promise.all(tb.hosts.map((_, i) => c.start(i)));
    await c.until(all((s) => s.pki?.admitted === HOSTS && s.counters.programmed === HOSTS - 1 && (s.peers ?? []).length === HOSTS - 1), 60_000);
    let ok = 0;
    for (let t = 0; t < 40 && ok === 0; t++) ok = await ping(tb.hosts[0], c.ip(1), 1);
    expect(ok, 'overlay ping before the stream').toBe(1);
    ready = Date.now() - t0;
  }, 240_000);

  afterAll(async () => {
    for (const h of tb?.hosts ?? []) await clearUnderlayLoss(h).catch(() => undefined);
    await c?.stopAll();
    await tb?.destroy();
  }, 60_000);

  it('trust CA1+CA2, re-issue from CA2, drop CA1 during the stream: no error, nobody evicted', async () => {
    const t0 = Date.now();
    const [h1, h2] = tb.hosts;
    const server = h2.spawn('timeout', [String(STREAM_S + 25), 'iperf3', '-s', '-p', '5201', '-1']);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const stream = h1.run('iperf3', ['-c', c.ip(1), '-p', '5201', '-t', String(STREAM_S), '-i', '1', '-b', '50M', '-J'], { timeoutMs: (STREAM_S + 20) * 1000 });
      const tStream = Date.now();
      const at = () => `${((Date.now() - tStream) / 1000).toFixed(1)} s`;
      const steps: string[] = [];
      await new Promise((r) => setTimeout(r, 2500));
      // 1. Trust both (CA1 first: it keeps sealing gossip until every host trusts CA2).
      for (let i = 0; i < HOSTS; i++) c.roll(i, [ca1, ca2]);
      await c.until(all((s) => s.pki?.trusted === 2), 10_000, 100);
      steps.push(`all trust CA1+CA2 at ${at()}`);
      // 2. Re-issue every certificate from CA2: each peer re-admits under CA2 (over the lossy underlay).
      for (let i = 0; i < HOSTS; i++) c.roll(i, [ca1, ca2], ca2);
      await c.until(all((s) => s.pki?.byIssuer['ca-two'] === HOSTS), 30_000, 100);
      steps.push(`all admit all under CA2 at ${at()}`);
      // 3. Drop CA1.
      for (let i = 0; i < HOSTS; i++) c.roll(i, [ca2]);
      await c.until(all((s) => s.pki?.trusted === 1), 10_000, 100);
      steps.push(`CA1 dropped on all at ${at()}`);

      const r = await stream;
      const j = JSON.parse(r.stdout || '{}') as { error?: string; intervals?: { sum: { bytes: number } }[]; end?: { sum_received?: { bytes: number }; sum_sent?: { retransmits?: number } } };
      const bytes = (j.intervals ?? []).map((x) => x.sum.bytes);
      // After the rollover, through the tunnels it left in place: a transfer checked end to end.
      const after = await tcpTransfer(h2, h1, c.ip(0), 5433, 256 << 10, 40_000);
      const ss = (await c.statuses()) as AgentStatus[];
      const loss = await Promise.all(tb.hosts.map(readUnderlayLoss));
      const frac = loss.reduce((n, l) => n + l.droppedIn + l.droppedOut, 0) / loss.reduce((n, l) => n + l.seenIn + l.seenOut, 0);
      console.log(`rollover, ${LOSS} % loss each way (measured ${(frac * 100).toFixed(1)} % of underlay packets dropped): agents up and admitted in ${ready} ms; ${steps.join('; ')}; stream ${((j.end?.sum_received?.bytes ?? 0) / 2 ** 20).toFixed(1)} MiB in ${bytes.length} intervals, per interval [${bytes.map((b) => (b / 2 ** 20).toFixed(1)).join(' ')}] MiB, ${bytes.filter((b) => b === 0).length} empty, retransmits ${j.end?.sum_sent?.retransmits ?? 'n/a'}, error ${j.error ?? 'none'}; 256 KiB after the rollover ${after.received.sha256 === after.sent.sha256 ? 'intact' : 'CORRUPT'}; test ${Date.now() - t0} ms`);
      expect(r.code, r.stderr).toBe(0);
      expect(j.error).toBeUndefined();
      expect(bytes.length).toBeGreaterThanOrEqual(STREAM_S);
      expect(j.end!.sum_received!.bytes).toBeGreaterThan(0);
      expect(after.received).toEqual(after.sent);
      for (const s of ss) {
        expect(s.pki!.admitted, `${s.name} admits all`).toBe(HOSTS);
        expect(s.pki!.byIssuer).toEqual({ 'ca-two': HOSTS });
        expect(s.pki!.counters.evicted_expired + s.pki!.counters.evicted_revoked + s.pki!.counters.self_evicted, `${s.name} evicted nobody`).toBe(0);
        expect(s.pki!.counters.trust_reloaded).toBe(2);
        expect(s.members.filter((m) => m.state === 'alive').length, `${s.name} sees all alive`).toBe(HOSTS);
        expect((s.peers ?? []).length, `${s.name} keeps its tunnel peers`).toBe(HOSTS - 1);
        expect([s.drops.auth_failed ?? 0, s.drops.pushpull_auth_failed ?? 0], `${s.name}: no packet failed to open`).toEqual([0, 0]);
      }
      expect(await ping(h1, c.ip(1), 10)).toBeGreaterThan(0);
    } finally {
      server.kill('SIGKILL');
    }
  }, 90_000);
});
