import { PacketBatch, type BatchSink, type BufferPool } from '@overlay/dataplane';
import { native, type NativeHandle } from './binding.js';
import type { NativeError } from './errors.js';

/**
 * The receive side shared by TAP and UDP: keeps up to `batchSize` pre-acquired pool slots in an
 * Int32Array the native side reads into, and turns each native wake-up into one sink call.
 * Allocates nothing per packet or per batch: the batch object and arrays are reused.
 *
 * Threading: runs on the event loop of the thread that called start().
 */
export class Receiver {
  private readonly rxSlots: Int32Array;
  /** ctl[0]: how many entries of rxSlots hold acquired slots. Read by the native side. */
  private readonly ctl = new Int32Array(1);
  private readonly batch: PacketBatch;
  /** Bound once so the native side holds one function for the handle's life. */
  readonly onBatch: (n: number) => void;

  constructor(
    private readonly handle: NativeHandle,
    private readonly pool: BufferPool,
    private readonly sink: BatchSink,
    batchSize: number,
    private readonly onError: (err: NativeError) => void,
    private readonly syscall: string,
  ) {
    this.rxSlots = new Int32Array(batchSize);
    this.batch = new PacketBatch(batchSize);
    this.onBatch = (n) => this.deliver(n);
  }

  start(): void {
    this.refill();
    native().start(this.handle, this.rxSlots, this.ctl, this.onBatch);
  }

  private refill(): void {
    const pool = this.pool;
    const slots = this.rxSlots;
    let have = this.ctl[0];
    // Check `available` first so an empty pool is not counted as an exhausted acquire.
    while (have < slots.length && pool.available > 0) slots[have++] = pool.acquire();
    this.ctl[0] = have;
  }

  private deliver(n: number): void {
    if (n < 0) {
      this.onError(native().errnoError(-n, this.syscall));
      return;
    }
    if (n > 0) {
      const b = this.batch;
      const slots = this.rxSlots;
      for (let i = 0; i < n; i++) b.slots[i] = slots[i];
      b.count = n;
      slots.copyWithin(0, n, this.ctl[0]);
      this.ctl[0] -= n;
      this.sink(b);
    }
    this.refill();
  }

  /** Return the pre-acquired slots to the pool. Call after the native handle is closed. */
  releaseSlots(): void {
    for (let i = 0; i < this.ctl[0]; i++) this.pool.release(this.rxSlots[i]);
    this.ctl[0] = 0;
  }
}

/**
 * Register `pool` with a native handle (once per pool) so send/receive address it in place.
 * `capacity` is the largest packet accepted on receive; larger ones are counted and dropped.
 */
export function registerPool(handle: NativeHandle, pool: BufferPool, capacity: number): void {
  native().setPool(handle, pool.data, pool.off, pool.len, pool.family, pool.addr, pool.port, pool.stride, capacity);
}
