/**
 * Measurements between two testbed hosts: iperf3 TCP/UDP and ping latency. Every run is bounded
 * in time (iperf3 -t, ping -c) and only targets addresses of the testbed's ranges.
 */
import type { TestHost } from '../../test/lib/testbed.js';
import { quantile, median } from './stats.js';

export interface TcpResult {
  gbps: number;
  retransmits: number;
}

export interface UdpResult {
  /** The server port of this run. */
  port: number;
  pps: number;
  lossPct: number;
  gbps: number;
}

export interface PingResult {
  medianMs: number;
  p99Ms: number;
  lossPct: number;
}

function parseJson(out: string): any {
  const i = out.indexOf('{');
  return JSON.parse(out.slice(i));
}

/**
 * Server ports for UDP runs, one per run in turn (udp() without `port`). iperf3 (3.12, Debian 12's,
 * and upstream since) takes the first datagram that reaches a UDP test's listener for the client's
 * hello without reading it, connects to its sender and answers there. A datagram of the previous
 * UDP run on the same port that arrives after the next run's control exchange is then taken for
 * the hello: the server answers the old, closed client port, gets ECONNREFUSED and drops the test,
 * while the new client waits 30 s for an answer (the bench's 2-worker path hung so in 2 of 5
 * rounds). Our multi-worker hosts keep each flow in order but not flows among themselves
 * (docs/multicore.md): the tail of a flood queued at one worker can arrive after the next run's
 * control connection, which the other worker carried. With a port per run, that tail reaches a
 * port nobody listens on. Four ports: a port comes back four UDP runs later.
 */
export const UDP_PORTS: readonly number[] = [5202, 5203, 5204, 5205];
let nextUdpPort = 0;

/**
 * Start iperf3 servers on `server`, on `port` (TCP runs) and on each of UDP_PORTS, and wait until
 * they listen; returns a stopper.
 */
export async function iperfServer(server: TestHost, port = 5201): Promise<() => void> {
  const ports = [port, ...UDP_PORTS.filter((p) => p !== port)];
  const children = ports.map((p) => server.spawn('iperf3', ['-s', '-p', String(p)]));
  const stop = () => children.forEach((c) => c.kill('SIGKILL'));
  const deadline = Date.now() + 5000;
  let waiting = ports;
  while (waiting.length && Date.now() < deadline) {
    const r = await server.run('ss', ['-ltnH']);
    waiting = waiting.filter((p) => !r.stdout.includes(`:${p} `));
    if (waiting.length) await new Promise((res) => setTimeout(res, 50));
  }
  return stop;
}

export async function tcp(client: TestHost, dst: string, o: { seconds: number; streams: number; port?: number }): Promise<TcpResult> {
  const out = await client.exec(
    'iperf3',
    ['-c', dst, '-p', String(o.port ?? 5201), '-t', String(o.seconds), '-P', String(o.streams), '-J', '--connect-timeout', '3000'],
    { timeoutMs: (o.seconds + 15) * 1000 },
  );
  const j = parseJson(out);
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent.retransmits ?? 0 };
}

/** One UDP run; without `port`, on the next of UDP_PORTS (never the previous run's port: see there). */
export async function udp(client: TestHost, dst: string, o: { seconds: number; size: number; port?: number }): Promise<UdpResult> {
  const port = o.port ?? UDP_PORTS[nextUdpPort++ % UDP_PORTS.length];
  // -b 0: as fast as the sender can go; the receiver's count and loss are what matter.
  const out = await client.exec(
    'iperf3',
    ['-c', dst, '-p', String(port), '-u', '-b', '0', '-l', String(o.size), '-t', String(o.seconds), '-J', '--connect-timeout', '3000'],
    { timeoutMs: (o.seconds + 15) * 1000 },
  );
  const j = parseJson(out);
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const s = j.end.sum_received ?? j.end.sum;
  const sent = j.end.sum_sent ?? j.end.sum;
  // The receiver's `packets` is the highest sequence number it saw and `lost_packets` the gaps
  // below it, so delivered = packets − lost_packets, and loss is against what was sent: a stream
  // whose tail never arrives (every packet after some point dropped) showed, by iperf3's own
  // lost_percent, as 0 % loss, and sent − lost as the sender's full rate.
  const sentPackets = sent.packets ?? 0;
  const received = (j.end.sum_received ? (s.packets ?? 0) : sentPackets) - (s.lost_packets ?? 0);
  const secs = s.seconds || o.seconds;
  const lossPct = sentPackets > 0 ? Math.max(0, (100 * (sentPackets - received)) / sentPackets) : (s.lost_percent ?? 0);
  return { port, pps: received / secs, lossPct, gbps: (s.bits_per_second ?? 0) / 1e9 };
}

export async function ping(client: TestHost, dst: string, count = 200): Promise<PingResult> {
  const r = await client.run('ping', ['-n', '-c', String(count), '-i', '0.005', '-W', '1', dst], { timeoutMs: count * 50 + 5000 });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { medianMs: median(times), p99Ms: quantile(times, 0.99), lossPct: ((count - times.length) / count) * 100 };
}

/** Wait until `dst` answers a ping from `client` (bounded). */
export async function waitReachable(client: TestHost, dst: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await client.run('ping', ['-n', '-c', '1', '-W', '1', dst]);
    if (r.code === 0) return;
  }
  throw new Error(`${dst} not reachable from ${client.name} within ${timeoutMs} ms`);
}
