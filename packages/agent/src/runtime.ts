/**
 * Real I/O for the agent: UDP gossip (node:dgram) and TCP push-pull (node:net) on one port, and
 * the local control socket (unix) that `agent status` talks to. Gossip is control-plane traffic
 * (a few packets per second), so plain dgram sockets are used, not the batched data-plane path.
 *
 * TCP framing: [u32 big-endian length][sealed chunk] ... then a zero length ends one side. Caps:
 * chunk ≤ MAX_CHUNK_BYTES + seal overhead, ≤ MAX_CHUNKS chunks, whole exchange ≤ timeout.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import type { Addr, ExchangeDone, PacketNet, StreamNet } from './env.js';
import { MAX_CHUNKS, MAX_CHUNK_BYTES } from './wire.js';

export interface Handler {
  handlePacket(from: Addr, bytes: Uint8Array): void;
  handleExchange(from: Addr, chunks: Uint8Array[]): Uint8Array[];
}

const FRAME_CAP = MAX_CHUNK_BYTES + 64;
const MAX_CONCURRENT_STREAMS = 64;

/**
 * Bytes that all push-pull streams of one agent may hold at once, before they are decrypted.
 * Frames are authenticated only once a stream is complete, so without this bound anyone who can
 * reach the TCP port (no cluster key needed) could make the agent buffer up to
 * MAX_CONCURRENT_STREAMS × MAX_CHUNKS × FRAME_CAP bytes. 64 MiB holds a full exchange of tens of
 * thousands of endpoints; a stream that would pass it is refused (and the peer retries later).
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 << 20;

/** Shared accounting of bytes buffered by unfinished streams. */
interface StreamBudget {
  used: number;
  readonly max: number;
  /** Streams refused because the budget was exhausted. */
  refused: number;
}

/** Reads length-prefixed frames until a zero-length frame; calls back once. */
function readFrames(sock: net.Socket, budget: StreamBudget, done: (err: Error | null, chunks: Uint8Array[] | null) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let finished = false;
  let held = 0;
  const finish = (err: Error | null, c: Uint8Array[] | null) => {
    if (finished) return;
    finished = true;
    budget.used -= held;
    held = 0;
    sock.removeListener('data', onData);
    done(err, c);
  };
  const onData = (d: Buffer) => {
    if (budget.used + d.length > budget.max) {
      budget.refused++;
      return finish(new Error('push-pull buffer budget exhausted'), null);
    }
    budget.used += d.length;
    held += d.length;
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (n === 0) return finish(null, chunks);
      if (n > FRAME_CAP) return finish(new Error('frame over cap'), null);
      if (buf.length < 4 + n) break;
      chunks.push(Buffer.from(buf.subarray(4, 4 + n)));
      buf = buf.subarray(4 + n);
      if (chunks.length > MAX_CHUNKS) return finish(new Error('too many chunks'), null);
    }
  };
  sock.on('data', onData);
  sock.on('error', (e) => finish(e, null));
  sock.on('close', () => finish(new Error('closed'), null));
}

function writeFrames(sock: net.Socket, chunks: Uint8Array[]): void {
  for (const c of chunks) {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(c.length);
    sock.write(h);
    sock.write(c);
  }
  sock.write(Buffer.alloc(4));
}

export interface RealIo extends PacketNet, StreamNet {
  /** Start delivering to `h`. */
  bind(h: Handler): Promise<void>;
  close(): Promise<void>;
  /** Push-pull streams refused because unfinished streams held `maxBufferedBytes`. */
  readonly streamsRefused: number;
}

export interface RealIoOptions {
  /** Bound on bytes held by unfinished push-pull streams, in and out. Default 64 MiB. */
  maxBufferedBytes?: number;
}

export function createRealIo(listen: Addr, options: RealIoOptions = {}): RealIo {
  const budget: StreamBudget = { used: 0, max: options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES, refused: 0 };
  const udp = dgram.createSocket({ type: listen.ip.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
  let server: net.Server | null = null;
  let active = 0;
  return {
    get streamsRefused() {
      return budget.refused;
    },
    send(to, bytes) {
      udp.send(bytes, to.port, to.ip, () => {});
    },
    exchange(to: Addr, chunks: Uint8Array[], timeoutMs: number, done: ExchangeDone) {
      const sock = net.connect({ host: to.ip, port: to.port });
      let called = false;
      const cb: ExchangeDone = (e, r) => {
        if (called) return;
        called = true;
        clearTimeout(t);
        sock.destroy();
        done(e, r);
      };
      const t = setTimeout(() => cb(new Error('timeout'), null), timeoutMs);
      sock.on('error', (e) => cb(e, null));
      sock.on('connect', () => {
        writeFrames(sock, chunks);
        readFrames(sock, budget, cb);
      });
    },
    async bind(h) {
      udp.on('message', (msg, rinfo) => h.handlePacket({ ip: rinfo.address, port: rinfo.port }, msg));
      udp.on('error', () => {});
      await new Promise<void>((res, rej) => {
        udp.once('error', rej);
        udp.bind(listen.port, listen.ip, () => res());
      });
      server = net.createServer((sock) => {
        // Bound concurrent push-pulls: state exchanges are rare (one per member per ~30 s).
        if (++active > MAX_CONCURRENT_STREAMS) {
          active--;
          sock.destroy();
          return;
        }
        sock.once('close', () => active--);
        const from = { ip: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 };
        const t = setTimeout(() => sock.destroy(), 10_000);
        readFrames(sock, budget, (err, chunks) => {
          if (err || !chunks) return sock.destroy();
          writeFrames(sock, h.handleExchange(from, chunks));
          clearTimeout(t);
          sock.end();
        });
      });
      await new Promise<void>((res, rej) => {
        server!.once('error', rej);
        server!.listen(listen.port, listen.ip, () => res());
      });
    },
    async close() {
      udp.close();
      await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
    },
  };
}

/** Serve `status()` JSON on a unix socket (mode 0600): a client writes "status\n" and reads to EOF. */
export async function serveControl(path: string, status: () => unknown): Promise<net.Server> {
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
  const srv = net.createServer((sock) => {
    sock.once('data', (d) => {
      if (d.toString().trim() === 'status') sock.end(JSON.stringify(status()) + '\n');
      else sock.end('{"error":"unknown command"}\n');
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((res, rej) => {
    srv.once('error', rej);
    srv.listen(path, () => res());
  });
  // Owner only, whatever the umask: status names every member and endpoint of the cluster.
  chmodSync(path, 0o600);
  return srv;
}

export function queryControl(path: string, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let out = '';
    const t = setTimeout(() => (sock.destroy(), reject(new Error('timeout'))), timeoutMs);
    sock.on('connect', () => sock.write('status\n'));
    sock.on('data', (d) => (out += d));
    sock.on('end', () => {
      clearTimeout(t);
      try {
        resolve(JSON.parse(out));
      } catch (e) {
        reject(e);
      }
    });
    sock.on('error', (e) => (clearTimeout(t), reject(e)));
  });
}
