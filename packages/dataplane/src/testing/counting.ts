import type { BatchSink, FrameDevice, Transport } from '../io.js';
import type { BufferPool, PacketBatch } from '../pool.js';

/**
 * A device that keeps the dataplane's sink and pool (so a test or benchmark hands it batches
 * directly, synchronously) and only counts what the dataplane writes. Nothing is queued or
 * copied, so it measures or checks the pipeline alone. Single-threaded, like the dataplane.
 */
export class CountingDevice implements FrameDevice {
  sink: BatchSink = () => {};
  pool!: BufferPool;
  /** Frames the dataplane wrote to this device. */
  written = 0;
  constructor(
    readonly mtu: number,
    readonly name = 'count0',
  ) {}
  start(pool: BufferPool, sink: BatchSink): void {
    this.pool = pool;
    this.sink = sink;
  }
  write(_pool: BufferPool, batch: PacketBatch): number {
    this.written += batch.count;
    return batch.count;
  }
  async close(): Promise<void> {}
}

/** A transport that keeps the dataplane's sink and only counts what it is asked to send. */
export class CountingTransport implements Transport {
  readonly localPort = 4789;
  sink: BatchSink = () => {};
  /** Datagrams the dataplane sent. */
  sent = 0;
  start(_pool: BufferPool, sink: BatchSink): void {
    this.sink = sink;
  }
  send(_pool: BufferPool, batch: PacketBatch): number {
    this.sent += batch.count;
    return batch.count;
  }
  async close(): Promise<void> {}
}
