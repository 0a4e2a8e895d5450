/**
 * TCP transfer with an end-to-end checksum, run inside a namespace:
 *   tcp-check.ts sink ADDRESS PORT            prints `LISTENING`, then `DONE <bytes> <sha256>` per connection (exits after one)
 *   tcp-check.ts source ADDRESS PORT BYTES SEED [MARKER]   sends BYTES of deterministic data, prints `SENT <bytes> <sha256>`
 * The data is a xorshift stream seeded by SEED (with MARKER written every 4096 bytes, for
 * captures to look for); the sink hashes what arrives, the source what it sent.
 */
import { createHash } from 'node:crypto';
import { connect, createServer } from 'node:net';

const [mode, address, portArg, bytesArg, seed = 'overlay', marker = ''] = process.argv.slice(2);
const port = Number(portArg);

if (mode === 'sink') {
  const server = createServer((sock) => {
    const h = createHash('sha256');
    let n = 0;
    sock.on('data', (d) => {
      h.update(d);
      n += d.length;
    });
    sock.on('end', () => {
      process.stdout.write(`DONE ${n} ${h.digest('hex')}\n`, () => process.exit(0));
    });
    sock.on('error', (e) => {
      process.stderr.write(`sink: ${e.message}\n`);
      process.exit(1);
    });
  });
  server.listen(port, address, () => process.stdout.write('LISTENING\n'));
} else if (mode === 'source') {
  const total = Number(bytesArg);
  const chunk = 64 * 1024;
  const block = Buffer.alloc(chunk);
  const h = createHash('sha256');
  let sent = 0;
  const words = new Uint32Array(block.buffer, block.byteOffset, chunk / 4);
  let x = createHash('sha256').update(seed).digest().readUInt32LE(0) | 1;
  const fill = () => {
    // xorshift32: varied bytes (no runs a link could compress or hide), cheap to make.
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    if (marker) for (let i = 0; i + marker.length <= chunk; i += 4096) block.write(marker, i);
  };
  const sock = connect({ host: address, port }, () => {
    const pump = () => {
      while (sent < total) {
        fill();
        const n = Math.min(chunk, total - sent);
        const piece = Buffer.from(block.subarray(0, n));
        h.update(piece);
        sent += n;
        if (!sock.write(piece)) return void sock.once('drain', pump);
      }
      sock.end(() => process.stdout.write(`SENT ${sent} ${h.digest('hex')}\n`, () => process.exit(0)));
    };
    pump();
  });
  sock.on('error', (e) => {
    process.stderr.write(`source: ${e.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: tcp-check.ts sink|source ADDRESS PORT [BYTES SEED [MARKER]]\n');
  process.exit(2);
}
