import { ClosedError, InvalidConfigError, PacketBatch, type BatchSink, type BufferPool } from '@overlay/dataplane';
import { native, POOL_RX, POOL_TX, type NativeHandle } from './binding.js';
import type { IoCounters } from './counters.js';
import type { NativeError } from './errors.js';

/**
 * The receive side shared by TAP and UDP: keeps up to `batchSize` pre-acquired pool slots in an
 * Int32Array the native side reads into, and turns each native wake-up into one sink call.
 * Allocates nothing per packet or per batch: the batch object and arrays are reused.
 *
 * Threading: runs on the event loop of the thread that called start().
 */
class Receiver {
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
    private readonly counters: IoCounters,
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
    this.counters.flush();
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
 * What TapDevice and UdpTransport share: one native handle (descriptor + libuv poll), the pool
 * registered with it, the receive loop, and close(). Subclasses say how big a received packet
 * may be and what to call themselves in errors.
 */
export abstract class NativeIo {
  /** Native counters, readable at any time without a native call. */
  readonly counters: IoCounters;
  readonly batchSize: number;
  /** Set when receiving failed for good (the device went away); also passed to onError. */
  lastError: NativeError | undefined;
  private handle: NativeHandle | undefined;
  private rxPool: BufferPool | undefined;
  private txPool: BufferPool | undefined;
  private receiver: Receiver | undefined;

  protected constructor(
    handle: NativeHandle,
    counters: IoCounters,
    batchSize: number,
    private readonly onError: ((err: NativeError) => void) | undefined,
  ) {
    this.handle = handle;
    this.counters = counters;
    this.batchSize = batchSize;
  }

  /** Largest packet a pool slot may take on receive; larger ones are counted and dropped. */
  protected abstract capacity(pool: BufferPool): number;
  /** For messages: 'TAP device tap0', 'UDP transport 198.18.0.1:4789'. */
  protected abstract describe(): string;
  /** The syscall a receive error came from. */
  protected abstract readonly rxSyscall: string;

  start(pool: BufferPool, sink: BatchSink): void {
    const h = this.live();
    if (this.receiver) throw new InvalidConfigError('start', 'already started');
    this.usePool(h, pool, POOL_RX);
    this.receiver = new Receiver(h, pool, sink, this.batchSize, (err) => this.failed(err), this.rxSyscall, this.counters);
    this.receiver.start();
  }

  /**
   * One native call for the whole batch. Returns how many went out. A TAP write stops at the
   * first frame the kernel refuses; a UDP send counts and skips a datagram whose destination
   * fails (no route, firewall) and sends the rest, so what went out need not be a prefix.
   */
  protected transmit(pool: BufferPool, batch: PacketBatch): number {
    const h = this.live();
    if (pool !== this.txPool) this.usePool(h, pool, POOL_TX);
    const sent = native().send(h, batch.slots, batch.count);
    this.counters.flush();
    return sent;
  }

  /** TAP with a virtio-net header: write coalesced groups (see TcpCoalescer) with one native call. */
  protected transmitGroups(pool: BufferPool, batch: PacketBatch, groups: Int32Array, ngroups: number): number {
    const h = this.live();
    if (pool !== this.txPool) this.usePool(h, pool, POOL_TX);
    const sent = native().writeGso(h, batch.slots, batch.count, groups, ngroups);
    this.counters.flush();
    return sent;
  }

  /** Stop polling, close the descriptor, return the pre-acquired slots. Idempotent. */
  async close(): Promise<void> {
    const h = this.handle;
    if (!h) return;
    this.handle = undefined;
    native().close(h);
    this.receiver?.releaseSlots();
  }

  protected live(): NativeHandle {
    if (!this.handle) throw new ClosedError(this.describe());
    return this.handle;
  }

  private usePool(h: NativeHandle, pool: BufferPool, which: number): void {
    // Registered once per pool and direction: the native side keeps pointers into its arrays.
    native().setPool(h, which, pool.data, pool.off, pool.len, pool.family, pool.addr, pool.port, pool.stride, this.capacity(pool));
    if (which & POOL_RX) this.rxPool = pool;
    if (which & POOL_TX) this.txPool = pool;
  }

  private failed(err: NativeError): void {
    this.lastError = err;
    if (this.onError) this.onError(err);
    else process.emitWarning(`${this.describe()}: ${err.message}`, 'OverlayIoWarning');
  }
}
