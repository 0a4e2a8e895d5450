/**
 * The README's demo: three network-namespace hosts on one bridge, our VXLAN dataplane on each
 * (static configuration), all-pairs ping across the overlay, a short iperf3 figure, cleanup.
 * Needs root. Run through `bash scripts/demo.sh` (which installs and builds first).
 */
import { createTestbed, type Testbed } from '../test/lib/testbed.js';
import { ping } from '../test/lib/transfer.js';
import { meshConfig, startVtep, type VtepProcess } from '../test/lib/vtep.js';

const step = (msg: string) => process.stdout.write(`\n==> ${msg}\n`);
const info = (msg: string) => process.stdout.write(`    ${msg}\n`);

async function iperf(tb: Testbed, seconds: number): Promise<number> {
  const [a, b] = tb.hosts;
  const server = b.spawn('iperf3', ['-s', '-1', '-B', '198.19.0.2']);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const r = await a.run('iperf3', ['-c', '198.19.0.2', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 });
    if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stderr || r.stdout.slice(0, 500)}`);
    return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
  } finally {
    server.kill('SIGKILL');
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('demo: needs root (network namespaces, TAP devices)\n');
    return 1;
  }
  step('creating 3 hosts: network namespaces joined by a bridge (underlay 198.18.0.0/16)');
  const tb = await createTestbed({ hosts: 3, prefix: 'demo' });
  let vteps: VtepProcess[] = [];
  let failed = 0;
  try {
    for (const h of tb.hosts) info(`${h.name}  underlay ${h.underlay}`);

    step('starting the userspace VXLAN dataplane on each host (VNI 100, overlay 198.19.0.0/24)');
    const cfg = meshConfig(tb.hosts, [100]);
    vteps = await Promise.all(tb.hosts.map((h, i) => startVtep(h, cfg[i])));
    for (const [i, v] of vteps.entries()) {
      const n = v.networks[0];
      info(`host ${i + 1}: TAP ${n.tap} ${n.mac} 198.19.0.${i + 1}/24 mtu ${n.mtu}, UDP ${tb.hosts[i].underlay}:${v.port}`);
    }

    step('all-pairs ping across the overlay');
    for (const a of tb.hosts) {
      for (const b of tb.hosts) {
        if (a === b) continue;
        const got = await ping(a, `198.19.0.${b.index}`, 3);
        if (got !== 3) failed++;
        info(`host ${a.index} -> 198.19.0.${b.index}: ${got}/3 replies ${got === 3 ? 'ok' : 'FAILED'}`);
      }
    }

    step('throughput host 1 -> host 2 over the overlay (iperf3 TCP, 3 s)');
    const bps = await iperf(tb, 3);
    info(`${(bps / 1e6).toFixed(0)} Mbit/s`);

    step('dataplane counters on host 1');
    const s = await vteps[0].stats();
    info(`frames in from TAP: ${s.dataplane.inside.frames}, datagrams out: ${s.dataplane.inside.sent}, ARP answered locally: ${s.dataplane.inside.arpSuppressed}`);
    info(`datagrams in: ${s.dataplane.outside.datagrams}, frames delivered: ${s.dataplane.outside.delivered}`);
    info(`recvmmsg calls: ${s.transport.rxSyscalls} for ${s.transport.rxPackets} datagrams; sendmmsg calls: ${s.transport.txSyscalls} for ${s.transport.txPackets}`);
    const drops = Object.entries(s.dataplane.drops).filter(([, n]) => n > 0);
    info(`drops: ${drops.length ? drops.map(([k, n]) => `${k}=${n}`).join(' ') : 'none'}`);
  } finally {
    step('cleaning up');
    await Promise.all(vteps.map((v) => v.stop()));
    await tb.destroy();
    info('namespaces, devices and processes removed');
  }
  if (failed) {
    process.stdout.write(`\ndemo: ${failed} ping pair(s) failed\n`);
    return 1;
  }
  process.stdout.write('\ndemo: ok\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
