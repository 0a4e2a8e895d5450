/**
 * The socket server's UDP side, two ways:
 *
 * - `BatchedUdp`: on a batched datagram Transport that the embedder binds and passes in (the
 *   agent passes @overlay/native's UdpTransport: recvmmsg/sendmmsg, so one crossing into native
 *   code per batch, not per query; @overlay/services itself stays free of native code). Each
 *   received batch is answered in place, slot by slot (the answer is written over its query in
 *   the same pool slot, the client's address already in pool.family/addr/port), and the answers
 *   go out with one send. Nothing is allocated per query on our names.
 * - `DgramUdp`: node:dgram, one 'message' event and one send per query; for embedders without
 *   a batched transport.
 *
 * Names that are not ours go to the Forwarder (the query copied, the client's address as text:
 * the forwarding path allocates) and the reply is sent when it comes.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { BufferPool, PacketBatch, formatIpAddress, type Transport } from '@overlay/dataplane';
import type { DnsAnswerer } from './answer.js';
import { FORWARD_SUPERSEDED, type Forwarder } from './forward.js';
import { MAX_UDP_SIZE, RCODE_SERVFAIL } from './wire.js';

/** What the server needs of either side. */
export interface DnsUdp {
  readonly port: number;
  /** Where names that are not ours go (set by the server once bound); absent: answer() never returns FORWARD. */
  forwarder: Forwarder | undefined;
  close(): Promise<void>;
}

/** Binds a batched transport on the server's address and port (0: any free port). */
export type BindUdpTransport = (address: string, port: number) => Transport | Promise<Transport>;

/** Largest query the batched side reads; longer datagrams are dropped by the transport (counted there). */
const SLOT_BYTES = 4096;

export class BatchedUdp implements DnsUdp {
  readonly pool: BufferPool;
  private readonly out: PacketBatch;
  private readonly one = new PacketBatch(1);
  private closed = false;
  forwarder: Forwarder | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly answerer: DnsAnswerer,
    slots = 256,
  ) {
    this.pool = new BufferPool({ count: slots, headroom: 0, tailroom: 0, frameCapacity: SLOT_BYTES });
    this.out = new PacketBatch(slots);
    transport.start(this.pool, (b) => this.onBatch(b));
  }

  get port(): number {
    return this.transport.localPort;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.transport.close();
  }

  private onBatch(b: PacketBatch): void {
    const pool = this.pool;
    const d = pool.data;
    const out = this.out;
    out.clear();
    for (let i = 0; i < b.count; i++) {
      const slot = b.slots[i];
      const off = pool.off[slot];
      const cap = pool.limit(slot) - off;
      const n = this.answerer.answer(d, off, pool.len[slot], d, off, cap < MAX_UDP_SIZE ? cap : MAX_UDP_SIZE, false);
      if (n > 0) {
        pool.len[slot] = n;
        out.push(slot);
        continue;
      }
      if (n === 0) this.forward(slot);
      pool.release(slot);
    }
    if (out.count > 0) this.transport.send(pool, out);
    for (let i = 0; i < out.count; i++) pool.release(out.slots[i]);
    out.clear();
  }

  private forward(slot: number): void {
    const pool = this.pool;
    const off = pool.off[slot];
    // Copies: the slot is reused before the reply comes.
    const query = Uint8Array.from(pool.data.subarray(off, off + pool.len[slot]));
    const family = pool.family[slot] as 4 | 6;
    const addr = Uint8Array.from(pool.addr.subarray(slot * 16, slot * 16 + 16));
    const port = pool.port[slot];
    const done = (reply: Uint8Array | null, rcode: number) => {
      if (this.closed || (reply === null && rcode === FORWARD_SUPERSEDED)) return;
      const s = pool.acquire();
      if (s < 0) return; // every slot busy: the client retries
      const o = pool.off[s];
      let n: number;
      if (reply !== null && reply.length <= SLOT_BYTES) {
        pool.data.set(reply, o);
        n = reply.length;
      } else n = this.answerer.respond(query, 0, query.length, pool.data, o, MAX_UDP_SIZE, rcode < 0 ? RCODE_SERVFAIL : rcode);
      if (n > 0) {
        pool.len[s] = n;
        pool.family[s] = family;
        pool.addr.set(addr, s * 16);
        pool.port[s] = port;
        this.one.clear();
        this.one.push(s);
        this.transport.send(pool, this.one);
      }
      pool.release(s);
    };
    if (this.forwarder === undefined) done(null, RCODE_SERVFAIL); // a query before the server finished binding
    else this.forwarder.forward(query, formatIpAddress(family, addr), false, done, port);
  }
}

export class DgramUdp implements DnsUdp {
  private readonly out = Buffer.allocUnsafe(MAX_UDP_SIZE);
  forwarder: Forwarder | undefined;

  private constructor(
    private readonly udp: Socket,
    private readonly answerer: DnsAnswerer,
  ) {
    udp.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
    udp.on('error', () => {
      // A send to a vanished client: nothing to do.
    });
  }

  static async bind(address: string, port: number, answerer: DnsAnswerer): Promise<DgramUdp> {
    const udp = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, address, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    return new DgramUdp(udp, answerer);
  }

  get port(): number {
    return this.udp.address().port;
  }

  close(): Promise<void> {
    return new Promise<void>((r) => this.udp.close(() => r()));
  }

  private onMessage(msg: Buffer, address: string, port: number): void {
    const out = this.out;
    const n = this.answerer.answer(msg, 0, msg.length, out, 0, out.length, false);
    if (n > 0) {
      // A copy: dgram may queue the send, and `out` is reused by the next query.
      this.udp.send(Buffer.from(out.subarray(0, n)), port, address);
      return;
    }
    if (n < 0) return;
    const done = (reply: Uint8Array | null, rcode: number) => {
      if (reply !== null) return void this.udp.send(reply, port, address);
      if (rcode === FORWARD_SUPERSEDED) return;
      const m = this.answerer.respond(msg, 0, msg.length, out, 0, out.length, rcode < 0 ? RCODE_SERVFAIL : rcode);
      if (m > 0) this.udp.send(Buffer.from(out.subarray(0, m)), port, address);
    };
    if (this.forwarder === undefined) done(null, RCODE_SERVFAIL); // a query before the server finished binding
    else this.forwarder.forward(msg, address, false, done, port);
  }
}
