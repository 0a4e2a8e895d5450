import type { BufferPool, PacketBatch } from './pool.js';

/**
 * Receives batches from a device or transport. Called on the owner's event loop; the batch
 * object is reused after the call returns, so copy out the slot numbers you keep. Every slot in
 * the batch is owned by the sink: it must forward it or release it to the pool before returning
 * or later, exactly once. Must not block.
 */
export type BatchSink = (batch: PacketBatch) => void;

/**
 * Where inner Ethernet frames come from and go to: a TAP device, an in-memory port, or an
 * embedder's own. One instance per network (VNI) attachment.
 */
export interface FrameDevice {
  readonly name: string;
  /** Largest frame payload (L3 MTU) the device accepts; frames longer than mtu+18 are dropped. */
  readonly mtu: number;
  /**
   * Begin delivering frames read from the device, in batches, into slots of `pool`.
   * Called once.
   */
  start(pool: BufferPool, sink: BatchSink): void;
  /**
   * Write the frames of `batch` (each at pool.off/pool.len). Ownership stays with the caller,
   * who releases the slots after the call. Returns how many were written, in order; the rest
   * were not (the caller counts them as dropped).
   */
  write(pool: BufferPool, batch: PacketBatch): number;
  close(): Promise<void>;
}

/**
 * The underlay: carries datagrams to and from remote VTEPs. Received datagrams carry their
 * source in pool.family/addr/port; datagrams to send carry their destination there.
 */
export interface Transport {
  /** Local UDP port actually bound (useful when 0 was asked for). */
  readonly localPort: number;
  start(pool: BufferPool, sink: BatchSink): void;
  /** Same ownership and return rules as FrameDevice.write. */
  send(pool: BufferPool, batch: PacketBatch): number;
  close(): Promise<void>;
}
