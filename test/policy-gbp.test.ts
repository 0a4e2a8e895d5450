import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addKernelVtep } from './lib/kernel-vtep.js';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { ping } from './lib/transfer.js';
import { endpointMac, repoRoot } from './lib/vtep.js';
import { collectLines, until } from './lib/wait.js';
import { RUNNER_STOP_AND_READY } from './lib/runner-script.js';

// Identity on the wire, against the Linux kernel's `vxlan … gbp`: host 1 runs openHost with the
// policy filter on a GBP network; host 2 a kernel VXLAN device with `gbp`, where the packet mark
// is the Group Policy ID (received IDs become the mark, the mark is sent as the ID). Host 2's
// address is in no group on host 1: what it may do is decided by the ID its packets carry.
const VNI = 4343;
const OURS = '198.19.0.1';
const KERNEL = '198.19.0.2';
const WEB_ID = 0x1234;
const OPS_ID = 0x42;

const POLICY = {
  defaultAction: 'deny',
  tiers: {
    network: [
      { id: 'web-out', action: 'allow', from: { groups: ['web'] }, proto: 'icmp', icmpTypes: [8] },
      { id: 'ops-in', action: 'allow', from: { groups: ['ops'] }, to: { groups: ['web'] }, proto: 'icmp', icmpTypes: [8] },
    ],
  },
};

/** openHost + PolicyFilter on a GBP network; stdin `stats` → `STATS <json>`. */
const RUNNER = `
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { PolicyFilter } from '@overlay/services';
const { hostOptions } = await import(process.env.HOST_CONFIG_TS);
const host = await openHost(hostOptions(JSON.parse(process.env.HOST_CFG)));
const f = new PolicyFilter({ policy: JSON.parse(process.env.POLICY), log: () => {}, gbp: true });
f.identity.set('${OURS}', ['web'], ${WEB_ID});
f.identity.defineGroupPolicy(${OPS_ID}, ['ops']);
host.dataplane.addStage(${VNI}, f);
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line === 'stats') process.stdout.write('STATS ' + JSON.stringify({ ...f.stats(), drops: host.dataplane.stats().drops }) + '\\n');
});
${RUNNER_STOP_AND_READY}`;

describe('VXLAN Group Policy (GBP) with the Linux kernel', () => {
  let tb: Testbed;
  let runner: ChildProcess | undefined;
  let out: string[] = [];
  const ours = endpointMac(1, 0);
  const kernel = endpointMac(2, 0);

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'gbp' });
    const [h1, h2] = tb.hosts;
    await addKernelVtep(h2, { vni: VNI, local: h2.underlay, mac: kernel, mtu: 1450, address: `${KERNEL}/24`, peer: h1.underlay, macs: [ours], gbp: true });
    // Kernel side: count arriving packets whose ID (now the mark) is web's; mark what leaves as ops.
    await h2.exec('nft', ['-f', '-'], {
      input: [
        'table ip gbpt {',
        '  counter web_id { }',
        `  chain pre { type filter hook prerouting priority 0; iifname "vxk" meta mark ${WEB_ID} counter name "web_id"; }`,
        `  chain out { type filter hook output priority 0; oifname "vxk" meta mark set ${OPS_ID}; }`,
        '}',
      ].join('\n') + '\n',
    });
    const cfg = {
      address: h1.underlay,
      networks: [{ vni: VNI, tap: 'vx0', mac: ours, addresses: [`${OURS}/24`], fdb: [{ mac: kernel, vtep: h2.underlay }], flood: [h2.underlay], arpSuppression: false, gbp: true }],
    };
    runner = h1.spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', RUNNER], {
      cwd: `${repoRoot}/test`,
      env: { ...process.env, HOST_CFG: JSON.stringify(cfg), POLICY: JSON.stringify(POLICY), HOST_CONFIG_TS: `${repoRoot}/test/lib/host-config.ts` },
    });
    out = collectLines(runner);
    await until('runner READY', () => (out.includes('READY') ? true : undefined), 40_000);
  }, 120_000);

  afterAll(async () => {
    if (runner && runner.exitCode === null && runner.signalCode === null) {
      runner.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      if (runner.exitCode === null && runner.signalCode === null) runner.kill('SIGKILL');
    }
    await tb?.destroy();
  }, 60_000);

  async function stats(): Promise<{ counters: Record<string, number> }> {
    const before = out.length;
    runner!.stdin!.write('stats\n');
    const l = await until('STATS', () => out.slice(before).find((x) => x.startsWith('STATS ')), 10_000);
    return JSON.parse(l.slice(6));
  }

  async function kernelCounter(): Promise<number> {
    const r = await tb.hosts[1].run('nft', ['list', 'counter', 'ip', 'gbpt', 'web_id']);
    return Number(/packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
  }

  it('sends the sender\'s ID: the kernel marks our echo requests with web\'s ID', async () => {
    const before = await kernelCounter();
    expect(await ping(tb.hosts[0], KERNEL, 3)).toBe(3);
    // ≥ 3 echo requests (ARP from us carries no ID: it is not judged by the filter).
    expect((await kernelCounter()) - before).toBeGreaterThanOrEqual(3);
  });

  it('takes the sender\'s groups from the ID: ops (0x42) may ping web, an undeclared ID may not', async () => {
    const s0 = await stats();
    expect(await ping(tb.hosts[1], OURS, 3)).toBe(3);
    const s1 = await stats();
    expect(s1.counters.gbp_identified - s0.counters.gbp_identified).toBeGreaterThanOrEqual(1);
    // The same host, now sending an ID nobody declared: no groups, default deny.
    await tb.hosts[1].exec('nft', ['-f', '-'], { input: `flush chain ip gbpt out\nadd rule ip gbpt out oifname "vxk" meta mark set 0x43\n` });
    expect(await ping(tb.hosts[1], OURS, 3)).toBe(0);
    const s2 = await stats();
    expect(s2.counters.outside_denied - s1.counters.outside_denied).toBeGreaterThanOrEqual(3);
  });
});
