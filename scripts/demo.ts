/**
 * The README's demo: three network-namespace hosts on one bridge, one overlay agent on each. The
 * agents join through one seed, learn each other's endpoints by gossip, program their VXLAN
 * dataplanes and WireGuard-protocol tunnels, and the demo shows all-pairs ping across the
 * encrypted overlay, a short iperf3 figure, and `agent status`; then a service `web` with an
 * instance on each host, asked with dig at the network's resolver address on every host, one
 * instance made unhealthy and the time until it is gone from every answer. Everything is removed
 * at the end.
 *
 *   bash scripts/demo.sh            # agents, gossip, encryption on (the default)
 *   bash scripts/demo.sh --static   # no agents: static dataplane configuration, unencrypted
 *
 * Both run the same host assembly, openHost (@overlay/host): inside each agent, or (--static)
 * behind the stdio runner test/lib/vtep-host.ts with a static configuration.
 *
 * Needs root. Run through `bash scripts/demo.sh` (which installs and builds first).
 */
import { metricSum, scrapeMetrics } from '../test/lib/metrics-scrape.js';
import { RESOLVER, ServiceCluster, dig, untilAnswers } from '../test/lib/service-cluster.js';
import { createTestbed, type Testbed } from '../test/lib/testbed.js';
import { ping } from '../test/lib/transfer.js';
import { meshConfig, startVtep, type VtepProcess } from '../test/lib/vtep.js';

const step = (msg: string) => process.stdout.write(`\n==> ${msg}\n`);
const info = (msg: string) => process.stdout.write(`    ${msg}\n`);
const overlayIp = (hostIndex: number) => `198.19.0.${hostIndex}`;
const METRICS_PORT = 9464;

async function iperf(tb: Testbed, seconds: number): Promise<number> {
  const [a, b] = tb.hosts;
  const server = b.spawn('iperf3', ['-s', '-1', '-B', overlayIp(2)]);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const r = await a.run('iperf3', ['-c', overlayIp(2), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 });
    if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stderr || r.stdout.slice(0, 500)}`);
    return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
  } finally {
    server.kill('SIGKILL');
  }
}

/** All-pairs ping; a pair gets a few rounds, since the first packets may wait for a handshake. */
async function allPairs(tb: Testbed): Promise<number> {
  let failed = 0;
  for (const a of tb.hosts) {
    for (const b of tb.hosts) {
      if (a === b) continue;
      let got = 0;
      for (let round = 0; round < 4 && got < 3; round++) got = await ping(a, overlayIp(b.index), 3);
      if (got !== 3) failed++;
      info(`host ${a.index} -> ${overlayIp(b.index)}: ${got}/3 replies ${got === 3 ? 'ok' : 'FAILED'}`);
    }
  }
  return failed;
}

async function withAgents(tb: Testbed): Promise<number> {
  // Every host also runs an instance of the service `web` (health: an exec check on a flag file).
  const cluster = new ServiceCluster(tb.hosts, { encrypt: true, profile: 'lan', web: tb.hosts.map((_, i) => i), metricsPort: METRICS_PORT });
  try {
    step('starting one agent per host (gossip on UDP/TCP 7946, seed = host 1, WireGuard on; dataplane: openHost)');
    for (let i = 0; i < tb.hosts.length; i++) {
      await cluster.start(i);
      info(`host ${i + 1}: agent up, endpoint ${cluster.ip(i)} on TAP ov0 (VNI 100)`);
    }

    step('waiting for membership and endpoint tables to converge by gossip');
    const ms = await cluster.until(
      (s) => s.every((x) => x !== null && x.members.filter((m) => m.state === 'alive').length === tb.hosts.length && (x.networks.blue ?? []).filter((e) => !e.deleted).length === tb.hosts.length),
      30_000,
    );
    info(`converged in ${ms} ms: every agent sees ${tb.hosts.length} alive members and ${tb.hosts.length} endpoints`);

    step('all-pairs ping across the encrypted overlay');
    const failed = await allPairs(tb);

    step('throughput host 1 -> host 2 over the encrypted overlay (iperf3 TCP, 3 s)');
    info(`${((await iperf(tb, 3)) / 1e6).toFixed(0)} Mbit/s`);

    step('agent status on host 1');
    const st = (await cluster.statuses())[0]!;
    for (const m of st.members) info(`member ${m.name.padEnd(24)} ${m.state.padEnd(7)} vtep ${m.vtep}`);
    for (const e of st.networks.blue ?? []) info(`endpoint ${e.id.padEnd(8)} ${e.mac} ${e.ipv4 ?? ''} owner ${e.owner} v${e.version}${e.deleted ? ' (deleted)' : ''}`);
    for (const p of st.peers ?? []) info(`peer ${p.publicKey.slice(0, 10)}… ${p.endpoint ?? '-'} ${p.up ? 'up' : 'down'} handshake ${p.handshakeAgeMs === null ? 'never' : `${Math.round(p.handshakeAgeMs / 1000)} s ago`}`);
    const drops = Object.entries(st.drops).filter(([, n]) => n > 0);
    info(`gossip drops: ${drops.length ? drops.map(([k, n]) => `${k}=${n}`).join(' ') : 'none'}`);

    step(`metrics: curl http://127.0.0.1:${METRICS_PORT}/metrics on host 1 (Prometheus text format, parsed)`);
    const fams = await scrapeMetrics(tb.hosts[0], METRICS_PORT);
    info(`metrics: ${fams.length} families parsed`);
    const shown: [string, Record<string, string>][] = [
      ['overlay_dataplane_inside_total', { counter: 'frames' }],
      ['overlay_crypto_tunnel_total', { direction: 'tx', counter: 'packets' }],
      ['overlay_agent_gossip_total', { counter: 'packets_sent' }],
      ['overlay_dataplane_drops_total', {}],
    ];
    for (const [name, labels] of shown) info(`${name}${Object.keys(labels).length ? JSON.stringify(labels) : ''} ${metricSum(fams, name, labels)}`);

    step(`service web: an instance on each host; dig @${RESOLVER} web on every host (answered inside its dataplane)`);
    const all = tb.hosts.map((_, i) => cluster.ip(i)).sort();
    await untilAnswers(tb.hosts, 'web', (a) => a.addrs.join() === all.join(), Date.now(), 30_000);
    for (const h of tb.hosts) info(`host ${h.index}: web -> ${(await dig(h, 'web')).addrs.join(' ')}`);

    step('making the instance on host 2 unhealthy (its check fails; the agent there signs the new state into its record)');
    const t0 = Date.now();
    cluster.setHealthy(1, false);
    const gone = await untilAnswers(tb.hosts, 'web', (a) => a.addrs.length === all.length - 1 && !a.addrs.includes(cluster.ip(1)), t0, 30_000);
    info(`gone from every host's answers after ${gone} ms`);
    for (const h of tb.hosts) info(`host ${h.index}: web -> ${(await dig(h, 'web')).addrs.join(' ')}`);
    cluster.setHealthy(1, true);
    return failed;
  } finally {
    await cluster.stopAll();
  }
}

async function withStaticConfig(tb: Testbed): Promise<number> {
  let vteps: VtepProcess[] = [];
  try {
    step('starting openHost (@overlay/host) on each host: UDP socket, TAP, dataplane (static configuration, VNI 100)');
    const cfg = meshConfig(tb.hosts, [100]);
    vteps = await Promise.all(tb.hosts.map((h, i) => startVtep(h, cfg[i])));
    for (const [i, v] of vteps.entries()) {
      const n = v.networks[0];
      info(`host ${i + 1}: TAP ${n.tap} ${n.mac} ${overlayIp(i + 1)}/24 mtu ${n.mtu}, UDP ${tb.hosts[i].underlay}:${v.port}`);
    }
    step('all-pairs ping across the overlay');
    const failed = await allPairs(tb);
    step('throughput host 1 -> host 2 over the overlay (iperf3 TCP, 3 s)');
    info(`${((await iperf(tb, 3)) / 1e6).toFixed(0)} Mbit/s`);
    step('dataplane counters on host 1');
    const s = await vteps[0].stats();
    info(`frames in from TAP: ${s.dataplane.inside.frames}, datagrams out: ${s.dataplane.inside.sent}, ARP answered locally: ${s.dataplane.inside.arpSuppressed}`);
    info(`datagrams in: ${s.dataplane.outside.datagrams}, frames delivered: ${s.dataplane.outside.delivered}`);
    info(`recvmmsg calls: ${s.transport.rxSyscalls} for ${s.transport.rxPackets} datagrams; sendmmsg calls: ${s.transport.txSyscalls} for ${s.transport.txPackets}`);
    const drops = Object.entries(s.dataplane.drops).filter(([, n]) => n > 0);
    info(`drops: ${drops.length ? drops.map(([k, n]) => `${k}=${n}`).join(' ') : 'none'}`);
    return failed;
  } finally {
    await Promise.all(vteps.map((v) => v.stop()));
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('demo: needs root (network namespaces, TAP devices)\n');
    return 1;
  }
  const useStatic = process.argv.includes('--static');
  step('creating 3 hosts: network namespaces joined by a bridge (underlay 198.18.0.0/16)');
  const tb = await createTestbed({ hosts: 3, prefix: 'demo' });
  let failed = 0;
  try {
    for (const h of tb.hosts) info(`${h.name}  underlay ${h.underlay}`);
    failed = useStatic ? await withStaticConfig(tb) : await withAgents(tb);
  } finally {
    step('cleaning up');
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
