import { channel } from 'node:diagnostics_channel';
import { InvalidConfigError } from './errors.js';
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
  'stage_failed', // a stage threw, returned an unknown verdict, or left its frame out of bounds (stage.ts)
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
  insideStageReplies: 11,
  insideStageTaken: 12,
  outsideStageReplies: 13,
  outsideStageTaken: 14,
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
    /** Frames a stage answered (REPLY): written back to the device. ARP/ND suppression included. */
    stageReplies: number;
    /** Frames a stage took ownership of (TAKEN). */
    stageTaken: number;
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
    /** Frames a stage answered (REPLY): re-encapsulated and sent back to the source VTEP. */
    stageReplies: number;
    /** Frames a stage took ownership of (TAKEN). */
    stageTaken: number;
  };
  drops: Record<DropReason, number>;
  /** Drops by stage name and the stage's own reason, summed over networks (stage.ts). */
  stages: Record<string, Record<string, number>>;
}

/** What `dropChannel` publishes: one event per drop site hit (count > 1 for batch refusals); scope is the VNI, -1 when not known. */
export interface DropEvent extends CountEvent {
  /** A dataplane reason, or `'<stage>.<reason>'` for a stage's own drop. */
  reason: DropReason | `${string}.${string}`;
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

  /** Stage drop counters by stage name: names `'<stage>.<reason>'`, kept after the stage is removed. */
  private readonly stageSets = new Map<string, { reasons: readonly string[]; set: CounterSet<string> }>();

  /** Count `count` drops for `reason` (an index from `Drop`). */
  drop(reason: number, vni: number, count = 1): void {
    this.dropSet.add(reason, count, vni);
  }

  /**
   * The drop counters of stages named `name` (one set for every network's stage of that name),
   * created on first use. Throws InvalidConfigError when `reasons` differ from the set's.
   */
  stageSet(name: string, reasons: readonly string[]): CounterSet<string> {
    const have = this.stageSets.get(name);
    if (have !== undefined) {
      if (have.reasons.length !== reasons.length || have.reasons.some((r, i) => r !== reasons[i])) {
        throw new InvalidConfigError('stage.reasons', `stage ${name} was registered with reasons [${have.reasons.join(', ')}]; a stage of the same name must declare the same`);
      }
      return have.set;
    }
    const set = new CounterSet(reasons.map((r) => `${name}.${r}`), 'overlay.dataplane.drop');
    this.stageSets.set(name, { reasons: [...reasons], set });
    return set;
  }

  snapshot(): DataplaneStats {
    const c = this.c;
    const stages: Record<string, Record<string, number>> = {};
    for (const [name, { reasons, set }] of this.stageSets) {
      const r: Record<string, number> = {};
      for (let i = 0; i < reasons.length; i++) r[reasons[i]] = set.values[i];
      stages[name] = r;
    }
    return {
      inside: { frames: c[C.insideFrames], bytes: c[C.insideBytes], arpSuppressed: c[C.arpSuppressed], flooded: c[C.flooded], replicas: c[C.replicas], sent: c[C.sent], stageReplies: c[C.insideStageReplies], stageTaken: c[C.insideStageTaken] },
      outside: { datagrams: c[C.outsideDatagrams], bytes: c[C.outsideBytes], delivered: c[C.delivered], learned: c[C.learned], learnRefused: c[C.learnRefused], stageReplies: c[C.outsideStageReplies], stageTaken: c[C.outsideStageTaken] },
      drops: this.dropSet.snapshot(),
      stages,
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
