import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, waitForLine, type Testbed } from './lib/testbed.js';
import { endpointMac, meshConfig, repoRoot, startVtep, type VtepProcess } from './lib/vtep.js';
import { collectLines, until } from './lib/wait.js';

// Real TCP through a VIP: host 1 runs openHost with the VIP translator stage (ServiceVips) and
// a client process; hosts 2..4 run our dataplane (vtep-host) and a TCP server on port 80 that
// sends its name on connect. Twice: the plain path (no TSO/GRO), and with the TAP offloads on
// (the kernel leaves TCP checksums to the TAP reader, CHECKSUM_PARTIAL; the segmenter completes
// them before the stages, so the translator's incremental updates start from a full checksum,
// and the receiving hosts' coalescers verify every TCP checksum before a GSO write).
const VIP = '198.19.0.100';
const VNI = 100;

/** openHost + ServiceVips in the namespace; stdin `state <id> <healthy|draining|down>` → stdout `SET <stats>`. */
const RUNNER = `
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { ServiceVips } from '@overlay/services';
const { hostOptions } = await import(process.env.VIP_HOST_CONFIG_TS);
const cfg = JSON.parse(process.env.VIP_HOST_CFG);
const spec = JSON.parse(process.env.VIP_SPEC);
const host = await openHost(hostOptions(cfg));
const vips = new ServiceVips(host.dataplane, { drainMs: 2000 });
vips.setVip(${VNI}, spec);
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, id, state] = line.split(' ');
  if (cmd === 'state') {
    spec.backends.find((b) => b.id === id).state = state;
    vips.setVip(${VNI}, spec);
    process.stdout.write('SET ' + Date.now() + ' ' + JSON.stringify(vips.stats()) + '\\n');
  } else if (cmd === 'offload') {
    const st = host.stats();
    process.stdout.write('OFFLOAD ' + JSON.stringify({ tso: st.tso, gro: st.gro }) + '\\n');
  }
});
let closing = false;
const stop = async () => {
  if (closing) return;
  closing = true;
  await host.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
rl.on('close', stop);
process.stdout.write('READY\\n');
`;

/** N connections to the VIP; prints CONN <port> <server name>, ERR <port> <code> <ms>, CLOSE <port> <ms>. Exits after LIFE_MS. */
const CLIENT = `
const net = require('node:net');
for (let i = 0; i < Number(process.env.N); i++) {
  const s = net.connect(80, '${VIP}');
  let port = -1;
  s.setEncoding('utf8');
  s.on('connect', () => { port = s.localPort; });
  s.once('data', (d) => process.stdout.write('CONN ' + port + ' ' + d.trim() + '\\n'));
  s.on('error', (e) => process.stdout.write('ERR ' + port + ' ' + e.code + ' ' + Date.now() + '\\n'));
  s.on('close', () => process.stdout.write('CLOSE ' + port + ' ' + Date.now() + '\\n'));
}
setTimeout(() => process.exit(0), Number(process.env.LIFE_MS));
`;

const SERVER = `
const net = require('node:net');
net.createServer((s) => { s.on('error', () => {}); s.write(process.env.NAME + '\\n'); }).listen(80, process.env.ADDR, () => process.stdout.write('LISTEN\\n'));
`;

describe.each([{ offloads: false }, { offloads: true }])('VIP with real TCP connections, in namespaces (TAP offloads $offloads)', ({ offloads }) => {
  let tb: Testbed;
  const vteps: VtepProcess[] = [];
  const children: ChildProcess[] = [];
  let runner: ChildProcess;
  let runnerOut: string[];

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 4, prefix: offloads ? 'vipo' : 'vip' });
    const cfg = meshConfig(tb.hosts, [VNI]).map((c) => ({ ...c, gro: offloads, tso: offloads }));
    for (let k = 1; k < 4; k++) vteps.push(await startVtep(tb.hosts[k], cfg[k]));
    for (let k = 1; k < 4; k++) {
      const h = tb.hosts[k];
      const s = h.spawn(process.execPath, ['-e', SERVER], { env: { ...process.env, NAME: `b${h.index}`, ADDR: `198.19.0.${h.index}` } });
      children.push(s);
      await waitForLine(s, /^LISTEN/, 20_000);
    }
    const spec = { vip: VIP, ports: [80], backends: [2, 3, 4].map((i) => ({ id: `b${i}`, ip: `198.19.0.${i}`, mac: endpointMac(i, 0), state: 'healthy' })) };
    runner = tb.hosts[0].spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', RUNNER], {
      cwd: `${repoRoot}/test`,
      env: { ...process.env, VIP_HOST_CFG: JSON.stringify(cfg[0]), VIP_SPEC: JSON.stringify(spec), VIP_HOST_CONFIG_TS: `${repoRoot}/test/lib/host-config.ts` },
    });
    children.push(runner);
    runnerOut = collectLines(runner);
    await until('runner READY', () => (runnerOut.includes('READY') ? true : undefined), 30_000);
  }, 120_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(vteps.map((v) => v.stop()));
    await tb?.destroy();
  }, 60_000);

  function client(n: number, lifeMs: number): { out: string[]; child: ChildProcess } {
    const child = tb.hosts[0].spawn(process.execPath, ['-e', CLIENT], { env: { ...process.env, N: String(n), LIFE_MS: String(lifeMs) } });
    children.push(child);
    return { out: collectLines(child), child };
  }

  it('spreads connections over the backends; a backend turned down resets its connections within 1 s and gets no new ones', async () => {
    const first = client(24, 40_000);
    const conns = await until('24 connections', () => {
      const c = first.out.filter((l) => l.startsWith('CONN '));
      return c.length === 24 ? c.map((l) => l.split(' ')) : undefined;
    }, 20_000);
    const byBackend = new Map<string, string[]>();
    for (const [, port, name] of conns) byBackend.set(name, [...(byBackend.get(name) ?? []), port]);
    expect([...byBackend.keys()].every((n) => ['b2', 'b3', 'b4'].includes(n))).toBe(true);
    expect(byBackend.size).toBeGreaterThanOrEqual(2);
    // The backend with the most connections goes down.
    const [victim, ports] = [...byBackend].sort((a, b) => b[1].length - a[1].length)[0];
    runner.stdin!.write(`state ${victim} down\n`);
    const setLine = await until('SET', () => runnerOut.find((l) => l.startsWith('SET ')), 10_000);
    const setAt = Number(setLine.split(' ')[1]);
    const resets = await until(`${ports.length} resets`, () => {
      const r = first.out.filter((l) => l.startsWith('ERR ')).map((l) => l.split(' '));
      return r.length >= ports.length ? r : undefined;
    }, 5_000);
    expect(resets.map((r) => r[1]).sort()).toEqual([...ports].sort());
    for (const r of resets) {
      expect(r[2]).toBe('ECONNRESET');
      expect(Number(r[3]) - setAt).toBeLessThanOrEqual(1000);
    }
    // The others stay open.
    await new Promise((r) => setTimeout(r, 500));
    expect(first.out.filter((l) => l.startsWith('CLOSE ') || l.startsWith('ERR ')).map((l) => l.split(' ')[1]).filter((p) => !ports.includes(p))).toEqual([]);

    const second = client(24, 20_000);
    const again = await until('24 new connections', () => {
      const c = second.out.filter((l) => l.startsWith('CONN '));
      return c.length === 24 ? c.map((l) => l.split(' ')[2]) : undefined;
    }, 20_000);
    expect(again).not.toContain(victim);
    first.child.kill('SIGTERM');
    second.child.kill('SIGTERM');
    // With offloads, the client host's kernel did hand over partial checksums (completed before the stage).
    runner.stdin!.write('offload\n');
    const off = JSON.parse((await until('OFFLOAD', () => runnerOut.find((l) => l.startsWith('OFFLOAD ')), 10_000)).slice(8)) as { tso: Record<string, { checksummed: number; malformed: number }>; gro: Record<string, { badChecksum: number }> };
    const tso = Object.values(off.tso);
    console.log(`offloads ${offloads}: client host TSO counters ${JSON.stringify(off.tso)}, GRO ${JSON.stringify(off.gro)}`);
    if (offloads) expect(tso.reduce((n, x) => n + x.checksummed, 0)).toBeGreaterThan(0);
    else expect(tso.reduce((n, x) => n + x.checksummed, 0)).toBe(0);
  }, 90_000);
});
