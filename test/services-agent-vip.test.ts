import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, waitForLine, type Testbed } from './lib/testbed.js';
import type { NodeStatus } from '../packages/agent/src/status.js';
import { ServiceCluster, dig } from './lib/service-cluster.js';

// Three namespace hosts run the real agent; hosts 1 and 2 run an instance of `web` in vip mode
// (no VIP declared: every agent allocates the same one from the subnet) and a TCP server on
// 8080 that sends its instance id; host 3 connects to the VIP, translated by its own dataplane.
const WEB = [0, 1];
const CLIENT_HOST = 2;
const N = 40;

/** `web` in vip mode, without a declared VIP. */
class VipCluster extends ServiceCluster {
  override config(i: number, endpointIp?: string, seedIndex?: number): string {
    const text = super.config(i, endpointIp, seedIndex);
    const web = '  - name: web\n    network: blue\n';
    return text.includes(web) ? text.replace(web, `${web}    endpointMode: vip\n`) : text;
  }
}

const SERVER = `
const net = require('node:net');
net.createServer((s) => { s.on('error', () => {}); s.end(process.env.NAME + '\\n'); }).listen(8080, process.env.ADDR, () => process.stdout.write('LISTEN\\n'));
`;

/** N connections one after another (each with a new source port), 2 s each at most; one line per connection: the id or ERR. */
const client = (vip: string, n = N) => `
const net = require('node:net');
(async () => {
  for (let i = 0; i < ${n}; i++) {
    const line = await new Promise((res) => {
      const s = net.connect(8080, '${vip}');
      let got = '';
      const t = setTimeout(() => { s.destroy(); res('ERR timeout'); }, 2000);
      s.setEncoding('utf8');
      s.on('data', (d) => { got += d; });
      s.on('end', () => { clearTimeout(t); res(got.trim() || 'ERR empty'); });
      s.on('error', (e) => { clearTimeout(t); res('ERR ' + e.code); });
    });
    process.stdout.write(line + '\\n');
  }
})();
`;

describe('VIPs in the agent: a vip-mode service balanced by the client host\'s dataplane', () => {
  let tb: Testbed;
  let c: VipCluster;
  const servers: ChildProcess[] = [];
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 3, prefix: 'avip' });
    c = new VipCluster(tb.hosts, { profile: 'lan', web: WEB, interval: '300ms', retries: 2 });
    for (let i = 0; i < 3; i++) await c.start(i);
    for (const i of WEB) {
      const s = tb.hosts[i].spawn(process.execPath, ['-e', SERVER], { env: { ...process.env, NAME: `web-${i}`, ADDR: c.ip(i) } });
      servers.push(s);
      await waitForLine(s, /LISTEN/, 10_000);
    }
  }, 60_000);
  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await c?.stopAll();
    await tb?.destroy();
  });

  const connect = async (vip: string, from = CLIENT_HOST, n = N): Promise<string[]> => {
    const r = await tb.hosts[from].run(process.execPath, ['-e', client(vip, n)], { timeoutMs: n * 2_500 });
    return r.stdout.trim().split('\n');
  };
  const vipOf = (s: NodeStatus) => s.services?.vips?.find((v) => v.service === 'web');

  it('connections to the VIP reach both instances; one turned unhealthy gets no new ones within a few seconds', async () => {
    // Every host allocates the same VIP; the client's host lists both backends healthy.
    let vip = '';
    const t0 = Date.now();
    for (;;) {
      const st = (await c.statuses()) as (NodeStatus | null)[];
      const v = st.map((s) => (s ? vipOf(s) : undefined));
      const healthy = v[CLIENT_HOST]?.backends.filter((b) => b.state === 'healthy').length ?? 0;
      if (v.every((x) => x && x.vip === v[0]!.vip) && healthy === 2) {
        vip = v[0]!.vip;
        break;
      }
      if (Date.now() - t0 > 30_000) throw new Error(`VIPs not programmed: ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(vip).toMatch(/^198\.19\.0\.(1[2-9][0-9]|2[0-4][0-9]|25[0-4])$/);
    expect((await dig(tb.hosts[CLIENT_HOST], 'web')).addrs).toEqual([vip]);

    const before = await connect(vip);
    const seen = new Set(before);
    console.log(`${N} connections to ${vip}: web-0 ${before.filter((x) => x === 'web-0').length}, web-1 ${before.filter((x) => x === 'web-1').length}, other ${before.filter((x) => !x.startsWith('web-')).length}`);
    expect([...seen].sort()).toEqual(['web-0', 'web-1']);
    // A client on a backend's host reaches both instances: its own one through the hairpin
    // (source rewritten to the VIP, back into the same kernel), the other host's as usual.
    const local = await connect(vip, 0, 20);
    console.log(`20 connections from web-0's host: web-0 ${local.filter((x) => x === 'web-0').length}, web-1 ${local.filter((x) => x === 'web-1').length}, other ${local.filter((x) => !x.startsWith('web-')).join(' ')}`);
    expect(new Set(local)).toEqual(new Set(['web-0', 'web-1']));

    c.setHealthy(1, false);
    const t1 = Date.now();
    await c.until((s) => (s[CLIENT_HOST] ? vipOf(s[CLIENT_HOST] as NodeStatus)?.backends.find((b) => b.id === 'web-1')?.state === 'down' : false), 10_000, 100);
    const down = Date.now() - t1;
    const after = await connect(vip);
    console.log(`web-1 unhealthy → down at the client's host after ${down} ms; then ${N} connections: ${[...new Set(after)].join(', ')}`);
    expect(down).toBeLessThan(5_000);
    expect(new Set(after)).toEqual(new Set(['web-0']));
  }, 90_000);
});
