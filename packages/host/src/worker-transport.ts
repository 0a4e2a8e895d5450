/**
 * A worker's underlay (docs/multicore.md): receives on the host's VXLAN port through its own
 * SO_REUSEPORT socket, and sends each datagram from one of a fixed set of source ports chosen by
 * a hash of the inner flow (RFC 7348 §5: "the UDP source port ... a hash of fields from the inner
 * packet"). Every worker binds the same source ports (SO_REUSEPORT again), so a flow leaves from
 * the same port whichever worker sends it: the receiving host's reuseport hash, which sees only
 * the outer 4-tuple, then puts one inner flow on one of its workers and keeps it there, while
 * different flows spread over its workers. The source-port sockets receive too (into the same
 * pipeline), for peers that learn and answer the source port.
 *
 * Allocates nothing per packet or batch: the hash reads the pool's bytes, and a batch whose
 * frames hash to different ports is split into preallocated batches.
 */
import { PacketBatch, type BatchSink, type BufferPool, type Transport } from '@overlay/dataplane';
import type { UdpTransport } from '@overlay/native';

/** Source ports a host sends from, shared by its workers. More ports, an evener spread of few flows. */
export const SOURCE_PORTS = 16;

/** VXLAN header (8) + Ethernet destination and source (12): where the EtherType sits in a datagram. */
const ETHERTYPE_AT = 20;

/**
 * Index in 0..k-1 for the datagram in `slot` (VXLAN header first): a hash of the inner IPv4 or
 * IPv6 addresses and, for a TCP or UDP first fragment, the ports; other frames (ARP, ...) give 0.
 * Deterministic per flow and direction, which is all a source port needs to be.
 */
export function flowIndex(pool: BufferPool, slot: number, k: number): number {
  const d = pool.data;
  const off = pool.off[slot];
  const end = off + pool.len[slot];
  let p = off + ETHERTYPE_AT;
  if (p + 2 > end) return 0;
  let type = (d[p] << 8) | d[p + 1];
  if (type === 0x8100 && p + 6 <= end) {
    p += 4;
    type = (d[p] << 8) | d[p + 1];
  }
  const l3 = p + 2;
  let h = 0;
  let l4 = -1;
  if (type === 0x0800) {
    if (l3 + 20 > end) return 0;
    // Unrolled: the IPv4 case is the hot one (half the time of the IPv6 loop form).
    h = (d[l3 + 12] << 24) | (d[l3 + 13] << 16) | (d[l3 + 14] << 8) | d[l3 + 15];
    h = Math.imul(h, 0x9e3779b1) ^ ((d[l3 + 16] << 24) | (d[l3 + 17] << 16) | (d[l3 + 18] << 8) | d[l3 + 19]);
    const proto = d[l3 + 9];
    const firstFragment = ((d[l3 + 6] & 0x1f) | d[l3 + 7]) === 0;
    if ((proto === 6 || proto === 17) && firstFragment) l4 = l3 + (d[l3] & 15) * 4;
  } else if (type === 0x86dd) {
    if (l3 + 40 > end) return 0;
    for (let i = 8; i < 40; i += 4) h = Math.imul(h ^ ((d[l3 + i] << 24) | (d[l3 + i + 1] << 16) | (d[l3 + i + 2] << 8) | d[l3 + i + 3]), 0x9e3779b1);
    const next = d[l3 + 6];
    if (next === 6 || next === 17) l4 = l3 + 40;
  } else {
    return 0;
  }
  if (l4 >= 0 && l4 + 4 <= end) h = Math.imul(h, 0x9e3779b1) ^ ((d[l4] << 24) | (d[l4 + 1] << 16) | (d[l4 + 2] << 8) | d[l4 + 3]);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h ^= h >>> 13;
  // A small integer stays a small integer (h >>> 0 would make a double of half the values).
  return (h & 0x7fffffff) % k;
}

export class WorkerTransport implements Transport {
  readonly localPort: number;
  /** Per datagram of the batch being sent: its socket's index. */
  private readonly pick: Int32Array;
  private readonly parts: PacketBatch[];

  /**
   * `rx` is bound to the VXLAN port with reuseport; `tx[i]` to source port i (reuseport, the same
   * ports in every worker). Owns them all: close() closes them.
   */
  constructor(
    readonly rx: UdpTransport,
    readonly tx: readonly UdpTransport[],
    batchSize: number,
  ) {
    this.localPort = rx.localPort;
    this.pick = new Int32Array(batchSize);
    this.parts = tx.map(() => new PacketBatch(batchSize));
  }

  start(pool: BufferPool, sink: BatchSink): void {
    this.rx.start(pool, sink);
    for (const t of this.tx) t.start(pool, sink);
  }

  /**
   * Send each datagram from its flow's source port: one sendmmsg per port the batch touches (one
   * for the usual batch of a single TCP flow's segments, so UDP GSO still merges them). Returns
   * how many went out, summed over the ports.
   */
  send(pool: BufferPool, batch: PacketBatch): number {
    const tx = this.tx;
    const k = tx.length;
    const n = batch.count;
    if (k === 1 || n === 0) return tx[0].send(pool, batch);
    if (n > this.pick.length) return this.sendChunks(pool, batch);
    const pick = this.pick;
    const slots = batch.slots;
    const first = flowIndex(pool, slots[0], k);
    pick[0] = first;
    let mixed = false;
    for (let i = 1; i < n; i++) {
      const g = flowIndex(pool, slots[i], k);
      pick[i] = g;
      if (g !== first) mixed = true;
    }
    if (!mixed) return tx[first].send(pool, batch);
    const parts = this.parts;
    for (let j = 0; j < k; j++) parts[j].count = 0;
    for (let i = 0; i < n; i++) {
      const b = parts[pick[i]];
      b.slots[b.count++] = slots[i];
    }
    let sent = 0;
    for (let j = 0; j < k; j++) if (parts[j].count > 0) sent += tx[j].send(pool, parts[j]);
    return sent;
  }

  /** A batch larger than the one this transport was sized for: send it a batch at a time (not expected from the dataplane). */
  private sendChunks(pool: BufferPool, batch: PacketBatch): number {
    const chunk = new PacketBatch(this.pick.length);
    let sent = 0;
    for (let i = 0; i < batch.count; i += chunk.capacity) {
      chunk.count = Math.min(chunk.capacity, batch.count - i);
      chunk.slots.set(batch.slots.subarray(i, i + chunk.count));
      sent += this.send(pool, chunk);
    }
    return sent;
  }

  async close(): Promise<void> {
    await this.rx.close();
    for (const t of this.tx) await t.close();
  }
}
