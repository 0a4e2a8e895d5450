import type { BatchSink, FrameDevice } from '../io.js';
import { PacketBatch, type BufferPool } from '../pool.js';
import { ClosedError, InvalidConfigError } from '../errors.js';

export interface MemoryDeviceOptions {
  name: string;
  /** L3 MTU; frames up to mtu + 18 are accepted by the dataplane. Default 1450. */
  mtu?: number;
}

/**
 * An in-memory FrameDevice: the test (or embedder) plays the host's network stack. `inject`
 * hands frames to the dataplane as if the kernel wrote them to a TAP device; frames the
 * dataplane writes land in `received` (copies) and are announced to `onFrame` listeners.
 * Copies per frame: a test double, not a hot path.
 */
export class MemoryDevice implements FrameDevice {
  readonly name: string;
  readonly mtu: number;
  /** Frames written by the dataplane, oldest first. Tests may clear it. */
  readonly received: Buffer[] = [];
  /** Frames write() accepts per call; the rest are refused (to test device_write_failed). */
  writeLimit = Infinity;
  /** Frames dropped by inject because the pool was exhausted or the device not started. */
  injectDropped = 0;
  private pool: BufferPool | null = null;
  private sink: BatchSink | null = null;
  private batch = new PacketBatch(64);
  private closed = false;
  private readonly listeners = new Set<(frame: Buffer) => void>();

  constructor(o: MemoryDeviceOptions) {
    const mtu = o.mtu ?? 1450;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new InvalidConfigError('mtu', `must be an integer in 68..65535, got ${mtu}`);
    this.name = o.name;
    this.mtu = mtu;
  }

  start(pool: BufferPool, sink: BatchSink): void {
    if (this.closed) throw new ClosedError(`device ${this.name}`);
    this.pool = pool;
    this.sink = sink;
    this.batch = new PacketBatch(64);
  }

  /** Hand one frame to the dataplane (synchronously). False when dropped. */
  inject(frame: Uint8Array): boolean {
    return this.injectBatch([frame]) === 1;
  }

  /** Hand frames to the dataplane in batches of up to 64. Returns how many were handed over. */
  injectBatch(frames: readonly Uint8Array[]): number {
    const pool = this.pool;
    const sink = this.sink;
    if (!pool || !sink || this.closed) {
      this.injectDropped += frames.length;
      return 0;
    }
    let handed = 0;
    const b = this.batch;
    for (const f of frames) {
      const slot = pool.acquire();
      if (slot < 0 || !pool.fill(slot, f)) {
        if (slot >= 0) pool.release(slot);
        this.injectDropped++;
        continue;
      }
      b.push(slot);
      handed++;
      if (b.count === b.capacity) {
        sink(b);
        b.clear();
      }
    }
    if (b.count > 0) {
      sink(b);
      b.clear();
    }
    return handed;
  }

  write(pool: BufferPool, batch: PacketBatch): number {
    if (this.closed) return 0;
    const n = Math.min(batch.count, this.writeLimit);
    for (let i = 0; i < n; i++) {
      const frame = pool.copyOut(batch.slots[i]);
      this.received.push(frame);
      for (const l of this.listeners) l(frame);
    }
    return n;
  }

  /** Call `fn` for every frame written from now on. Returns an unsubscribe function. */
  onFrame(fn: (frame: Buffer) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Resolve with `received` once it holds at least `count` frames matching `filter`
   * (default: any), or reject after `timeoutMs`.
   */
  waitFor(count: number, timeoutMs = 2000, filter: (f: Buffer) => boolean = () => true): Promise<Buffer[]> {
    const matching = () => this.received.filter(filter);
    if (matching().length >= count) return Promise.resolve(matching());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.name}: ${matching().length} of ${count} frames after ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onFrame(() => {
        const m = matching();
        if (m.length >= count) {
          clearTimeout(timer);
          off();
          resolve(m);
        }
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
  }
}

export function createMemoryDevice(o: MemoryDeviceOptions): MemoryDevice {
  return new MemoryDevice(o);
}
