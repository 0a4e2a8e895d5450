/**
 * Our resolver as a process for bench/dns.ts: the socket server (DnsServer) on ADDRESS:PORT
 * answering N services svc0..svc<N-1> (one instance each, 198.19.x.y), forwarding off (other
 * single-label names are NXDOMAIN, as dnsmasq's --domain-needed and unbound's static zone answer).
 * UDP on @overlay/native's UdpTransport (recvmmsg/sendmmsg), as the agent runs it; `dgram` as
 * the fourth argument: node:dgram instead.
 *
 *   node --conditions=source --import tsx bench/dns-server.ts ADDRESS PORT N [native|dgram]
 *
 * Prints `READY` when bound; SIGTERM closes it. With --cpu-prof, SIGTERM writes the profile.
 */
import { UdpTransport } from '@overlay/native';
import { DnsServer, ServiceDirectory } from '@overlay/services';

const [address = '127.0.0.71', port = '53', n = '10000', udp = 'native'] = process.argv.slice(2);
const directory = new ServiceDirectory();
for (let i = 0; i < Number(n); i++) {
  directory.setService({ name: `svc${i}`, network: 'bench' });
  directory.updateInstance('bench', `svc${i}`, { id: 'i0', addresses: [nameAddress(i)], healthy: true });
}
directory.lookupText('bench', 'svc0'); // index every name now, not on the first query
const server = await DnsServer.listen({
  directory,
  networks: ['bench'],
  address,
  port: Number(port),
  forward: false,
  // Kernel-default socket buffers, as dnsmasq and unbound have.
  udpTransport: udp === 'dgram' ? undefined : (a, p) => UdpTransport.bind({ address: a, port: p, batchSize: 64 }),
});
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
process.stdout.write(`READY ${server.udpBatched ? 'native' : 'dgram'}\n`);

/** The address bench/dns.ts gives every server for svc<i>. */
export function nameAddress(i: number): string {
  return `198.19.${(i >> 8) & 255}.${i & 255}`;
}
