import { PacketBatch, encodeVxlan, type BatchSink, type BufferPool } from '@overlay/dataplane';

/** The frame with an 802.1Q tag (VLAN 7) inserted after the MAC addresses (allocates). */
export function tag8021q(f: Buffer): Buffer {
  return Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x07]), f.subarray(12)]);
}

/**
 * Hand `items` to a dataplane sink as one batch, each in its own pool slot. From the network:
 * VXLAN-encapsulated with `vni` and received from 198.18.0.2:4789. Throws when the pool has no
 * free slot, which in a fuzz loop that releases every packet means a slot leaked.
 */
export function handBatch(pool: BufferPool, sink: BatchSink, items: Uint8Array[], fromNetwork: boolean, vni: number): number {
  const b = new PacketBatch(items.length);
  for (const it of items) {
    const s = pool.acquire();
    if (s < 0) throw new Error('pool exhausted: a slot leaked');
    if (fromNetwork) {
      const d = Buffer.alloc(8 + it.length);
      encodeVxlan(d, 0, vni);
      d.set(it, 8);
      pool.fill(s, d);
      pool.setEndpoint(s, 4, Uint8Array.of(198, 18, 0, 2), 4789);
    } else pool.fill(s, it);
    b.push(s);
  }
  sink(b);
  return items.length;
}
