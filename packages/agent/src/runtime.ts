/**
 * Real I/O for the agent: UDP gossip (node:dgram) and TCP push-pull (node:net) on one port, and
 * the local control socket (unix) that `agent status` talks to. Gossip is control-plane traffic
 * (a few packets per second), so plain dgram sockets are used, not the batched data-plane path.
 *
 * TCP framing: [u32 big-endian length][sealed chunk] ... then a zero length ends one side. Caps:
 * chunk ≤ MAX_CHUNK_BYTES + seal overhead, ≤ MAX_CHUNKS chunks, whole exchange ≤ timeout.
 *
 * The TCP port is reachable by anyone on the underlay, cluster key or not, so inbound streams are
 * admitted in two stages:
 *
 * 1. Unauthenticated: at most `maxStreamsPerSource` streams per source (an IPv4 address, or an
 *    IPv6 /64), at most `maxUnauthenticated` in all, and the first frame must be complete within
 *    `firstFrameMs`. Only that one frame is buffered: once complete it is AEAD-opened with the
 *    cluster keyring (`Handler.authenticateFrame`), and a stream whose first frame does not open
 *    is cut. When the unauthenticated slots (or all `maxStreams`) are taken, a new stream evicts
 *    the oldest unauthenticated one instead of being refused: a legitimate peer sends its first
 *    frame right after connecting and stays unauthenticated for about one round trip, so a flood
 *    of idle connects cannot keep a join out (and a flood from one source cannot fill the slots).
 * 2. Authenticated: the rest of the exchange is buffered within the shared `maxBufferedBytes`,
 *    the whole exchange within `exchangeMs`.
 *
 * Every refusal and cut is counted (`drops`, a CounterSet over STREAM_DROP_REASONS, channel
 * `overlay.agent.stream`).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import { CounterSet, OverlayError } from '@overlay/dataplane';
import type { Addr, ExchangeDone, PacketNet, StreamNet } from './env.js';
import { MAX_CHUNKS, MAX_CHUNK_BYTES } from './wire.js';

export interface Handler {
  handlePacket(from: Addr, bytes: Uint8Array): void;
  handleExchange(from: Addr, chunks: Uint8Array[]): Uint8Array[];
  /**
   * Whether the first frame of an inbound stream opens with the cluster keyring. Without it
   * (and without `RealIoOptions.authenticate`) only the size, count and time bounds apply.
   */
  authenticateFrame?(frame: Uint8Array): boolean;
}

const FRAME_CAP = MAX_CHUNK_BYTES + 64;
/** close() waits at most this long for datagrams handed to the socket but not yet sent. */
const CLOSE_FLUSH_MS = 1000;

/** Why an inbound stream was refused or cut, or a push-pull stream failed (PushPullStreamError.reason). Append-only. */
export const STREAM_DROP_REASONS = [
  /** Refused: its source already has `maxStreamsPerSource` streams open. */
  'source_limit',
  /** Refused: `maxStreams` open and none of them unauthenticated to evict. */
  'global_limit',
  /** Cut: the oldest unauthenticated stream, to admit a new one. */
  'unauthenticated_evicted',
  /** Cut: no complete first frame within `firstFrameMs`. */
  'first_frame_timeout',
  /** Cut: the first frame did not open with the cluster keyring. */
  'first_frame_unauthenticated',
  /** A frame announced more than one sealed chunk can be. */
  'frame_over_cap',
  /** More than MAX_CHUNKS frames. */
  'too_many_chunks',
  /** Unfinished streams already hold `maxBufferedBytes`. */
  'buffer_budget',
  /** The whole exchange took longer than its deadline. */
  'exchange_timeout',
  /** The peer closed or reset the stream before its end frame (an error reason; not counted as a drop). */
  'closed_early',
] as const;
export type StreamDropReason = (typeof STREAM_DROP_REASONS)[number];

/** A push-pull stream failed; `reason` is one of STREAM_DROP_REASONS. */
export class PushPullStreamError extends OverlayError {
  constructor(
    readonly reason: StreamDropReason,
    options?: { cause?: unknown },
  ) {
    super('OVL_ERR_AGENT_PUSHPULL_STREAM', `push-pull stream: ${reason.replaceAll('_', ' ')}`, options);
  }
}

/**
 * Bytes that all push-pull streams of one agent may hold at once, before they are decrypted.
 * 64 MiB holds a full exchange of tens of thousands of endpoints; a stream that would pass it is
 * refused (and the peer retries later).
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 << 20;

/** Defaults of the inbound stream limits (see the file comment). */
export const STREAM_LIMITS = Object.freeze({
  /** A state exchange is rare (one per member per ~30 s), so 64 at once is ample. */
  maxStreams: 64,
  /** One peer has at most a push-pull, a reconnect and a stream ping to us at once. */
  maxStreamsPerSource: 8,
  /** Streams that have not shown a cluster key yet: 16 × one frame ≈ 1 MiB at most. */
  maxUnauthenticated: 16,
  /** A peer writes its first frame right after connecting; 3 s covers a slow WAN round trip. */
  firstFrameMs: 3000,
  exchangeMs: 10_000,
  maxBufferedBytes: DEFAULT_MAX_BUFFERED_BYTES,
});

/** Shared accounting of bytes buffered by unfinished streams. */
interface StreamBudget {
  used: number;
  readonly max: number;
}

/**
 * Reads length-prefixed frames until a zero-length frame; calls back once. With `first`, the
 * first frame is checked as soon as it is complete, before any further frame is kept.
 */
function readFrames(
  sock: net.Socket,
  budget: StreamBudget,
  done: (err: PushPullStreamError | null, chunks: Uint8Array[] | null) => void,
  first?: (frame: Uint8Array) => StreamDropReason | null,
): void {
  let buf: Buffer = Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let finished = false;
  let held = 0;
  const finish = (reason: StreamDropReason | null, c: Uint8Array[] | null, cause?: unknown) => {
    if (finished) return;
    finished = true;
    budget.used -= held;
    held = 0;
    buf = Buffer.alloc(0);
    sock.removeListener('data', onData);
    done(reason ? new PushPullStreamError(reason, { cause }) : null, c);
  };
  const onData = (d: Buffer) => {
    if (finished) return;
    if (budget.used + d.length > budget.max) return finish('buffer_budget', null);
    budget.used += d.length;
    held += d.length;
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (n === 0) return finish(null, chunks);
      if (n > FRAME_CAP) return finish('frame_over_cap', null);
      if (buf.length < 4 + n) break;
      const frame = Buffer.from(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
      if (chunks.length === 0 && first) {
        const why = first(frame);
        if (why) return finish(why, null);
      }
      chunks.push(frame);
      if (chunks.length > MAX_CHUNKS) return finish('too_many_chunks', null);
    }
  };
  sock.on('data', onData);
  sock.on('error', (e) => finish('closed_early', null, e));
  sock.on('close', () => finish('closed_early', null));
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

/** Per-source key: the IPv4 address (also when IPv4-mapped), or the /64 of an IPv6 address. */
export function sourceKey(ip: string): string {
  if (ip.startsWith('::ffff:') && ip.includes('.')) return ip.slice(7);
  if (!ip.includes(':')) return ip;
  // Expand enough to take the first four groups; '::' inside them means zero groups.
  const [head, tail = ''] = ip.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':') + '::/64';
}

export interface RealIo extends PacketNet, StreamNet {
  /** Start delivering to `h`. */
  bind(h: Handler): Promise<void>;
  close(): Promise<void>;
  /** Inbound streams refused or cut, by reason; `buffer_budget` also counts replies to our own exchanges refused for the budget. */
  readonly drops: CounterSet<StreamDropReason>;
  /** Push-pull streams refused because unfinished streams held `maxBufferedBytes`. */
  readonly streamsRefused: number;
  /** Inbound streams open now, and how many of them have not authenticated yet. */
  streams(): { open: number; unauthenticated: number };
}

export interface RealIoOptions {
  /** Bound on bytes held by unfinished push-pull streams, in and out. Default 64 MiB. */
  maxBufferedBytes?: number;
  /** Inbound streams open at once. Default 64. */
  maxStreams?: number;
  /** Inbound streams open at once from one source address (IPv6: one /64). Default 8. */
  maxStreamsPerSource?: number;
  /** Inbound streams open at once that have not authenticated their first frame. Default 16. */
  maxUnauthenticated?: number;
  /** Deadline for an inbound stream's first complete frame, ms. Default 3000. */
  firstFrameMs?: number;
  /** Deadline for a whole inbound exchange, ms. Default 10 000. */
  exchangeMs?: number;
  /** First-frame check; default the handler's `authenticateFrame`. */
  authenticate?: (frame: Uint8Array) => boolean;
}

interface Inbound {
  readonly sock: net.Socket;
  readonly source: string;
  /** Gives the stream's slots back; idempotent (runs at eviction or at close, whichever first). */
  readonly free: () => void;
}

export function createRealIo(listen: Addr, options: RealIoOptions = {}): RealIo {
  const lim = {
    maxStreams: options.maxStreams ?? STREAM_LIMITS.maxStreams,
    maxStreamsPerSource: options.maxStreamsPerSource ?? STREAM_LIMITS.maxStreamsPerSource,
    maxUnauthenticated: options.maxUnauthenticated ?? STREAM_LIMITS.maxUnauthenticated,
    firstFrameMs: options.firstFrameMs ?? STREAM_LIMITS.firstFrameMs,
    exchangeMs: options.exchangeMs ?? STREAM_LIMITS.exchangeMs,
  };
  const budget: StreamBudget = { used: 0, max: options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES };
  const drops = new CounterSet(STREAM_DROP_REASONS, 'overlay.agent.stream');
  const udp = dgram.createSocket({ type: listen.ip.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
  let server: net.Server | null = null;
  let open = 0;
  const perSource = new Map<string, number>();
  /** Unauthenticated inbound streams, oldest first (a Set keeps insertion order). */
  const unauthenticated = new Set<Inbound>();

  const refuse = (sock: net.Socket, reason: StreamDropReason) => {
    drops.add(drops.at[reason]);
    if (!sock.destroyed) sock.resetAndDestroy();
  };

  const admit = (sock: net.Socket, h: Handler) => {
    sock.on('error', () => {});
    const source = sourceKey(sock.remoteAddress ?? '');
    const fromSource = perSource.get(source) ?? 0;
    if (fromSource >= lim.maxStreamsPerSource) return refuse(sock, 'source_limit');
    if (open >= lim.maxStreams || unauthenticated.size >= lim.maxUnauthenticated) {
      const oldest = unauthenticated.values().next();
      if (oldest.done) return refuse(sock, 'global_limit');
      oldest.value.free();
      refuse(oldest.value.sock, 'unauthenticated_evicted');
    }
    open++;
    perSource.set(source, (perSource.get(source) ?? 0) + 1);
    let freed = false;
    const s: Inbound = {
      sock,
      source,
      free: () => {
        if (freed) return;
        freed = true;
        clearTimeout(firstFrame);
        clearTimeout(deadline);
        unauthenticated.delete(s);
        open--;
        const n = (perSource.get(source) ?? 1) - 1;
        if (n > 0) perSource.set(source, n);
        else perSource.delete(source);
      },
    };
    unauthenticated.add(s);
    const cut = (reason: StreamDropReason) => (s.free(), refuse(sock, reason));
    const firstFrame = setTimeout(() => cut('first_frame_timeout'), lim.firstFrameMs);
    // Kept after the reply too: a peer that never reads it must not hold the slot.
    const deadline = setTimeout(() => cut('exchange_timeout'), lim.exchangeMs);
    sock.once('close', s.free);
    const authenticate = options.authenticate ?? h.authenticateFrame?.bind(h);
    const from = { ip: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 };
    readFrames(
      sock,
      budget,
      (err, chunks) => {
        if (err || !chunks) {
          // Cuts by a timer or an eviction were counted there; the peer's own close is not a drop.
          if (err && err.reason !== 'closed_early') cut(err.reason);
          else (s.free(), sock.destroy());
          return;
        }
        writeFrames(sock, h.handleExchange(from, chunks));
        sock.end();
      },
      (frame) => {
        if (authenticate && !authenticate(frame)) return 'first_frame_unauthenticated';
        unauthenticated.delete(s);
        clearTimeout(firstFrame);
        return null;
      },
    );
  };

  let unsent = 0;
  let closed = false;
  let flushed: (() => void) | undefined;
  return {
    drops,
    get streamsRefused() {
      return drops.get('buffer_budget');
    },
    streams() {
      return { open, unauthenticated: unauthenticated.size };
    },
    send(to, bytes) {
      if (closed) return;
      unsent++;
      udp.send(bytes, to.port, to.ip, () => {
        if (--unsent === 0) flushed?.();
      });
    },
    exchange(to: Addr, chunks: Uint8Array[], timeoutMs: number, done: ExchangeDone) {
      const sock = net.connect({ host: to.ip, port: to.port });
      let called = false;
      const cb = (e: Error | null, r: Uint8Array[] | null) => {
        if (called) return;
        called = true;
        clearTimeout(t);
        sock.destroy();
        if (e instanceof PushPullStreamError && e.reason === 'buffer_budget') drops.add(drops.at.buffer_budget);
        done(e, r);
      };
      const t = setTimeout(() => cb(new PushPullStreamError('exchange_timeout'), null), timeoutMs);
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
      server = net.createServer((sock) => admit(sock, h));
      await new Promise<void>((res, rej) => {
        server!.once('error', rej);
        server!.listen(listen.port, listen.ip, () => res());
      });
    },
    async close() {
      // dgram sends complete asynchronously and closing the socket discards the unsent ones: a
      // graceful leave sent just before close would never leave the host. Wait for them (bounded).
      closed = true;
      if (unsent > 0) {
        await new Promise<void>((res) => {
          const t = setTimeout(res, CLOSE_FLUSH_MS);
          flushed = () => (clearTimeout(t), res());
        });
      }
      udp.close();
      await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
    },
  };
}

/** Serve `status()` JSON on a unix socket (mode 0600): a client writes "status\n" and reads to EOF. */
/**
 * The control socket: one line in, one JSON answer out. `status` answers `status()`; any other
 * line goes to `command` (e.g. `config`, `apply PATH`: cli.ts), whose answer (or `{error}`) is sent.
 */
export async function serveControl(path: string, status: () => unknown, command?: (line: string) => unknown): Promise<net.Server> {
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
  const srv = net.createServer((sock) => {
    sock.once('data', (d) => {
      const line = d.toString().trim();
      if (line === 'status') sock.end(JSON.stringify(status()) + '\n');
      else if (command) {
        Promise.resolve()
          .then(() => command(line))
          .then(
            (r) => sock.end(JSON.stringify(r ?? { error: 'unknown command' }) + '\n'),
            (e: Error) => sock.end(JSON.stringify({ error: e.message, code: (e as { code?: string }).code }) + '\n'),
          );
      } else sock.end('{"error":"unknown command"}\n');
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

export function queryControl(path: string, timeoutMs = 3000, command = 'status'): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let out = '';
    const t = setTimeout(() => (sock.destroy(), reject(new Error('timeout'))), timeoutMs);
    sock.on('connect', () => sock.write(`${command}\n`));
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
