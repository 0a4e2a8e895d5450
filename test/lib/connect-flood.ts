/**
 * An unpaced TCP connect flood from one source, run inside a test namespace:
 *   connect-flood.ts ADDRESS PORT MAX_CONNECTS MAX_MS [IN_FLIGHT]
 * Keeps up to IN_FLIGHT (default 256) connections open to ADDRESS:PORT, opening a new one the
 * moment one closes, with no pause. Each connection sends a frame header announcing 60 000 bytes
 * and 30 000 bytes of garbage (an unfinished push-pull frame the server must decide to hold or
 * drop), then waits. Bounded: stops after MAX_CONNECTS connects or MAX_MS, whichever comes first,
 * or SIGTERM, closes everything and prints `FLOOD <connects> <closed by server> <ms>`.
 */
import { connect, type Socket } from 'node:net';

const [address, portArg, maxArg, msArg, inFlightArg = '256'] = process.argv.slice(2);
const port = Number(portArg);
const maxConnects = Number(maxArg);
const maxMs = Number(msArg);
const inFlight = Number(inFlightArg);
if (!address || !(port > 0) || !(maxConnects > 0) || !(maxMs > 0) || !(inFlight > 0)) {
  process.stderr.write('usage: connect-flood.ts ADDRESS PORT MAX_CONNECTS MAX_MS [IN_FLIGHT]\n');
  process.exit(2);
}

const payload = Buffer.alloc(4 + 30_000, 0x5a);
payload.writeUInt32BE(60_000, 0);
const t0 = Date.now();
const open = new Set<Socket>();
let connects = 0;
let closedByServer = 0;
let stopping = false;

function one(): void {
  if (stopping || connects >= maxConnects || Date.now() - t0 >= maxMs) return;
  connects++;
  const s = connect({ host: address, port });
  open.add(s);
  s.on('connect', () => s.write(payload));
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', () => {
    open.delete(s);
    if (stopping) return;
    closedByServer++;
    // Unpaced: replace it at once (on the next turn, so a refusing server cannot recurse us).
    setImmediate(one);
  });
}

for (let i = 0; i < inFlight; i++) one();
const stop = () => {
  if (stopping) return;
  stopping = true;
  for (const s of open) s.destroy();
  process.stdout.write(`FLOOD ${connects} ${closedByServer} ${Date.now() - t0}\n`, () => process.exit(0));
};
setTimeout(stop, maxMs);
process.once('SIGTERM', stop);
// Also stop once the connect budget is spent and nothing is left open.
const poll = setInterval(() => {
  if (connects >= maxConnects && open.size === 0) (clearInterval(poll), stop());
}, 100);
