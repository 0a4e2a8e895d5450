import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, waitForLine, type Testbed } from './lib/testbed.js';
import { endpointMac, meshConfig, repoRoot, startVtep, type VtepProcess } from './lib/vtep.js';
import { collectLines, until } from './lib/wait.js';
import { RUNNER_STOP_AND_READY } from './lib/runner-script.js';

// Real TCP through a VIP: host 1 runs openHost with the VIP translator stage (ServiceVips) and
// a client process; hosts 2..4 run our dataplane (vtep-host) and a TCP server on port 80 that
// sends its name on connect. Twice: the plain path (no TSO/GRO), and with the TAP offloads on
// (the kernel leaves TCP checksums to the TAP reader, CHECKSUM_PARTIAL; the segmenter completes
// them before the stages, so the translator's incremental updates start from a full checksum,
// and the receiving hosts' coalescers verify every TCP checksum before a GSO write).
const VIP = '198.19.0.100';
const VIP6 = '2001:db8:64::ff01';
const IP6 = (i: number) => `2001:db8:64::${i}`;
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
vips.setVip(${VNI}, JSON.parse(process.env.VIP_SPEC6));
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
${RUNNER_STOP_AND_READY}`;

/** N connections to the VIP; prints CONN <port> <server name>, ERR <port> <code> <ms>, CLOSE <port> <ms>. Exits after LIFE_MS. */
const CLIENT = `
const net = require('node:net');
for (let i = 0; i < Number(process.env.N); i++) {
  const s = net.connect(80, process.env.TO || '${VIP}');
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
const serve = (addr, line) => net.createServer((s) => { s.on('error', () => {}); s.write(process.env.NAME + '\\n'); }).listen(80, addr, () => process.stdout.write(line + '\\n'));
serve(process.env.ADDR, 'LISTEN');
serve(process.env.ADDR6, 'LISTEN6');
`;

describe.each([{ offloads: false }, { offloads: true }])('VIP with real TCP connections, in namespaces (TAP offloads $offloads)', ({ offloads }) => {
  let tb: Testbed;
  const vteps: VtepProcess[] = [];
  const children: ChildProcess[] = [];
  let runner: ChildProcess;
  let runnerOut: string[];

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 4, prefix: offloads ? 'vipo' : 'vip' });
    // IPv6 overlay addresses beside the IPv4 ones (ND for them answered from the static neighbours).
    const cfg = meshConfig(tb.hosts, [VNI]).map((c, k) => ({
      ...c, gro: offloads, tso: offloads,
      networks: c.networks.map((n) => ({
        ...n, addresses: [...(n.addresses ?? []), `${IP6(k + 1)}/64`],
        neighbours: [...(n.neighbours ?? []), ...tb.hosts.filter((h) => h.index !== k + 1).map((h) => ({ ip: IP6(h.index), mac: endpointMac(h.index, 0) }))],
      })),
    }));
    for (let k = 1; k < 4; k++) vteps.push(await startVtep(tb.hosts[k], cfg[k]));
    for (let k = 1; k < 4; k++) {
      const h = tb.hosts[k];
      const s = h.spawn(process.execPath, ['-e', SERVER], { env: { ...process.env, NAME: `b${h.index}`, ADDR: `198.19.0.${h.index}`, ADDR6: IP6(h.index) } });
      children.push(s);
      const lines = collectLines(s);
      await until('LISTEN and LISTEN6', () => (lines.includes('LISTEN') && lines.includes('LISTEN6') ? true : undefined), 20_000);
    }
    const spec = { vip: VIP, ports: [80], backends: [2, 3, 4].map((i) => ({ id: `b${i}`, ip: `198.19.0.${i}`, mac: endpointMac(i, 0), state: 'healthy' })) };
    const spec6 = { vip: VIP6, ports: [80], backends: [2, 3, 4].map((i) => ({ id: `b${i}`, ip: IP6(i), mac: endpointMac(i, 0), state: 'healthy' })) };
    runner = tb.hosts[0].spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', RUNNER], {
      cwd: `${repoRoot}/test`,
      env: { ...process.env, VIP_HOST_CFG: JSON.stringify(cfg[0]), VIP_SPEC: JSON.stringify(spec), VIP_SPEC6: JSON.stringify(spec6), VIP_HOST_CONFIG_TS: `${repoRoot}/test/lib/host-config.ts` },
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

  function client(n: number, lifeMs: number, to = VIP): { out: string[]; child: ChildProcess } {
    const child = tb.hosts[0].spawn(process.execPath, ['-e', CLIENT], { env: { ...process.env, N: String(n), LIFE_MS: String(lifeMs), TO: to } });
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

  it('fragmented datagrams: ping -s 3000 to the VIP (3 fragments each way) is answered from the VIP', async () => {
    // The client's kernel fragments each 3 028-byte echo request; the translator sends the first
    // fragment to the flow's backend and the later ones after it; the backend's fragmented reply
    // comes back from the VIP. Before, every fragment to a VIP was dropped: 0 answered.
    const r = await tb.hosts[0].run('ping', ['-c', '5', '-i', '0.2', '-W', '5', '-s', '3000', VIP], { timeoutMs: 60_000 });
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    console.log(`offloads ${offloads}: ping -s 3000 ${VIP}: ${m?.[0] ?? r.stdout.slice(-200)}`);
    expect(Number(m?.[2] ?? 0)).toBeGreaterThanOrEqual(1);
    expect(r.stdout).toContain(`from ${VIP}`);
  }, 90_000);

  it('IPv6: the kernel resolves the VIP by ND (answered by the stage) and connections spread over the backends\' IPv6 addresses', async () => {
    const c = client(24, 20_000, VIP6);
    const names = await until('24 IPv6 connections', () => {
      const got = c.out.filter((l) => l.startsWith('CONN '));
      return got.length === 24 ? got.map((l) => l.split(' ')[2]) : undefined;
    }, 20_000);
    c.child.kill('SIGTERM');
    console.log(`offloads ${offloads}: 24 IPv6 connections: ${['b2', 'b3', 'b4'].map((n) => `${n} ${names.filter((x) => x === n).length}`).join(', ')}`);
    expect(names.every((n) => ['b2', 'b3', 'b4'].includes(n))).toBe(true);
    expect(new Set(names).size).toBeGreaterThanOrEqual(2);
    const sets = runnerOut.filter((l) => l.startsWith('SET ')).length;
    runner.stdin!.write('state b2 healthy\n');
    const st = await until('a new SET', () => runnerOut.filter((l) => l.startsWith('SET '))[sets], 10_000);
    expect(JSON.parse(st.split(' ').slice(2).join(' '))[0].counters.nd_answered).toBeGreaterThan(0);
  }, 60_000);
});
