import { channel } from 'node:diagnostics_channel';
import { CounterSet, type CountEvent } from './reasons.js';
import type { BufferPool, PacketBatch } from './pool.js';

/**
 * Counters of a dataplane, kept in one Float64Array indexed by constants so the hot path
 * increments without allocating (a plain object field would turn into a boxed double past
 * 2^31). `stats()` copies them into a plain object.
 */

/** Every reason a packet is dropped: stable snake_case strings, append-only. */
export const DROP_REASONS = [
  'vxlan_too_short', // datagram shorter than the 8-byte VXLAN header
  'vxlan_no_i_flag', // VXLAN header without the I flag (RFC 7348: VNI not valid)
  'unknown_vni', // no network attached for the VNI
  'frame_too_big', // frame longer than the device MTU + 18 (Ethernet + 802.1Q)
  'frame_malformed', // inner frame shorter than an Ethernet header
  'no_fdb_entry', // unknown unicast destination with the 'drop' policy
  'bum_dropped', // broadcast/multicast frame with the 'drop' policy
  'no_flood_vtep', // frame to flood but the network's flood list is empty
  'no_headroom', // device handed a frame with less than 8 bytes of headroom
  'pool_exhausted', // no free slot for a head-end replica
  'device_write_failed', // the device accepted fewer frames than written
  'transport_send_failed', // the transport accepted fewer datagrams than sent
  'network_removed', // frame from a device whose network was removed
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** Index of each drop reason in `Counters.drops`. */
export const Drop = Object.fromEntries(DROP_REASONS.map((r, i) => [r, i])) as { readonly [K in DropReason]: number };

/** Indices of the packet counters in `Counters.c`. */
export const C = {
  insideFrames: 0,
  insideBytes: 1,
  arpSuppressed: 2,
  flooded: 3,
  replicas: 4,
  sent: 5,
  outsideDatagrams: 6,
  outsideBytes: 7,
  delivered: 8,
  learned: 9,
  learnRefused: 10,
} as const;

export interface DataplaneStats {
  inside: {
    /** Frames read from devices and their bytes. */
    frames: number;
    bytes: number;
    /** ARP requests answered locally from the neighbour table. */
    arpSuppressed: number;
    /** Broadcast/multicast/unknown-unicast frames sent by head-end replication. */
    flooded: number;
    /** Datagrams those floods produced (one per flood VTEP). */
    replicas: number;
    /** Datagrams the transport accepted. */
    sent: number;
  };
  outside: {
    /** Datagrams received from the transport and their bytes. */
    datagrams: number;
    bytes: number;
    /** Frames the devices accepted. */
    delivered: number;
    /** FDB entries created or moved by learning. */
    learned: number;
    /**
     * Source MACs not learned because the network holds its cap of learned entries (or the table
     * is full). The frame itself is still delivered; a rising count means a MAC flood or a cap to raise.
     */
    learnRefused: number;
  };
  drops: Record<DropReason, number>;
}

/** What `dropChannel` publishes: one event per drop site hit (count > 1 for batch refusals); scope is the VNI, -1 when not known. */
export interface DropEvent extends CountEvent {
  reason: DropReason;
}

/**
 * The dataplane's counters, in the discipline of every package (reasons.ts): packet counters in
 * `c` (indexed by `C`), drops in a `CounterSet` over `DROP_REASONS` that publishes each drop on the
 * `node:diagnostics_channel` channel 'overlay.dataplane.drop' (`dropChannel`) with the VNI as scope.
 */
export class Counters {
  readonly c = new Float64Array(Object.keys(C).length);
  readonly dropSet = new CounterSet(DROP_REASONS, 'overlay.dataplane.drop');
  readonly drops = this.dropSet.values;

  /** Count `count` drops for `reason` (an index from `Drop`). */
  drop(reason: number, vni: number, count = 1): void {
    this.dropSet.add(reason, count, vni);
  }

  snapshot(): DataplaneStats {
    const c = this.c;
    return {
      inside: { frames: c[C.insideFrames], bytes: c[C.insideBytes], arpSuppressed: c[C.arpSuppressed], flooded: c[C.flooded], replicas: c[C.replicas], sent: c[C.sent] },
      outside: { datagrams: c[C.outsideDatagrams], bytes: c[C.outsideBytes], delivered: c[C.delivered], learned: c[C.learned], learnRefused: c[C.learnRefused] },
      drops: this.dropSet.snapshot(),
    };
  }
}

/**
 * `node:diagnostics_channel` channel 'overlay.dataplane.drop': every drop, with its reason and
 * VNI, for debugging and tracing. Costs one property read per drop while nobody subscribes;
 * publishing allocates the event, so subscribe only to investigate.
 */
export const dropChannel = channel('overlay.dataplane.drop');

/**
 * After handing the `n` slots of `batch` to a device's write or a transport's send (`n` read
 * before the call, so a callee that touches the batch cannot leak slots): count the
 * `accepted` ones (clamped to 0..n; NaN counts as 0) in `c[okIndex]`, the rest as drops for
 * `reason`, then release every slot and clear the batch. Never allocates.
 */
export function settleBatch(pool: BufferPool, batch: PacketBatch, n: number, accepted: number, counters: Counters, okIndex: number, reason: number, vni: number): void {
  if (!(accepted >= 0)) accepted = 0;
  if (accepted > n) accepted = n;
  counters.c[okIndex] += accepted;
  if (accepted < n) counters.drop(reason, vni, n - accepted);
  for (let i = 0; i < n; i++) pool.release(batch.slots[i]);
  batch.clear();
}
