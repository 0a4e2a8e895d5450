/**
 * A backend of the VIP topology, run inside a test namespace:
 *   vip-server.ts NAME ADDRESS PORT
 * Prints `LISTEN` once bound. Each connection is greeted with `NAME\n`; every line received is
 * answered with `NAME <line>\n` (so a client sees which backend holds a connection, then and
 * later); the server ends its side when the client ends its own.
 */
import { createServer } from 'node:net';

const [name, address, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (!name || !address || !(port > 0)) {
  process.stderr.write('usage: vip-server.ts NAME ADDRESS PORT\n');
  process.exit(2);
}
const server = createServer((s) => {
  s.on('error', () => {});
  s.setNoDelay(true);
  s.write(`${name}\n`);
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    buf += d;
    if (buf.length > 65536) return void s.destroy();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      s.write(`${name} ${buf.slice(0, i)}\n`);
      buf = buf.slice(i + 1);
    }
  });
  s.on('end', () => s.end());
});
server.listen({ port, host: address, backlog: 4096 }, () => process.stdout.write('LISTEN\n'));
process.on('SIGTERM', () => process.exit(0));
