/**
 * kill -9 detection race: our agent and HashiCorp serf (Debian package) side by side on the same
 * testbed hosts, both LAN profile, killed at the same instant, observed by the same survivors.
 * Used by test/agent-serf.test.ts (both must detect) and bench/serf-compare.ts (the times).
 * Every process it starts is killed by stop() and, as a backstop, by the testbed's destroy().
 */
import type { ChildProcess } from 'node:child_process';
import type { Testbed, TestHost } from './testbed.js';
import { AgentCluster } from './agent-cluster.js';

export const SERF_PORT = 7947;
const RPC = '-rpc-addr=127.0.0.1:7373';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SerfMember {
  name: string;
  status: string;
}

async function serfMembers(h: TestHost): Promise<SerfMember[] | null> {
  const r = await h.run('serf', ['members', RPC, '-format=json'], { timeoutMs: 5000 });
  if (r.code !== 0) return null;
  return (JSON.parse(r.stdout) as { members: SerfMember[] }).members;
}

export interface TrialResult {
  /** ms from the kill until every survivor has our agent's victim dead; 0 if never within the limit. */
  oursMs: number;
  /** ms from the kill until every survivor's serf has the victim failed; 0 if never. */
  serfMs: number;
}

export class SerfRace {
  readonly agents: AgentCluster;
  private readonly serf: (ChildProcess | null)[];

  constructor(private readonly tb: Testbed) {
    this.agents = new AgentCluster(tb.hosts, { profile: 'lan' });
    this.serf = tb.hosts.map(() => null);
  }

  private startSerf(i: number): void {
    const h = this.tb.hosts[i];
    const seed = this.tb.hosts[0];
    this.serf[i] = h.spawn('serf', ['agent', `-node=s${i}`, `-bind=${h.underlay}:${SERF_PORT}`, RPC, '-profile=lan', `-join=${seed.underlay}:${SERF_PORT}`, '-log-level=err'], { stdio: 'ignore' });
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.tb.hosts.length; i++) {
      this.startSerf(i);
      await this.agents.start(i);
    }
  }

  /** Both clusters see all hosts alive (waits up to 60 s for ours, 30 s for serf). */
  async converged(): Promise<boolean> {
    const n = this.tb.hosts.length;
    await this.agents.until((s) => s.every((x) => x !== null && x.members.filter((m) => m.state === 'alive').length === n), 60_000);
    for (let w = 0; w < 120; w++) {
      const all = await Promise.all(this.tb.hosts.map(serfMembers));
      if (all.every((m) => m !== null && m.filter((x) => x.status === 'alive').length === n)) return true;
      await sleep(250);
    }
    return false;
  }

  /**
   * Kill host `victim`'s agent and serf with SIGKILL at the same instant, poll every ~200 ms until
   * every survivor has declared it (bounded by `limitMs`), then restart both on the victim.
   */
  async trial(victim: number, limitMs = 120_000): Promise<TrialResult> {
    const t0 = Date.now();
    this.serf[victim]!.kill('SIGKILL');
    this.serf[victim] = null;
    await this.agents.procs[victim]!.kill('SIGKILL');
    this.agents.procs[victim] = null;
    const survivors = this.tb.hosts.filter((_, i) => i !== victim);
    let oursMs = 0;
    let serfMs = 0;
    while ((!oursMs || !serfMs) && Date.now() - t0 < limitMs) {
      if (!oursMs) {
        const s = await this.agents.statuses();
        if (s.every((x, i) => i === victim || (x !== null && x.members.some((m) => m.state === 'dead')))) oursMs = Date.now() - t0;
      }
      if (!serfMs) {
        const views = await Promise.all(survivors.map(serfMembers));
        if (views.every((m) => m?.find((x) => x.name === `s${victim}`)?.status === 'failed')) serfMs = Date.now() - t0;
      }
      await sleep(200);
    }
    this.startSerf(victim);
    await this.agents.start(victim);
    return { oursMs, serfMs };
  }

  async stop(): Promise<void> {
    for (const s of this.serf) s?.kill('SIGKILL');
    await this.agents.stopAll();
  }
}
