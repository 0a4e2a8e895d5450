import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main, queryControl, type PlanView } from '@overlay/agent';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { AgentCluster } from './lib/agent-cluster.js';

/**
 * `agent apply` and SIGHUP under traffic, with real agents in two namespace hosts. Both start
 * with a policy on network blue: deny by default, allow ICMP and TCP 5201 and 5202 (replies pass
 * by the filter's flow table, so a swap that lost or misjudged tracked flows would drop them). While a ping flood (bounded:
 * 600 packets, 10 ms apart) and an iperf3 TCP stream run from host 0 to host 1, host 0's agent
 * applies a new file through `agent apply` and host 1's agent re-reads its file on SIGHUP. The
 * new version adds a service and drops the rule allowing TCP 5202; ping and the stream on 5201 are
 * allowed by both versions: 0 pings lost, no one-second interval of the stream without bytes.
 * Then TCP 5202 is refused (the new rule is in the dataplane) while 5201 still connects. The new
 * version has 300 more rules, so both agents compile it in a worker (compile-off-thread.ts): the
 * shipped agent's worker path runs here, under traffic.
 */
const RULES = (ports: string[]) => ["{ id: ping, action: allow, proto: icmp }", ...ports.map((p) => `{ id: tcp-${p}, action: allow, proto: tcp, ports: ['${p}'] }`)];
const V1 = { allow: RULES(['5201', '5202']) };
/** V2 also has 300 rules no test traffic meets, so the agents compile it in a worker (OFF_THREAD_MIN_RULES = 256). */
const FILLER = Array.from({ length: 300 }, (_, i) => `{ id: filler-${i}, action: deny, proto: udp, ports: ['${30_000 + i}'] }`);
const V2 = { allow: [...RULES(['5201']), ...FILLER] };

class PolicyCluster extends AgentCluster {
  version = V1;
  override config(i: number): string {
    return [
      'version: 1',
      super.config(i).trimEnd(),
      'policies:',
      '  - network: blue',
      '    defaultAction: deny',
      '    tiers:',
      `      service: [${this.version.allow.join(', ')}]`,
      ...(this.version === V2 ? ['services:', '  - name: extra', '    network: blue', `    instances: [{ id: extra-${i}, endpoint: ep-${i}, ports: [{ port: 9 }] }]`] : []),
      '',
    ].join('\n');
  }
  file(i: number): string {
    return join(this.dir, `a${i}.yaml`);
  }
}

async function inProcess(args: string[]) {
  let stdout = '';
  let stderr = '';
  const o = process.stdout.write;
  const e = process.stderr.write;
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof o;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof e;
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe('agent apply and SIGHUP under traffic', () => {
  let tb: Testbed;
  let c: PolicyCluster;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'h5ap' });
    c = new PolicyCluster(tb.hosts, { profile: 'lan' });
    await c.start(0);
    await c.start(1);
    await c.until((s) => s.every((x) => x !== null && x.members.filter((m) => m.state === 'alive').length === 2), 30_000);
  }, 120_000);
  afterAll(async () => {
    await c?.stopAll();
    await tb?.destroy();
  });

  it('0 drops for flows both versions allow; the new rule acts; plan shows the change, then nothing', async () => {
    const [h0, h1] = tb.hosts;
    // Overlay reachability first (records programmed), bounded.
    let ok = false;
    for (let t = 0; t < 60 && !ok; t++) ok = (await h0.run('ping', ['-c', '1', '-W', '1', c.ip(1)], { timeoutMs: 5000 })).code === 0;
    expect(ok).toBe(true);
    const servers = [h1.spawn('iperf3', ['-s', '-p', '5201', '-1']), h1.spawn('iperf3', ['-s', '-p', '5202'])];
    try {
      await new Promise((r) => setTimeout(r, 500));
      const tcp = (port: number) => h0.run('bash', ['-c', `timeout 3 bash -c 'exec 3<>/dev/tcp/${c.ip(1)}/${port}' && echo open || echo closed`], { timeoutMs: 10_000 });
      expect((await tcp(5202)).stdout.trim()).toBe('open');

      // The new version of both files; plan against the running agent before applying.
      c.version = V2;
      writeFileSync(c.file(0), c.config(0));
      writeFileSync(c.file(1), c.config(1));
      const planned = await inProcess(['plan', '--config', c.file(0)]);
      expect(planned.code).toBe(0);
      expect(planned.stdout).toContain(`+ instance blue/extra/extra-0: endpoint=ep-0 ports=9/tcp`);
      expect(planned.stdout).toContain('- rule blue/tcp-5202: #2 service');
      expect(planned.stdout).toMatch(/302 to add, 1 to change, 1 to remove; all live\n$/);

      const ping = h0.run('ping', ['-c', '600', '-i', '0.01', '-W', '1', c.ip(1)], { timeoutMs: 30_000 });
      const stream = h0.run('iperf3', ['-c', c.ip(1), '-p', '5201', '-t', '5', '-J'], { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 1500));
      const applied = await inProcess(['apply', '--config', c.file(0)]);
      c.procs[1]!.proc.kill('SIGHUP');
      const [p, s] = await Promise.all([ping, stream]);
      expect({ code: applied.code, stderr: applied.stderr }).toEqual({ code: 0, stderr: '' });
      expect(applied.stdout).toMatch(/all live\n$/);
      const loss = /(\d+) packets transmitted, (\d+) received/.exec(p.stdout);
      expect(loss?.slice(1, 3)).toEqual(['600', '600']);
      const j = JSON.parse(s.stdout) as { intervals: { sum: { bytes: number } }[]; end: { sum_received: { bytes: number } } };
      expect(j.intervals.length).toBeGreaterThanOrEqual(5);
      expect(j.intervals.filter((x) => x.sum.bytes === 0)).toEqual([]);
      console.log(`apply under traffic: ping ${loss![2]}/${loss![1]} received; iperf3 ${(j.end.sum_received.bytes / 2 ** 20).toFixed(1)} MiB received in ${j.intervals.length} intervals, min ${Math.min(...j.intervals.map((x) => x.sum.bytes))} B`);

      // Both agents run the new version: host 1 by SIGHUP (poll its view), host 0 by apply.
      const hasRule = async (i: number) => ((await queryControl(c.procs[i]!.socket, 3000, 'config')) as { view: PlanView }).view.rules['blue/tcp-5202'] === undefined;
      for (let t = 0; t < 50 && !(await hasRule(1)); t++) await new Promise((r) => setTimeout(r, 100));
      expect([await hasRule(0), await hasRule(1)]).toEqual([true, true]);
      expect((await tcp(5202)).stdout.trim()).toBe('closed');
      expect((await inProcess(['plan', '--config', c.file(0)])).stdout).toBe('no changes\n');

      // A file that needs a restart is refused by apply and changes nothing.
      writeFileSync(c.file(0), c.config(0).replace(/^listen: (.*):7946$/m, 'listen: $1:7947'));
      const refused = await inProcess(['apply', '--config', c.file(0)]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/not applied \(nothing changed\): host advertise: .*\nhost listen: /);
      expect(await hasRule(0)).toBe(true);
    } finally {
      for (const sv of servers) sv.kill('SIGKILL');
    }
  }, 120_000);
});
