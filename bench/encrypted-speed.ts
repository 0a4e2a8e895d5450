/**
 * The encrypted overlay's CPU per gigabit, before/after in one run: two network-namespace hosts
 * run openHost with WireGuard (the same configuration as throughput.ts's "ours: encrypted
 * VXLAN"), once per AEAD implementation (`OVERLAY_AEAD_IMPL`: `sodium` = one libsodium call per
 * packet, `native` = one addon call per run of a batch), rounds interleaved (A B A B …). Each
 * round: iperf3 TCP 1 stream for S seconds; CPU seconds of both VTEP processes per Gbit moved,
 * computed as throughput.ts computes "our CPU s per Gbit"; the socket's GSO/GRO counters of the
 * sender; load average before each round.
 *
 *   node --conditions=source --import tsx bench/encrypted-speed.ts [--rounds 3] [--seconds 5]
 *        [--impls sodium,native] [--peers] [--prof DIR]
 *
 * --old-tree DIR: also the impl `old`, the VTEP runner of another checkout (e.g. a `git worktree`
 * of the commit before a change, its node_modules linked to this one's), for a before-figure of
 * the code as it was rather than through today's switch.
 * --peers: Debian's wireguard-go and nebula (bench/lib/paths.ts) in the same interleaved rounds,
 * TCP 1 stream, for the ratios. --prof: node --cpu-prof of both VTEPs, one round.
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { createTestbed, type Testbed } from '../test/lib/testbed.js';
import { meshConfig, startVtep, type VtepProcess } from '../test/lib/vtep.js';
import { iperfServer, tcp, waitReachable } from './lib/iperf.js';
import { cpuSeconds } from './lib/proc.js';
import { nebula, wireguardGo } from './lib/paths.js';
import { median, spreadPct } from './lib/stats.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const ROUNDS = Number(opt('--rounds', '3'));
const SECONDS = Number(opt('--seconds', '5'));
const IMPLS = opt('--impls', argv.includes('--old-tree') ? 'old,sodium,native' : 'sodium,native').split(',');
const PEERS = argv.includes('--peers') ? [wireguardGo, nebula] : [];
const OLD_TREE = argv.includes('--old-tree') ? opt('--old-tree', '') : undefined;
const PROF = argv.includes('--prof') ? opt('--prof', '/tmp/enc-prof') : undefined;
const log = (s: string) => process.stdout.write(`[enc] ${s}\n`);

function wgKeys(): { priv: string; pub: string } {
  const priv = execFileSync('wg', ['genkey']).toString().trim();
  return { priv, pub: execFileSync('wg', ['pubkey'], { input: priv + '\n' }).toString().trim() };
}

interface Round {
  gbps: number;
  cpuPerGbit: number;
  load: number;
  txSyscalls: number;
  txPackets: number;
  rxGroDatagrams: number;
}

async function oneRound(tb: Testbed, impl: string): Promise<Round> {
  const hs = [tb.hosts[0], tb.hosts[1]];
  const keys = hs.map(() => wgKeys());
  const cfgs = meshConfig(hs, [100]).map((c, i) => ({
    ...c,
    encryption: { privateKey: keys[i].priv, peers: hs.filter((_, j) => j !== i).map((h) => ({ publicKey: keys[hs.indexOf(h)].pub, endpoint: h.underlay })) },
  }));
  const load = loadavg()[0];
  process.env.OVERLAY_AEAD_IMPL = impl;
  const procs: VtepProcess[] = [];
  const start: typeof startVtep = impl === 'old' ? ((await import(`${OLD_TREE}/test/lib/vtep.ts`)) as { startVtep: typeof startVtep }).startVtep : startVtep;
  try {
    for (let i = 0; i < 2; i++) procs.push(await start(hs[i], cfgs[i], PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}/${impl}`] : []));
    const stop = await iperfServer(hs[1]);
    try {
      await waitReachable(hs[0], '198.19.0.2');
      await new Promise((r) => setTimeout(r, 500));
      const pids = procs.map((p) => p.child.pid!);
      const s0 = await procs[0].stats();
      const c0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const t = await tcp(hs[0], '198.19.0.2', { seconds: SECONDS, streams: 1 });
      const c1 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const s1 = await procs[0].stats();
      const r1 = await procs[1].stats();
      const d = (k: 'txSyscalls' | 'txPackets') => (s1.transport[k] ?? 0) - (s0.transport[k] ?? 0);
      return { gbps: t.gbps, cpuPerGbit: (c1 - c0) / (t.gbps * SECONDS), load, txSyscalls: d('txSyscalls'), txPackets: d('txPackets'), rxGroDatagrams: r1.transport.rxGroDatagrams ?? 0 };
    } finally {
      stop();
    }
  } finally {
    for (const p of procs) await p.stop();
  }
}

async function main() {
  log(`machine: ${cpus().length} × ${cpus()[0]?.model}, node ${process.version}; ${ROUNDS} interleaved rounds × ${SECONDS} s, impls ${IMPLS.join(' ')}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const tb = await createTestbed({ hosts: 2, prefix: 'be' });
  const res = new Map<string, Round[]>(IMPLS.map((i) => [i, []]));
  const peers = new Map<string, { gbps: number; load: number }[]>(PEERS.map((p) => [p.label, []]));
  try {
    for (let n = 1; n <= (PROF ? 1 : ROUNDS); n++) {
      for (const impl of IMPLS) {
        let r: Round;
        try {
          r = await oneRound(tb, impl);
        } catch (e) {
          // e.g. the addon rebuilt under us by someone else's setup: the round is lost, not the run.
          log(`round ${n} ${impl}: FAILED: ${(e as Error).message.split('\n')[0]}`);
          continue;
        }
        res.get(impl)!.push(r);
        log(`round ${n} ${impl}: ${r.gbps.toFixed(3)} Gbit/s, CPU ${r.cpuPerGbit.toFixed(3)} s/Gbit, load before ${r.load.toFixed(2)}; sender txPackets ${r.txPackets}, txSyscalls ${r.txSyscalls}; receiver rxGroDatagrams ${r.rxGroDatagrams}`);
      }
      for (const spec of PEERS) {
        const load = loadavg()[0];
        const path = await spec.up(tb);
        const stop = await iperfServer(tb.hosts[1]);
        try {
          await waitReachable(tb.hosts[0], path.dst);
          await new Promise((r) => setTimeout(r, 500));
          const t = await tcp(tb.hosts[0], path.dst, { seconds: SECONDS, streams: 1 });
          peers.get(spec.label)!.push({ gbps: t.gbps, load });
          log(`round ${n} ${spec.label}: ${t.gbps.toFixed(3)} Gbit/s, load before ${load.toFixed(2)}`);
        } finally {
          stop();
          await path.down();
        }
      }
    }
  } finally {
    await tb.destroy();
  }
  console.log('\n| AEAD impl | TCP 1 stream Gbit/s (median, spread) | our CPU s per Gbit (median, each round) | load before each round |\n| --- | --- | --- | --- |');
  for (const [impl, rs] of res) {
    const g = rs.map((r) => r.gbps);
    const c = rs.map((r) => r.cpuPerGbit);
    console.log(`| ${impl} | ${median(g).toFixed(2)} (±${spreadPct(g).toFixed(0)}%) | ${median(c).toFixed(3)} (${c.map((x) => x.toFixed(3)).join(' ')}) | ${rs.map((r) => r.load.toFixed(2)).join(' ')} |`);
  }
  for (const [label, rs] of peers) {
    const g = rs.map((r) => r.gbps);
    console.log(`| ${label} | ${median(g).toFixed(2)} (±${spreadPct(g).toFixed(0)}%) | n/a | ${rs.map((r) => r.load.toFixed(2)).join(' ')} |`);
  }
  for (const [impl, rs] of res) {
    const m = median(rs.map((r) => r.gbps));
    const ratios = [...peers].map(([label, ps]) => `${(m / median(ps.map((p) => p.gbps))).toFixed(2)}× ${label}`);
    // As throughput.ts computes it: CPU over all rounds ÷ gigabits over all rounds.
    const all = rs.reduce((s, r) => s + r.cpuPerGbit * r.gbps * SECONDS, 0) / rs.reduce((s, r) => s + r.gbps * SECONDS, 0);
    log(`${impl}: our CPU s per Gbit over all rounds ${all.toFixed(3)}${ratios.length ? `; TCP 1 stream ${ratios.join(', ')}` : ''}`);
  }
  log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
