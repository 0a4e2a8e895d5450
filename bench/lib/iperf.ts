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

/** Start an iperf3 server on `server` and wait until it listens; returns a stopper. */
export async function iperfServer(server: TestHost, port = 5201): Promise<() => void> {
  const child = server.spawn('iperf3', ['-s', '-p', String(port)]);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const r = await server.run('ss', ['-ltn', `sport = :${port}`]);
    if (r.stdout.includes(`:${port}`)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return () => child.kill('SIGKILL');
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

export async function udp(client: TestHost, dst: string, o: { seconds: number; size: number; port?: number }): Promise<UdpResult> {
  // -b 0: as fast as the sender can go; the receiver's count and loss are what matter.
  const out = await client.exec(
    'iperf3',
    ['-c', dst, '-p', String(o.port ?? 5201), '-u', '-b', '0', '-l', String(o.size), '-t', String(o.seconds), '-J', '--connect-timeout', '3000'],
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
  return { pps: received / secs, lossPct, gbps: (s.bits_per_second ?? 0) / 1e9 };
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
