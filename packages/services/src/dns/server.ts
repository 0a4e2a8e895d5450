/**
 * The resolver on sockets, for host processes: UDP and TCP on one address and port (127.0.0.x,
 * the network's resolver address, or any address of the host). Our names are answered from the
 * directory (DnsAnswerer); others go to the Forwarder. The dataplane's endpoints are answered
 * inline by the responder stage instead (responder.ts), with no socket in between.
 *
 * UDP (server-udp.ts): on a batched transport the embedder binds (`udpTransport`, e.g.
 * @overlay/native's UdpTransport with recvmmsg/sendmmsg: @overlay/services stays free of native
 * code, the host owns its sockets), else node:dgram.
 *
 * TCP (RFC 7766): 2-byte length-prefixed messages, several per connection, answered in order of
 * arrival; a length under 12 closes the connection (`tcp_bad_length`); at most `maxTcpConnections`
 * at once (more are closed at accept, `tcp_refused`); a connection idle for `tcpIdleMs` is closed
 * (`tcp_idle_closed`); at most 64 KiB + 2 buffered per connection.
 */
import { createServer, isIPv6, type Server, type Socket as TcpSocket } from 'node:net';
import type { CounterSet } from '@overlay/dataplane';
import type { ServiceDirectory } from '../directory.js';
import { DnsAnswerer, FORWARD, MAX_TCP_MESSAGE } from './answer.js';
import { createDnsCounters, type DnsCounter } from './counters.js';
import { Forwarder, type ForwarderOptions } from './forward.js';
import { BatchedUdp, DgramUdp, type BindUdpTransport, type DnsUdp } from './server-udp.js';
import { HEADER_LENGTH, RCODE_SERVFAIL } from './wire.js';

export interface DnsServerOptions {
  directory: ServiceDirectory;
  /** Networks whose services this server answers (the host's). */
  networks: readonly string[];
  address: string;
  /** Default 53; 0 picks a free port (see `port`). */
  port?: number;
  counters?: CounterSet<DnsCounter>;
  /** Forwarding of other names; false: NXDOMAIN. Default: forward to resolv.conf's nameservers. */
  forward?: false | Omit<ForwarderOptions, 'counters'>;
  maxTcpConnections?: number;
  tcpIdleMs?: number;
  /**
   * Bind UDP on a batched transport instead of node:dgram: called once with the address and
   * port; the server owns what it returns (started with its own pool, closed on close()).
   */
  udpTransport?: BindUdpTransport;
  /** Pool slots of the batched transport (4 KiB each: a received batch, replies from upstream). Default 256. */
  udpSlots?: number;
}

export class DnsServer {
  readonly counters: CounterSet<DnsCounter>;
  readonly answerer: DnsAnswerer;
  private fwd: Forwarder | undefined;
  private readonly tcpOut = Buffer.allocUnsafe(MAX_TCP_MESSAGE);
  private readonly conns = new Set<TcpSocket>();
  private udp!: DnsUdp;
  private tcp!: Server;

  private constructor(private readonly o: DnsServerOptions) {
    this.counters = o.counters ?? createDnsCounters();
    this.answerer = new DnsAnswerer({ directory: o.directory, networks: o.networks, counters: this.counters, forwarding: o.forward !== false });
  }

  /** Bind UDP and TCP on the same port. */
  static async listen(o: DnsServerOptions): Promise<DnsServer> {
    const server = new DnsServer(o);
    const udp: DnsUdp = o.udpTransport
      ? new BatchedUdp(await o.udpTransport(o.address, o.port ?? 53), server.answerer, o.udpSlots)
      : await DgramUdp.bind(o.address, o.port ?? 53, server.answerer);
    const tcp = createServer({ pauseOnConnect: false });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: o.address, port: udp.port }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await udp.close();
      throw err;
    }
    const self = isIPv6(o.address) ? `[${o.address}]:${udp.port}` : `${o.address}:${udp.port}`;
    if (o.forward !== false) server.fwd = new Forwarder({ ...(o.forward ?? {}), exclude: [self, ...(o.forward?.exclude ?? [])], counters: server.counters });
    server.udp = udp;
    server.tcp = tcp;
    udp.forwarder = server.fwd;
    tcp.on('connection', (s) => server.onTcp(s));
    return server;
  }

  get port(): number {
    return this.udp.port;
  }

  /** Forwards names that are not ours; set once UDP is bound (it must not ask this server itself). */
  get forwarder(): Forwarder | undefined {
    return this.fwd;
  }

  /** UDP is on a batched transport (`udpTransport`), not node:dgram. */
  get udpBatched(): boolean {
    return this.udp instanceof BatchedUdp;
  }

  async close(): Promise<void> {
    this.forwarder?.close();
    for (const c of this.conns) c.destroy();
    await Promise.all([this.udp.close(), new Promise<void>((r) => this.tcp.close(() => r()))]);
  }

  private onTcp(s: TcpSocket): void {
    const c = this.counters;
    const max = this.o.maxTcpConnections ?? 256;
    if (this.conns.size >= max) {
      c.add(c.at.tcp_refused);
      s.destroy();
      return;
    }
    c.add(c.at.tcp_connections);
    this.conns.add(s);
    s.setNoDelay(true);
    s.setTimeout(this.o.tcpIdleMs ?? 10_000, () => {
      c.add(c.at.tcp_idle_closed);
      s.destroy();
    });
    s.on('error', () => s.destroy());
    s.on('close', () => this.conns.delete(s));
    let buf: Buffer = Buffer.alloc(0);
    // Replies go out in the order queries arrived, forwarded ones included.
    const queue: Array<{ ready: boolean; data?: Buffer }> = [];
    const flush = () => {
      while (queue.length > 0 && queue[0].ready) {
        const d = queue.shift()!.data;
        if (d && !s.destroyed) s.write(d);
      }
      if (s.isPaused() && queue.length < 16) s.resume();
    };
    const frame = (bytes: Uint8Array, n: number): Buffer => {
      const b = Buffer.allocUnsafe(2 + n);
      b.writeUInt16BE(n, 0);
      b.set(bytes.subarray(0, n), 2);
      return b;
    };
    s.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len < HEADER_LENGTH) {
          c.add(c.at.tcp_bad_length);
          s.destroy();
          return;
        }
        if (buf.length < 2 + len) break;
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        const slot: { ready: boolean; data?: Buffer } = { ready: false };
        queue.push(slot);
        const out = this.tcpOut;
        const n = this.answerer.answer(msg, 0, msg.length, out, 0, out.length, true);
        if (n > 0) {
          slot.ready = true;
          slot.data = frame(out, n);
        } else if (n < 0) slot.ready = true;
        else {
          const remote = s.remoteAddress ?? '';
          this.forwarder!.forward(msg, remote, true, (reply, rcode) => {
            slot.ready = true;
            if (reply !== null) slot.data = frame(reply, reply.length);
            else {
              const m = this.answerer.respond(msg, 0, msg.length, out, 0, out.length, rcode < 0 ? RCODE_SERVFAIL : rcode);
              if (m > 0) slot.data = frame(out, m);
            }
            flush();
          });
        }
      }
      flush();
      // Many queries still waiting for upstream: read no more until they are answered (bounded memory).
      if (queue.length > 64) s.pause();
    });
  }
}
