/**
 * Revocation spread in the simulated cluster (issue 13: "applied on every host ≤ 2 s in the
 * 1000-node simulation"). N agents (SimCluster: production core, LAN preset, virtual clock and
 * network, optional loss) admitted by certificate (one CA, every node's certificate in its meta);
 * per trial, one random member publishes a CA-signed revocation of another's WireGuard key
 * (`Agent.revoke`, as `agent revoke` does) and the bench records, on every other host, the
 * virtual time at which the revocation is in its RevocationSet (checked every 10 ms). Prints
 * p50 / p99 / max per trial and over all trials.
 *
 * Usage: node --conditions=source --import tsx bench/sim-revocation.ts [N=1000] [trials=3] [loss=0]
 */
import { createCa, createRevocation, generateWireGuardKey, publicOfSeed, signCert, TrustedCas } from '@overlay/pki';
import { SimCluster, VirtualClock, type TunnelPeers } from '@overlay/agent';

const N = Number(process.argv[2] ?? 1000);
const TRIALS = Number(process.argv[3] ?? 3);
const LOSS = Number(process.argv[4] ?? 0);
const SEED = 17;
const wall0 = Date.now();
const log = (...a: unknown[]) => console.log(`[${((Date.now() - wall0) / 1000).toFixed(0)}s]`, ...a);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

const peers: TunnelPeers = { setPeer: () => undefined, removePeer: () => undefined };
// Certificates are valid around the simulation's virtual epoch.
const start = new VirtualClock().now();
const ca = createCa({ name: 'bench-ca', now: start - 60_000 });
const trusted = new TrustedCas([ca.cert]);
const wg = Array.from({ length: N }, () => generateWireGuardKey().publicKey);
/** SimCluster's signing seed of node i (simcluster.ts). */
const seedOf = (i: number) => {
  const s = new Uint8Array(32);
  new DataView(s.buffer).setUint32(0, i + 1);
  new DataView(s.buffer).setUint32(4, SEED);
  return s;
};
const certs = wg.map((k, i) => signCert(ca, { name: SimCluster.nameOf(i), prefixes: [`198.19.${(i >> 8) & 255}.${i & 255}/32`], wgKey: k, signKey: publicOfSeed(seedOf(i)), now: start - 30_000 }).bytes);
log(`${N} certificates signed`);
const c = new SimCluster({
  n: N, seed: SEED, loss: LOSS,
  agent: (i) => ({ pki: { trusted, cert: certs[i] }, wireguard: { publicKey: Buffer.from(wg[i]).toString('base64'), port: 4789 }, tunnel: peers }),
});
c.bootstrapAll();
c.run(5000);
const admitted = c.agents.map((a) => a.pki!.status().admitted);
log(`cluster up: every agent admitted ${Math.min(...admitted)}..${Math.max(...admitted)} members`);

const all: number[] = [];
for (let t = 0; t < TRIALS; t++) {
  const victim = Math.floor(c.random() * N);
  let publisher = Math.floor(c.random() * N);
  if (publisher === victim) publisher = (publisher + 1) % N;
  const rev = createRevocation(ca, { kind: 'wgKey', key: wg[victim], now: c.clock.now(), reason: `trial ${t}` });
  const t0 = c.clock.now();
  c.agents[publisher].revoke(rev.bytes);
  const at = new Array<number>(N).fill(-1);
  let left = N - 1;
  at[victim] = 0;
  const done = c.clock.runUntilTrue(() => {
    for (let i = 0; i < N; i++) {
      if (at[i] < 0 && c.agents[i].pki!.admission.revocations.isRevoked(wg[victim])) {
        at[i] = c.clock.now() - t0;
        left--;
      }
    }
    return left === 0;
  }, 60_000, 10);
  const times = at.filter((_, i) => i !== victim && at[i] >= 0);
  all.push(...times);
  log(`trial ${t}: revocation of node ${victim} by node ${publisher}: on ${times.length}/${N - 1} hosts; p50 ${pct(times, 50)} ms, p99 ${pct(times, 99)} ms, max ${Math.max(...times)} ms (all: ${done} ms)`);
  c.run(5000);
}
console.log(`sim-revocation N=${N} loss=${LOSS} trials=${TRIALS}: time until a revocation is applied on each host (virtual ms): p50 ${pct(all, 50)}, p99 ${pct(all, 99)}, max ${Math.max(...all)}; hosts ${all.length}/${TRIALS * (N - 1)}; wall ${((Date.now() - wall0) / 1000).toFixed(0)} s`);
