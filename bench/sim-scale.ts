/**
 * Gossip at scale (issue 16): N agents in one process on the virtual clock and network (the
 * production core, LAN preset, plaintext framing), networks of N/NETS members each (node i joins
 * network i mod NETS, one endpoint each). Same run, one cluster after the other:
 *   - whole table: every record to everyone, full push-pull (protocol 2, as before issue 16);
 *   - per network: records only to members of their network, delta push-pull (protocol 3).
 * Measured in each: bytes sent per node per second (UDP gossip and probes + TCP push-pull) over a
 * window with CHURN endpoint changes per second cluster-wide, and the time until every node that
 * should hold an endpoint change holds it (its network's members, or everyone for the whole
 * table), median and max of TRIALS changes.
 *
 * Then the push-pull cost of a quiet 50-node LAN cluster: full every 60 s, full every 30 s, delta
 * every 30 s (why the LAN preset's interval could return to 30 s).
 *
 * Tables are preloaded (each owner signs its record; copies are stored unverified in the tables
 * that take them) so the run measures steady state, not a cold start.
 *
 *   node --expose-gc --max-old-space-size=16000 --conditions=source --import tsx bench/sim-scale.ts [N] [NETS] [windowS] [pushPullS] [trials] [--no-quiet] [--only=per-network|whole-table]
 */
import { SimCluster, LAN, type MembershipConfig, type SignedRecord } from '@overlay/agent';

const N = Number(process.argv[2] ?? 5000);
const NETS = Number(process.argv[3] ?? 20);
const WINDOW_S = Number(process.argv[4] ?? 60);
const PUSH_PULL_S = Number(process.argv[5] ?? 30);
const CHURN_PER_S = 5;
const TRIALS = Number(process.argv[6] ?? 5);
/**
 * A whole table in every agent is N² stored records. Preloaded, every table references the one
 * record object its owner signed (as if all copies had arrived; the agent treats them as any
 * stored record, and records changed in the run are copied per table as usual): 0.26 GiB of heap
 * per million (N = 1000 and 2000) against 0.42 GiB with a copy per table, and 0.04 GiB with the
 * whole-table sharing of PreloadSharing; members cost 0.30 GiB per million entries (7.53 GiB at
 * N = 5000). Beyond this many the whole-table cluster starts with only
 * its own records, so its push-pull figure is a lower bound (the table fills only with the
 * records changed in the run).
 */
const PRELOAD_MAX = 25_000_000;
const wall0 = Date.now();
const log = (...a: unknown[]) => console.log(`[${((Date.now() - wall0) / 1000).toFixed(0)}s]`, ...a);
const nets = Array.from({ length: NETS }, (_, k) => ({ name: `net-${k}`, vni: 1000 + k }));
const config: MembershipConfig = { ...LAN, pushPullIntervalMs: PUSH_PULL_S * 1000 };
const mac = (i: number, v: number) => Uint8Array.of(2, v & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255, 1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The private maps of a RecordTable that the preload shares (records.ts). */
interface TableMaps { entries: Map<string, unknown>; byOwner: Map<string, Set<string>> }

/**
 * Memory for the whole-table preload at N = 5000 (25 M records; the 64 k memory maps of a ~16 GiB
 * V8 heap are this machine's limit): after the preload every whole table holds the same keys and
 * the same owner index, so each table's record keys are replaced by one flat copy per key (the
 * table builds them as concatenated strings, ~80 bytes each) and all tables share one owner index
 * (owner → its record keys). The index stays what each table would hold: in this run every owner
 * publishes under one key and nobody dies or withdraws, so no table adds or removes an entry of
 * it, and `check` asserts that at the end. Records changed in the run are stored per table as usual.
 */
class PreloadSharing {
  private readonly keys = new Map<string, string>();
  private owners: Map<string, Set<string>> | null = null;
  private flat(k: string): string {
    let f = this.keys.get(k);
    if (f === undefined) this.keys.set(k, (f = Buffer.from(k, 'latin1').toString('latin1')));
    return f;
  }
  compact(table: unknown): void {
    const t = table as TableMaps;
    const entries = new Map<string, unknown>();
    for (const [k, v] of t.entries) entries.set(this.flat(k), v);
    t.entries = entries;
    if (this.owners === null) {
      this.owners = new Map([...t.byOwner].map(([o, ks]) => [o, new Set([...ks].map((k) => this.flat(k)))]));
    }
    t.byOwner = this.owners;
  }
  /** The shared owner index is still one key per owner, every owner present. */
  check(n: number): void {
    const o = this.owners!;
    if (o.size !== n || [...o.values()].some((ks) => ks.size !== 1)) throw new Error(`shared owner index changed: ${o.size} owners`);
  }
}

interface Row { preloaded: boolean; mode: string; bps: number; udp: number; tcp: number; records: number; p50: number; max: number; setupS: number; runS: number }

function run(mode: 'whole table' | 'per network'): Row {
  const t0 = Date.now();
  const scoped = mode === 'per network';
  const c = new SimCluster({
    n: N, seed: 7, config,
    agent: (i) => ({ networks: [nets[i % NETS]], gossipScope: scoped ? 'network' : 'cluster', deltaPushPull: scoped }),
  });
  c.bootstrapAll();
  (globalThis as { gc?: () => void }).gc?.();
  log(`${mode}: ${N} agents up, heap ${(process.memoryUsage().heapUsed / 2 ** 30).toFixed(2)} GiB, rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB`);
  // Preload: each node's endpoint, stored in every table that takes it (one shared object).
  const recs: SignedRecord[] = [];
  for (let i = 0; i < N; i++) recs.push(c.agents[i].publish(nets[i % NETS], { id: `ep-${i}`, mac: mac(i, 0) }));
  const preloaded = (scoped ? N * (N / NETS) : N * N) <= PRELOAD_MAX;
  const share = new PreloadSharing();
  for (let j = 0; j < N && preloaded; j++) {
    const t = c.agents[j].table;
    for (let i = 0; i < N; i++) {
      if (i === j || (scoped && i % NETS !== j % NETS)) continue;
      t.putOwn(recs[i]);
    }
    if (!scoped) share.compact(t);
  }
  for (const a of c.agents) for (const r of a.queue.peek()) a.queue.drop(r.key);
  const records = c.agents.reduce((s, a) => s + a.table.count(), 0);
  (globalThis as { gc?: () => void }).gc?.();
  log(`${mode}: ${records} records in tables, heap ${(process.memoryUsage().heapUsed / 2 ** 30).toFixed(2)} GiB, rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB; settling`);
  c.run(10_000);
  const setupS = (Date.now() - t0) / 1000;

  // Propagation: one endpoint changes; time until every node that takes it holds the new version.
  const times: number[] = [];
  let v = 1;
  for (let t = 0; t < TRIALS; t++) {
    const i = Math.floor(c.random() * N);
    const rec = c.agents[i].publish(nets[i % NETS], { id: `ep-${i}`, mac: mac(i, v++) });
    const holders = c.agents.filter((_, j) => !scoped || j % NETS === i % NETS);
    times.push(c.clock.runUntilTrue(() => holders.every((a) => a.endpoint(rec.network, rec.id)?.version === rec.version), 120_000, 20));
    log(`${mode}: change ${t + 1}/${TRIALS} at all ${holders.length} holders after ${times[t]} ms`);
  }

  // Bytes over a window with churn.
  const bytes = () => [...c.net.sentBytes.values()].reduce((s, b) => s + b, 0);
  const b0 = bytes();
  const s0 = c.net.streamBytes;
  const r0 = Date.now();
  for (let s = 0; s < WINDOW_S; s++) {
    for (let k = 0; k < CHURN_PER_S; k++) {
      const i = Math.floor(c.random() * N);
      c.agents[i].publish(nets[i % NETS], { id: `ep-${i}`, mac: mac(i, v++) });
    }
    c.run(1000);
    if ((s + 1) % (N >= 2000 ? 1 : 10) === 0) {
      // Figures so far, so that a run stopped before the end of the window still yields them
      // (every simulated second at large N: one took ~140 s of wall time at N = 5000).
      const sofar = (bytes() - b0) / N / (s + 1);
      const tcpSoFar = (c.net.streamBytes - s0) / N / (s + 1);
      log(`${mode}: window ${s + 1}/${WINDOW_S} s: ${sofar.toFixed(0)} bytes/node/s so far (UDP ${(sofar - tcpSoFar).toFixed(0)}, TCP ${tcpSoFar.toFixed(0)}), heap ${(process.memoryUsage().heapUsed / 2 ** 30).toFixed(2)} GiB`);
    }
  }
  const tcp = (c.net.streamBytes - s0) / N / WINDOW_S;
  const bps = (bytes() - b0) / N / WINDOW_S;
  if (!scoped && preloaded) share.check(N);
  const row: Row = { preloaded, mode, bps, udp: bps - tcp, tcp, records, p50: median(times), max: Math.max(...times), setupS, runS: (Date.now() - r0) / 1000 };
  for (const a of c.agents) a.stop();
  return row;
}

/**
 * Push-pull cost in a quiet LAN cluster of 50 (5 endpoints each, no churn, 10 simulated
 * minutes): full exchanges every 60 s (the LAN preset before deltas), every 30 s, and delta
 * exchanges every 30 s.
 */
function quietCost(delta: boolean, ppS: number): { bps: number; tcp: number } {
  const c = new SimCluster({ n: 50, seed: 11, config: { ...LAN, pushPullIntervalMs: ppS * 1000 }, networks: [nets[0]], extra: { deltaPushPull: delta } });
  c.bootstrapAll();
  for (let i = 0; i < 50; i++) for (let k = 0; k < 5; k++) c.agents[i].publish(nets[0], { id: `ep-${i}-${k}`, mac: mac(i * 8 + k, 0) });
  c.run(60_000);
  const bytes = () => [...c.net.sentBytes.values()].reduce((x, y) => x + y, 0);
  const b0 = bytes();
  const s0 = c.net.streamBytes;
  c.run(600_000);
  for (const a of c.agents) a.stop();
  return { bps: (bytes() - b0) / 50 / 600, tcp: (c.net.streamBytes - s0) / 50 / 600 };
}
const quiet = process.argv.includes('--no-quiet') ? [] : [
  { label: 'full, every 60 s', ...quietCost(false, 60) },
  { label: 'full, every 30 s', ...quietCost(false, 30) },
  { label: 'delta, every 30 s', ...quietCost(true, 30) },
];
log('quiet push-pull cost at N = 50 done');

const rows: Row[] = [];
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
for (const mode of ['per network', 'whole table'] as const) {
  if (only !== undefined && only !== mode.replace(' ', '-')) continue;
  const r = run(mode);
  log(`${mode}: ${JSON.stringify(r)}`);
  rows.push(r);
  (globalThis as { gc?: () => void }).gc?.();
}
const lines = [
  `## Gossip at scale: ${N} agents, ${NETS} networks of ${N / NETS}`,
  '',
  `Generated by \`bench/sim-scale.ts ${N} ${NETS} ${WINDOW_S} ${PUSH_PULL_S}\` in ${((Date.now() - wall0) / 1000).toFixed(0)} s wall time. LAN preset with push-pull every ${PUSH_PULL_S} s`,
  `(scaled ×${Math.ceil(Math.log2(N) - 5) + 1} above 32 members); latency 0.5–1 ms, no loss; ${CHURN_PER_S} endpoint changes/s cluster-wide in the byte window (${WINDOW_S} s).`,
  '',
  '| mode | records held (all tables) | bytes/node/s | of which UDP | of which TCP push-pull | change → all holders p50 (ms) | max (ms) | setup wall (s) | window wall (s) |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.mode}${r.preloaded ? '' : ' (tables not preloaded: TCP is a lower bound)'} | ${r.records} | ${r.bps.toFixed(0)} | ${r.udp.toFixed(0)} | ${r.tcp.toFixed(0)} | ${r.p50} | ${r.max} | ${r.setupS.toFixed(0)} | ${r.runS.toFixed(0)} |`),
  '',
  ...(quiet.length === 0 ? [] : [
  'Push-pull in a quiet LAN cluster of 50 (5 endpoints each, 10 simulated minutes, one network):',
  '',
  '| push-pull | bytes/node/s | of which TCP push-pull |',
  '| --- | --- | --- |',
  ...quiet.map((q) => `| ${q.label} | ${q.bps.toFixed(0)} | ${q.tcp.toFixed(0)} |`),
  '']),
];
console.log(lines.join('\n'));
