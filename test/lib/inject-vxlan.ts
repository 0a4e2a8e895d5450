/**
 * Sends crafted UDP datagrams with a raw IPv4 socket (the raw-socket package), bypassing any
 * well-behaved encoder, to test how a VTEP handles malformed VXLAN. Runs inside a namespace:
 *   inject-vxlan.ts DST_ADDRESS DST_PORT HEX_PAYLOAD...
 * Each payload becomes one datagram from source port 40000. Prints `SENT <n>` when done.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const raw = require('raw-socket') as {
  createSocket(o: { protocol: number }): {
    send(b: Buffer, off: number, len: number, addr: string, before: null, after: (err: Error | null) => void): void;
    close(): void;
  };
  Protocol: { UDP: number };
};

const [dst, portArg, ...payloads] = process.argv.slice(2);
const sock = raw.createSocket({ protocol: raw.Protocol.UDP });
let done = 0;
for (const hex of payloads) {
  const body = Buffer.from(hex, 'hex');
  const dgram = Buffer.alloc(8 + body.length);
  dgram.writeUInt16BE(40000, 0);
  dgram.writeUInt16BE(Number(portArg), 2);
  dgram.writeUInt16BE(dgram.length, 4);
  // Checksum 0: "no checksum" is valid for UDP over IPv4.
  body.copy(dgram, 8);
  sock.send(dgram, 0, dgram.length, dst, null, (err) => {
    if (err) {
      process.stderr.write(`inject: ${err.message}\n`);
      process.exit(1);
    }
    if (++done === payloads.length) {
      sock.close();
      process.stdout.write(`SENT ${done}\n`);
    }
  });
}
