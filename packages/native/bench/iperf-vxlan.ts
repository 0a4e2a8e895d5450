/**
 * iperf3 TCP across two namespace hosts: our userspace VXLAN with offloads (TAP TSO + GRO, UDP GSO;
 * VNI 100, port 4789, 198.19.0.0/24), the same plus UDP GRO on the receiving socket (VNI 400, port
 * 4792, 198.19.3.0/24), ours without offloads (one frame per syscall; VNI 300, port 4791,
 * 198.19.2.0/24) and the Linux kernel's vxlan device (VNI 200, port 4790, 198.19.1.0/24), on the
 * same hosts and underlay, alternating in one run; medians of N rounds.
 * Run as root: node --conditions=source --import tsx packages/native/bench/iperf-vxlan.ts [rounds] [seconds] [offloads]
 * offloads 'off' turns off TX checksum offload (and so TSO) on both underlay veths, as on a wire
 * whose NIC cannot offload VXLAN: the kernel then segments and checksums in software too.
 */
import { readFileSync } from 'node:fs';
import { createTestbed, exec, type TestHost } from '../../../test/lib/testbed.js';
import { endpointMac, meshConfig, startVtep, type VtepProcess } from '../../../test/lib/vtep.js';

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 5);
const offloads = process.argv[4] ?? 'on';
/** CPU seconds (user + system) a process has used so far. */
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
/** Seconds a process spent waiting on a run queue (runnable but not running), from schedstat. */
const waitSeconds = (pid: number) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function iperf(client: TestHost, server: TestHost, address: string): Promise<{ bps: number; retransmits: number }> {
  const srv = server.spawn('iperf3', ['-s', '-1', '-B', address]);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const r = await client.run('iperf3', ['-c', address, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits: number } } };
    return { bps: j.end.sum_received.bits_per_second, retransmits: j.end.sum_sent.retransmits };
  } finally {
    srv.kill('SIGKILL');
  }
}

const tb = await createTestbed({ hosts: 2, prefix: 'bvx' });
const [a, b] = tb.hosts;
let vteps: VtepProcess[] = [];
const ours: number[] = [];
const withGro: number[] = [];
/** CPU seconds of both hosts' VTEP processes per gigabit carried, per round. */
const oursCpuPerGbit: number[] = [];
const groCpuPerGbit: number[] = [];
const plain: number[] = [];
const kernel: number[] = [];
try {
  if (offloads === 'off') for (const h of tb.hosts) await h.exec('ethtool', ['-K', 'ul0', 'tx', 'off']);
  for (const [h, peer] of [
    [a, b],
    [b, a],
  ] as const) {
    await exec('ip', ['-n', h.name, '-batch', '-'], {
      input:
        [
          `link add vxk type vxlan id 200 dstport 4790 local ${h.underlay} dev ul0 nolearning`,
          `link set vxk address ${endpointMac(h.index, 0x20)} mtu 1450`,
          `addr add 198.19.1.${h.index}/24 dev vxk`,
          'link set vxk up',
        ].join('\n') + '\n',
    });
    await h.exec('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', 'vxk', 'dst', peer.underlay]);
    await h.exec('bridge', ['fdb', 'add', endpointMac(peer.index, 0x20), 'dev', 'vxk', 'dst', peer.underlay]);
    await h.exec('ip', ['neigh', 'replace', `198.19.1.${peer.index}`, 'lladdr', endpointMac(peer.index, 0x20), 'dev', 'vxk']);
  }
  // The host runner turns UDP GRO on by default; this variant is the one without it.
  const cfg = meshConfig(tb.hosts, [100]).map((c) => ({ ...c, udpGro: false }));
  vteps = await Promise.all(tb.hosts.map((h, i) => startVtep(h, cfg[i])));
  // More dataplanes per host, each on its own port, VNI, TAP and subnet.
  const variant = (vni: number, port: number, tap: string, subnet: number, opts: { gso: boolean; gro: boolean; tso: boolean; udpGro: boolean }) =>
    meshConfig(tb.hosts, [vni]).map((c) => ({
      ...c,
      port,
      ...opts,
      networks: c.networks.map((n) => ({
        ...n,
        tap,
        addresses: n.addresses!.map((a) => a.replace(/^198\.19\.0\./, `198.19.${subnet}.`)),
        neighbours: n.neighbours!.map((x) => ({ ...x, ip: x.ip.replace(/^198\.19\.0\./, `198.19.${subnet}.`) })),
        fdb: n.fdb!.map((f) => ({ ...f, port })),
        flood: n.flood!.map((f) => ({ address: f as string, port })),
      })),
    }));
  // Every offload off; and every offload on plus UDP GRO.
  const plainCfg = variant(300, 4791, 'vxp', 2, { gso: false, gro: false, tso: false, udpGro: false });
  const groCfg = variant(400, 4792, 'vxg', 3, { gso: true, gro: true, tso: true, udpGro: true });
  vteps.push(...(await Promise.all(tb.hosts.map((h, i) => startVtep(h, plainCfg[i])))));
  vteps.push(...(await Promise.all(tb.hosts.map((h, i) => startVtep(h, groCfg[i])))));
  for (let r = 0; r < rounds; r++) {
    const c0 = vteps.map((v) => cpuSeconds(v.child.pid!));
    const w0 = vteps.map((v) => waitSeconds(v.child.pid!));
    const t0 = performance.now();
    const o = await iperf(a, b, '198.19.0.2');
    const el = (performance.now() - t0) / 1000;
    const cpu = vteps.map((v, i) => Math.round(((cpuSeconds(v.child.pid!) - c0[i]) / el) * 100));
    const wait = vteps.map((v, i) => Math.round(((waitSeconds(v.child.pid!) - w0[i]) / el) * 100));
    const gc0 = vteps.map((v) => cpuSeconds(v.child.pid!));
    const gt0 = performance.now();
    const g = await iperf(a, b, '198.19.3.2');
    const gel = (performance.now() - gt0) / 1000;
    const gcpu = vteps.map((v, i) => Math.round(((cpuSeconds(v.child.pid!) - gc0[i]) / gel) * 100));
    const p = await iperf(a, b, '198.19.2.2');
    const k = await iperf(a, b, '198.19.1.2');
    ours.push(o.bps);
    withGro.push(g.bps);
    oursCpuPerGbit.push(((cpu[0] + cpu[1]) / 100) * el / ((o.bps * el) / 1e9));
    groCpuPerGbit.push(((gcpu[4] + gcpu[5]) / 100) * gel / ((g.bps * gel) / 1e9));
    plain.push(p.bps);
    kernel.push(k.bps);
    process.stdout.write(
      `round ${r + 1}: ours ${(o.bps / 1e6).toFixed(0)} Mbit/s (retr ${o.retransmits}, VTEP CPU ${cpu[0]} % / ${cpu[1]} %, run-queue wait ${wait[0]} % / ${wait[1]} %), ours + UDP GRO ${(g.bps / 1e6).toFixed(0)} Mbit/s (retr ${g.retransmits}, VTEP CPU ${gcpu[4]} % / ${gcpu[5]} %), ours without offloads ${(p.bps / 1e6).toFixed(0)} Mbit/s, kernel ${(k.bps / 1e6).toFixed(0)} Mbit/s (retr ${k.retransmits})\n`,
    );
  }
  const s = await vteps[0].stats();
  process.stdout.write(`our sender: ${s.transport.txPackets} datagrams in ${s.transport.txSyscalls} sendmmsg calls, drops ${JSON.stringify(Object.fromEntries(Object.entries(s.dataplane.drops).filter(([, v]) => v)))}\n`);
  for (const [name, v] of [
    ['receiver without UDP GRO', vteps[1]],
    ['receiver with UDP GRO', vteps[5]],
  ] as const) {
    const t = (await v.stats()).transport;
    process.stdout.write(
      `${name}: ${t.rxPackets} datagrams in ${t.rxSyscalls} recvmmsg calls, ${t.rxGroDatagrams} of them in ${t.rxGroMessages} coalesced messages, drops nobuf ${t.rxNoBufferDrops} toobig ${t.rxTooBigDrops}\n`,
    );
  }
} finally {
  await Promise.all(vteps.map((v) => v.stop()));
  await tb.destroy();
}
const mo = median(ours);
const mg = median(withGro);
const mp = median(plain);
const mk = median(kernel);
process.stdout.write(`\nunderlay offloads ${offloads}; median of ${rounds} rounds, ${seconds} s each: ours ${(mo / 1e6).toFixed(0)} Mbit/s (${((mo / mk) * 100).toFixed(1)} % of kernel), ours + UDP GRO ${(mg / 1e6).toFixed(0)} Mbit/s (${((mg / mk) * 100).toFixed(1)} %; ${(mg / mo).toFixed(2)}× without; VTEP CPU per Gbit ${median(groCpuPerGbit).toFixed(2)} s vs ${median(oursCpuPerGbit).toFixed(2)} s), ours without offloads ${(mp / 1e6).toFixed(0)} Mbit/s (${((mp / mk) * 100).toFixed(1)} %), kernel vxlan ${(mk / 1e6).toFixed(0)} Mbit/s\n`);
