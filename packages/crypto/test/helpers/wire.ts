/**
 * A tiny in-process underlay for tests: transports addressed by 'a.b.c.d:port' that deliver
 * synchronously when `flush()` is called, with a tap to capture and a filter to drop datagrams.
 */
import { BufferPool, PacketBatch, parseIpAddress, type BatchSink, type Transport } from '@overlay/dataplane';

export interface Datagram {
  from: string;
  to: string;
  bytes: Buffer;
}

export class Wire {
  private readonly ends = new Map<string, End>();
  private pending: Datagram[] = [];
  readonly log: Datagram[] = [];
  /** Return false to drop a datagram in flight. */
  filter: (d: Datagram) => boolean = () => true;

  transport(address: string, port = 51820): End {
    const e = new End(this, address, port);
    this.ends.set(`${address}:${port}`, e);
    return e;
  }

  enqueue(d: Datagram): void {
    this.log.push(d);
    if (this.filter(d)) this.pending.push(d);
  }

  /** Inject raw bytes as if sent from `from` to `to`. */
  inject(from: string, to: string, bytes: Buffer): void {
    this.pending.push({ from, to, bytes });
  }

  /** Delivers until quiet (bounded). */
  flush(maxRounds = 100): void {
    for (let r = 0; r < maxRounds && this.pending.length; r++) {
      const batch = this.pending;
      this.pending = [];
      for (const d of batch) this.ends.get(d.to)?.deliver(d);
    }
  }
}

export class End implements Transport {
  readonly localPort: number;
  private pool: BufferPool | null = null;
  private sink: BatchSink | null = null;
  sent = 0;
  constructor(private readonly wire: Wire, readonly address: string, readonly port: number) {
    this.localPort = port;
  }
  start(pool: BufferPool, sink: BatchSink): void {
    this.pool = pool;
    this.sink = sink;
  }
  send(pool: BufferPool, batch: PacketBatch): number {
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      const to = `${Array.from(pool.addr.subarray(s * 16, s * 16 + 4)).join('.')}:${pool.port[s]}`;
      this.wire.enqueue({ from: `${this.address}:${this.port}`, to, bytes: pool.copyOut(s) });
      this.sent++;
    }
    return batch.count;
  }
  deliver(d: Datagram): void {
    if (!this.pool || !this.sink) return;
    const slot = this.pool.acquire();
    if (slot < 0) return;
    this.pool.fill(slot, d.bytes);
    const [a, p] = d.from.split(':');
    this.pool.setEndpoint(slot, 4, Buffer.from(a.split('.').map(Number)), Number(p));
    const b = new PacketBatch(1);
    b.push(slot);
    this.sink(b);
  }
  async close(): Promise<void> {}
}

/** Builds an IPv4 packet (no options) with a payload; checksum left zero (not checked here). */
export function ipv4(src: string, dst: string, payload: Buffer): Buffer {
  const b = Buffer.alloc(20 + payload.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[8] = 64;
  b[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(b, 12);
  Buffer.from(dst.split('.').map(Number)).copy(b, 16);
  payload.copy(b, 20);
  return b;
}

/** An address's 4 or 16 bytes. */
export const ipBytes = (text: string): Buffer => Buffer.from(parseIpAddress(text).bytes);

/** Builds an IPv6 packet (UDP next header) with a payload. */
export function ipv6(src: Buffer, dst: Buffer, payload: Buffer): Buffer {
  const b = Buffer.alloc(40 + payload.length);
  b[0] = 0x60;
  b.writeUInt16BE(payload.length, 4);
  b[6] = 17;
  b[7] = 64;
  src.copy(b, 8);
  dst.copy(b, 24);
  payload.copy(b, 40);
  return b;
}
