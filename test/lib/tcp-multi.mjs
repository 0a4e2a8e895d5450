/**
 * Several TCP connections at once, each hashed end to end, run inside a namespace:
 *   tcp-multi.mjs sink ADDRESS PORT N              prints `LISTENING`, then `DONE <bytes> <sha256>` per connection, exits after N
 *   tcp-multi.mjs source ADDRESS PORT N BYTES      opens N connections at once, each sends BYTES of random data,
 *                                                 prints `SENT <bytes> <sha256>` per connection, exits when all are sent
 * Many flows in parallel is what spreads traffic over a multi-worker host (one flow stays on one
 * worker); the hashes show every byte of every flow arrived in order. Bounded: each side exits
 * after N connections, and the caller kills both on its timeout. Plain JavaScript, so a test
 * starts it without the TypeScript loader (seconds saved per process on a loaded machine).
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';

const [mode, address, portArg, countArg, bytesArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
/** @param {string} what */
const fail = (what) => (/** @type {Error} */ e) => {
  process.stderr.write(`${what}: ${e.message}\n`);
  process.exit(1);
};

if (mode === 'sink') {
  let done = 0;
  const server = createServer((sock) => {
    const h = createHash('sha256');
    sock.on('data', (d) => h.update(d)).on('error', fail('sink'));
    sock.on('end', () => {
      process.stdout.write(`DONE ${sock.bytesRead} ${h.digest('hex')}\n`);
      if (++done === count) process.stdout.write('', () => process.exit(0));
    });
  });
  server.listen(port, address, () => process.stdout.write('LISTENING\n'));
} else if (mode === 'source') {
  const total = Number(bytesArg);
  let finished = 0;
  for (let c = 0; c < count; c++) {
    // 256 KiB of random data per connection, sent over and over: every flow's bytes differ.
    const block = randomBytes(256 * 1024);
    const h = createHash('sha256');
    let sent = 0;
    const sock = connect({ host: address, port }, () => {
      const pump = () => {
        while (sent < total) {
          const piece = block.subarray(0, Math.min(block.length, total - sent));
          h.update(piece);
          sent += piece.length;
          if (!sock.write(piece)) return void sock.once('drain', pump);
        }
        sock.end(() => {
          process.stdout.write(`SENT ${sent} ${h.digest('hex')}\n`);
          if (++finished === count) process.stdout.write('', () => process.exit(0));
        });
      };
      pump();
    });
    sock.on('error', fail('source'));
  }
} else {
  process.stderr.write('usage: tcp-multi.mjs sink ADDRESS PORT N | source ADDRESS PORT N BYTES\n');
  process.exit(2);
}
