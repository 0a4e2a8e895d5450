/**
 * False deaths under loss, real agents: N agents (LAN preset) in network namespaces, every host
 * dropping --loss % of the packets entering and, independently, of those leaving its underlay
 * (nftables numgen random, test/lib/underlay-loss.ts: a host-to-host packet crosses two such
 * rules, so the path loss is 1 − (1 − p)²), for --minutes. Nobody is killed, so every death any
 * agent declares is false. Every second each agent's status is read: members seen suspect or dead;
 * at the end the membership counters' deltas (suspicions, declared_dead, refutations), the drop
 * fractions the rules measured and the gossip bytes per node per second.
 *
 *   bash bench/run.sh loss-soak [--hosts 5] [--minutes 10] [--loss 10] [--path] [--profile lan] [--trace DIR]
 *
 * --path: --loss is the host-to-host loss (each direction then drops 1 − √(1 − loss)).
 * --trace DIR: every agent writes its suspicions, refutations and deaths, with the event loop's
 * lag, to DIR/<name>.log (bench/lib/membership-trace.ts), to find which path failed to refute.
 */
import { loadavg } from 'node:os';
import { AgentCluster } from '../test/lib/agent-cluster.js';
import { hasFlag, intOption, numberOption, stringOption } from './lib/args.js';
import { createTestbed } from '../test/lib/testbed.js';
import { readUnderlayLoss, setUnderlayLoss } from '../test/lib/underlay-loss.js';

const N = intOption('--hosts', 5, 3);
const MINUTES = numberOption('--minutes', 10);
const PATH = hasFlag('--path');
/** Per direction at each host; with --path, --loss is the host-to-host loss: p = 1 − √(1 − loss). */
const LOSS = PATH ? 100 * (1 - Math.sqrt(1 - numberOption('--loss', 10) / 100)) : numberOption('--loss', 10);
const PROFILE = stringOption('--profile', 'lan') as 'lan' | 'wan' | 'local';
/** --trace DIR: each agent writes its suspicions, refutations and deaths to DIR/<name>.log (bench/lib/membership-trace.ts). */
const TRACE = stringOption('--trace', '');
if (TRACE) process.env.MEMBERSHIP_TRACE_DIR = TRACE;
const log = (s: string) => process.stdout.write(`[loss-soak] ${s}\n`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

type Counters = Record<string, number>;
const KEYS = ['suspicions', 'declared_dead', 'refutations', 'probes', 'probes_failed', 'indirect_probes'] as const;

const tb = await createTestbed({ hosts: N, prefix: 'lsk' });
const traceArgs = TRACE ? ['--conditions=source', '--import', 'tsx', '--import', new URL('./lib/membership-trace.ts', import.meta.url).pathname] : [];
const c = new AgentCluster(tb.hosts, { profile: PROFILE, nodeArgs: traceArgs });
let failed = false;
try {
  log(`${N} agents, profile ${PROFILE}, ${LOSS.toFixed(2)} % loss each way on every underlay (path ${(100 * (1 - (1 - LOSS / 100) ** 2)).toFixed(1)} %), ${MINUTES} min; load average ${load()}`);
  for (let i = 0; i < N; i++) await c.start(i); // one at a time: tsx compiles at start, and the box is shared
  await c.until((s) => s.every((x) => x !== null && x.members.filter((m) => m.state === 'alive').length === N && x.counters.programmed === N - 1), 120_000);
  log(`converged: every agent sees ${N} alive members and ${N - 1} remote endpoints`);
  const before = (await c.statuses()).map((s) => s!.counters as Counters);
  for (const h of tb.hosts) await setUnderlayLoss(h, LOSS);
  const t0 = Date.now();
  const end = t0 + MINUTES * 60_000;
  const seenSuspect = new Set<string>();
  const seenDead: string[] = [];
  let polls = 0;
  let missed = 0;
  let nextReport = t0 + 60_000;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    const st = await c.statuses();
    polls++;
    st.forEach((s, i) => {
      if (!s) return void missed++;
      for (const m of s.members) {
        if (m.state === 'suspect') seenSuspect.add(`${i}:${m.name}:${m.incarnation}`);
        if (m.state === 'dead' || m.state === 'left') seenDead.push(`${((Date.now() - t0) / 1000).toFixed(0)} s: agent ${i} sees ${m.name} ${m.state}`);
      }
    });
    for (const [i, p] of c.procs.entries()) if (p && p.proc.exitCode !== null) throw new Error(`agent ${i} exited (${p.proc.exitCode})`);
    if (Date.now() >= nextReport) {
      nextReport += 60_000;
      const sum = (k: string) => st.reduce((a, s, i) => a + (s ? (s.counters as Counters)[k] - before[i][k] : 0), 0);
      log(`${((Date.now() - t0) / 60_000).toFixed(0)} min: suspicions ${sum('suspicions')}, declared dead ${sum('declared_dead')}, refutations ${sum('refutations')}; load average ${load()}`);
    }
  }
  const secs = (Date.now() - t0) / 1000;
  const after = (await c.statuses()).map((s) => s!.counters as Counters);
  const loss = await Promise.all(tb.hosts.map((h) => readUnderlayLoss(h)));
  const delta = after.map((a, i) => Object.fromEntries(KEYS.map((k) => [k, a[k] - before[i][k]])) as Record<(typeof KEYS)[number], number>);
  for (const [i, d] of delta.entries()) log(`agent ${i}: ${KEYS.map((k) => `${k} ${d[k]}`).join(', ')}; dropped in ${loss[i].droppedIn}/${loss[i].seenIn}, out ${loss[i].droppedOut}/${loss[i].seenOut}`);
  const total = (k: (typeof KEYS)[number]) => delta.reduce((a, d) => a + d[k], 0);
  const dIn = loss.reduce((a, l) => a + l.droppedIn, 0) / Math.max(1, loss.reduce((a, l) => a + l.seenIn, 0));
  const dOut = loss.reduce((a, l) => a + l.droppedOut, 0) / Math.max(1, loss.reduce((a, l) => a + l.seenOut, 0));
  const bytes = loss.reduce((a, l) => a + l.gossipBytesOut, 0) / N / secs;
  const finalStates = (await c.statuses()).map((s) => s!.members.filter((m) => m.state !== 'alive').length);
  log(`RESULT ${secs.toFixed(0)} s at ${LOSS.toFixed(2)} % loss each way (measured: ${(100 * dIn).toFixed(2)} % in, ${(100 * dOut).toFixed(2)} % out), ${N} agents, ${PROFILE}:`);
  log(`  false deaths declared: ${total('declared_dead')}; suspicions raised: ${total('suspicions')}; refutations: ${total('refutations')}; probes failed ${total('probes_failed')} of ${total('probes')}`);
  log(`  status polls (1 s): ${polls}, members seen suspect ${seenSuspect.size} times (distinct agent/member/incarnation), seen dead or left ${seenDead.length}${seenDead.length ? ` (${seenDead.slice(0, 5).join('; ')})` : ''}, polls missed ${missed}`);
  log(`  members not alive at the end: ${finalStates.join('/')}; gossip bytes sent per node per second (L3, UDP+TCP 7946): ${bytes.toFixed(0)}`);
  log(`load average ${load()} (2 cores, shared)`);
  failed = total('declared_dead') > 0 || seenDead.length > 0;
} finally {
  await c.stopAll();
  await tb.destroy();
}
process.exitCode = failed ? 1 : 0;
