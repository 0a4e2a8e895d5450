/**
 * The resolver on sockets, for host processes: UDP and TCP on one address and port (127.0.0.x,
 * the network's resolver address, or any address of the host). Our names are answered from the
 * directory (DnsAnswerer); others go to the Forwarder. The dataplane's endpoints are answered
 * inline by the responder stage instead (responder.ts), with no socket in between.
 *
 * TCP (RFC 7766): 2-byte length-prefixed messages, several per connection, answered in order of
 * arrival; a length under 12 closes the connection (`tcp_bad_length`); at most `maxTcpConnections`
 * at once (more are closed at accept, `tcp_refused`); a connection idle for `tcpIdleMs` is closed
 * (`tcp_idle_closed`); at most 64 KiB + 2 buffered per connection.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket as TcpSocket } from 'node:net';
import type { CounterSet } from '@overlay/dataplane';
import type { ServiceDirectory } from '../directory.js';
import { DnsAnswerer, FORWARD, MAX_TCP_MESSAGE } from './answer.js';
import { createDnsCounters, type DnsCounter } from './counters.js';
import { Forwarder, type ForwarderOptions } from './forward.js';
import { HEADER_LENGTH, MAX_UDP_SIZE, RCODE_SERVFAIL } from './wire.js';

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
}

export class DnsServer {
  readonly counters: CounterSet<DnsCounter>;
  readonly answerer: DnsAnswerer;
  readonly forwarder: Forwarder | undefined;
  private readonly udpOut = Buffer.allocUnsafe(MAX_UDP_SIZE);
  private readonly tcpOut = Buffer.allocUnsafe(MAX_TCP_MESSAGE);
  private readonly conns = new Set<TcpSocket>();

  private constructor(
    private readonly o: DnsServerOptions,
    private readonly udp: Socket,
    private readonly tcp: Server,
    counters: CounterSet<DnsCounter>,
    forwarder: Forwarder | undefined,
  ) {
    this.counters = counters;
    this.forwarder = forwarder;
    this.answerer = new DnsAnswerer({ directory: o.directory, networks: o.networks, counters, forwarding: forwarder !== undefined });
    udp.on('message', (msg, rinfo) => this.onUdp(msg, rinfo.address, rinfo.port));
    tcp.on('connection', (s) => this.onTcp(s));
  }

  /** Bind UDP and TCP on the same port. */
  static async listen(o: DnsServerOptions): Promise<DnsServer> {
    const counters = o.counters ?? createDnsCounters();
    const udp = createSocket({ type: isIPv6(o.address) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(o.port ?? 53, o.address, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', () => {
      // A send to a vanished client: nothing to do.
    });
    const tcp = createServer({ pauseOnConnect: false });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: o.address, port: udp.address().port }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      udp.close();
      throw err;
    }
    const self = isIPv6(o.address) ? `[${o.address}]:${udp.address().port}` : `${o.address}:${udp.address().port}`;
    const forwarder = o.forward === false ? undefined : new Forwarder({ ...(o.forward ?? {}), exclude: [self, ...(o.forward?.exclude ?? [])], counters });
    return new DnsServer(o, udp, tcp, counters, forwarder);
  }

  get port(): number {
    return this.udp.address().port;
  }

  async close(): Promise<void> {
    this.forwarder?.close();
    for (const c of this.conns) c.destroy();
    await Promise.all([new Promise<void>((r) => this.udp.close(() => r())), new Promise<void>((r) => this.tcp.close(() => r()))]);
  }

  private onUdp(msg: Buffer, address: string, port: number): void {
    const out = this.udpOut;
    const n = this.answerer.answer(msg, 0, msg.length, out, 0, out.length, false);
    if (n > 0) {
      this.udp.send(Buffer.from(out.subarray(0, n)), port, address);
      return;
    }
    if (n < 0) return;
    this.forwarder!.forward(msg, address, false, (reply, rcode) => {
      if (reply !== null) return void this.udp.send(reply, port, address);
      const m = this.answerer.respond(msg, 0, msg.length, out, 0, out.length, rcode < 0 ? RCODE_SERVFAIL : rcode);
      if (m > 0) this.udp.send(Buffer.from(out.subarray(0, m)), port, address);
    });
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
