/**
 * Failure detection trade-off in the simulation (SimCluster: production membership code on a
 * virtual clock and network). For each candidate timing config and cluster size:
 *   - kill -9 → dead at every survivor: median / p90 over independent trials (fresh cluster, new
 *     seed, a different victim each), 0 % loss
 *   - false deaths (alive members declared dead, summed over observers), suspicions and
 *     refutations over `minutes` simulated minutes × `seeds` clusters at each path loss of --loss
 *     (default 10 % and 19 %: the issue's 10 %, and 10 % each way at both hosts as in
 *     `bench/run.sh loss-soak` without --path). Datagrams and TCP segments alike are lost
 *     (VirtualNetwork streamLoss): the TCP fallback ping and push-pull pay Linux's retransmission
 *     timeouts, so a fallback ping that loses a segment misses its 300 ms window as on real hosts.
 *   - bytes sent per node per second in the first lossy run (UDP + TCP payload, VirtualNetwork.sentBytes)
 *
 *   bash bench/run.sh detect [--n 5,50] [--configs old,new] [--trials 10] [--minutes 10] [--seeds 3] [--loss 10,19] [--big 500]
 */
import { SimCluster, LAN, suspicionTimeoutMs, type MembershipConfig } from '@overlay/agent';
import { median, quantile } from './lib/stats.js';

const argv = process.argv.slice(2);
const arg = (k: string, d: string) => {
  const i = argv.indexOf(k);
  return i >= 0 ? argv[i + 1] : d;
};
const SIZES = arg('--n', '5,50').split(',').map(Number).filter((n) => n > 0);
const TRIALS = Number(arg('--trials', '10'));
const MINUTES = Number(arg('--minutes', '10'));
const BIG = Number(arg('--big', '0')); // one N = BIG point for the chosen ('new') config
const SEEDS = Number(arg('--seeds', '3'));
const LOSSES = arg('--loss', '10,19').split(',').map(Number).filter((x) => x > 0);
const net = { name: 'blue', vni: 100 };

/** The grid. `old` is the LAN preset before issue 16; `new` is the LAN preset now. */
const OLD: MembershipConfig = { ...LAN, probeIntervalMs: 1000, probeTimeoutMs: 500, indirectTimeoutMs: 500, indirectChecks: 3, suspicionMult: 4, suspicionMaxTimeoutMult: 6, suspicionConfirmations: 2, confirmationProbes: false, pushPullIntervalMs: 30_000 };
const FAST = { probeTimeoutMs: 300, indirectTimeoutMs: 300 };
const CONFIGS: Record<string, MembershipConfig> = {
  old: OLD,
  'old+cprobe': { ...OLD, confirmationProbes: true },
  mult2: { ...OLD, suspicionMult: 2 },
  'mult2+cprobe': { ...OLD, suspicionMult: 2, confirmationProbes: true },
  'mult1+cprobe': { ...OLD, suspicionMult: 1, confirmationProbes: true },
  'mult1+cprobe+k1': { ...OLD, suspicionMult: 1, suspicionConfirmations: 1, confirmationProbes: true },
  'mult1+cprobe+ind5': { ...OLD, suspicionMult: 1, indirectChecks: 5, confirmationProbes: true },
  'mult1+k0': { ...OLD, suspicionMult: 1, suspicionConfirmations: 0 },
  p500: { ...OLD, probeIntervalMs: 500, probeTimeoutMs: 250, indirectTimeoutMs: 250 },
  'p500+mult2+cprobe': { ...OLD, probeIntervalMs: 500, probeTimeoutMs: 250, indirectTimeoutMs: 250, suspicionMult: 2, confirmationProbes: true },
  'p700+mult1.5+cprobe': { ...OLD, probeIntervalMs: 700, probeTimeoutMs: 350, indirectTimeoutMs: 350, suspicionMult: 1.5, confirmationProbes: true },
  't300+mult1+cprobe': { ...OLD, ...FAST, suspicionMult: 1, confirmationProbes: true },
  't300+mult1+cprobe+k1': { ...OLD, ...FAST, suspicionMult: 1, suspicionConfirmations: 1, confirmationProbes: true },
  't300+mult1.5+cprobe+pp60': { ...OLD, ...FAST, suspicionMult: 1.5, confirmationProbes: true, pushPullIntervalMs: 60_000 },
  't300+mult1+cprobe+pp60': { ...OLD, ...FAST, suspicionMult: 1, confirmationProbes: true, pushPullIntervalMs: 60_000 },
  new: LAN,
};
const names = arg('--configs', Object.keys(CONFIGS).join(',')).split(',');
for (const n of names) if (!CONFIGS[n]) throw new Error(`unknown config ${n}; known: ${Object.keys(CONFIGS).join(', ')}`);

const wall0 = Date.now();
const log = (s: string) => process.stderr.write(`[${((Date.now() - wall0) / 1000).toFixed(0)}s] ${s}\n`);

function detectOnce(config: MembershipConfig, n: number, seed: number): number {
  const c = new SimCluster({ n, loss: 0, seed, config, networks: [net] });
  c.bootstrapAll();
  c.run(5000 + Math.floor(c.random() * config.probeIntervalMs)); // kill at a random probe phase
  const victim = Math.floor(c.random() * n);
  const vname = SimCluster.nameOf(victim);
  c.kill(victim);
  const ms = c.clock.runUntilTrue(() => c.agents.every((a, i) => i === victim || a.membership.stateOf(vname) === 'dead'), 120_000, 10);
  for (let i = 0; i < n; i++) if (i !== victim) c.kill(i);
  return ms;
}

interface Lossy { falseDeaths: number; suspicions: number; refutations: number; bps: number }
function lossyRun(config: MembershipConfig, n: number, minutes: number, loss: number): Lossy {
  const out: Lossy = { falseDeaths: 0, suspicions: 0, refutations: 0, bps: 0 };
  for (let seed = 1; seed <= SEEDS; seed++) {
    const c = new SimCluster({ n, loss, streamLoss: loss, seed: 4242 + 100 * n + seed, config, networks: [net] });
    c.bootstrapAll();
    c.run(5000);
    const sum = (k: 'declared_dead' | 'suspicions' | 'refutations') => c.agents.reduce((s, a) => s + a.membership.counters.get(k), 0);
    const bytes = () => [...c.net.sentBytes.values()].reduce((s, v) => s + v, 0);
    const d0 = sum('declared_dead');
    const s0 = sum('suspicions');
    const r0 = sum('refutations');
    const b0 = bytes();
    c.run(minutes * 60_000);
    out.falseDeaths += sum('declared_dead') - d0;
    out.suspicions += sum('suspicions') - s0;
    out.refutations += sum('refutations') - r0;
    out.bps += (bytes() - b0) / n / (minutes * 60) / SEEDS;
    for (let i = 0; i < n; i++) c.kill(i);
  }
  return out;
}

const describe = (c: MembershipConfig, n: number) =>
  `${c.probeIntervalMs}/${c.probeTimeoutMs}/${c.indirectTimeoutMs} | ${c.indirectChecks} | ${c.suspicionMult}×, max ${c.suspicionMaxTimeoutMult}×, k ${c.suspicionConfirmations} (min ${suspicionTimeoutMs(c, n)} ms) | ${c.confirmationProbes ? 'yes' : 'no'} | ${c.pushPullIntervalMs / 1000} s`;

const rows: string[] = [];
const point = (name: string, n: number, trials: number, minutes: number) => {
  const cfg = CONFIGS[name];
  const det: number[] = [];
  for (let t = 0; t < trials; t++) det.push(detectOnce(cfg, n, 1000 * n + t + 1));
  const runs = LOSSES.map((p) => lossyRun(cfg, n, minutes, p / 100));
  const row = `| ${name} | ${n} | ${describe(cfg, n)} | ${median(det)} | ${quantile(det, 0.9)} | ${det.includes(-1) ? 'some never' : Math.max(...det)} | ${runs.map((l) => `${l.falseDeaths} | ${l.suspicions} | ${l.refutations}`).join(' | ')} | ${runs[0]?.bps.toFixed(0) ?? '-'} |`;
  log(row);
  rows.push(row);
};
for (const n of SIZES) for (const name of names) point(name, n, TRIALS, MINUTES);
if (BIG > 0) point('new', BIG, Math.max(3, Math.min(TRIALS, 5)), MINUTES);

console.log(
  [
    `## Failure detection trade-off (simulation; ${TRIALS} trials per point, ${SEEDS} × ${MINUTES} simulated minutes at each loss)`,
    '',
    'Detection: kill → dead at every survivor, 0 % loss, fresh cluster and victim per trial (ms, virtual clock). False deaths: alive members declared dead summed over observers; datagrams and TCP segments lost alike. Bytes: payload sent per node per second at the first loss.',
    '',
    `| config | N | probe/timeout/indirect wait ms | indirect | suspicion | confirm probes | push-pull | detect median | p90 | max | ${LOSSES.map((p) => `false deaths ${p} % | suspicions ${p} % | refutations ${p} %`).join(' | ')} | bytes/node/s |`,
    `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ${LOSSES.map(() => '--- | --- | ---').join(' | ')} | --- |`,
    ...rows,
    '',
    `${((Date.now() - wall0) / 1000).toFixed(0)} s wall time.`,
  ].join('\n'),
);
