import type { BufferPool } from './pool.js';

/**
 * The stage seam: per-network L3/L4 work between decode and forwarding, in both directions.
 *
 * ## Where stages run
 *
 * `inside` (device → network): after the frame checks (`frame_too_big`, `frame_malformed`,
 * `no_headroom`) and BEFORE the FDB lookup, so a translator that rewrites the destination MAC is
 * forwarded per the rewritten MAC. `outside` (network → device): after the VXLAN checks, the VNI
 * demux, decapsulation, the inner frame checks and source-MAC learning (learning records where a
 * MAC lives on the underlay, whatever a stage then does with the frame), before the frame is
 * queued for the device.
 *
 * ## Order
 *
 * Each network has one ordered list. A stage's `kind` fixes its band, `position` (see
 * `Dataplane.addStage`) its place within the band, insertion order otherwise:
 *
 * - inside: responders → filters → translators. Responders answer things the network need not
 *   carry (ARP, ND, DNS): an answer never leaves the host, so policy has nothing to judge, and a
 *   responder can answer for a virtual address (a VIP's ARP) before a translator would rewrite
 *   it. Filters come before translators so they judge the addresses the local workload used.
 * - outside: translators → filters → responders. Translators undo on the way in what they did
 *   on the way out (reverse NAT), so filters again see the addresses as the local workload sees
 *   them: one policy rule is written once, in the workload's terms, for both directions.
 *
 * ## Per frame
 *
 * The pipeline calls `inside(ctx, slot)` / `outside(ctx, slot)` with the slot that holds the
 * frame: bytes `pool.data[pool.off[slot] .. pool.off[slot] + pool.len[slot])`, an Ethernet frame
 * (≥ 14 bytes, ≤ the device MTU + 18), optionally 802.1Q-tagged. The pipeline computes an L3
 * view once per frame, only when the network has stages, into the reusable `ctx` (never a new
 * object): `ctx.etherType` (after one 802.1Q tag; -1 for a truncated tag), `ctx.l3` (absolute
 * offset in `pool.data` of the L3 header), `ctx.group` (destination I/G bit). The view is valid
 * during the call only. A stage with `groupOnly: true` is called only for group destinations
 * (broadcast/multicast, e.g. ARP requests, ND solicitations), so unicast traffic pays nothing
 * for it.
 *
 * The stage returns a verdict number:
 *
 * - `PASS`: continue with the next stage, then forwarding. The frame may have been rewritten in
 *   place (a translator: MACs, addresses, ports, checksums).
 * - `REPLY`: the frame was rewritten in place into an answer. inside: the pipeline writes it to
 *   this network's device (nothing crosses the underlay). outside: the pipeline re-encapsulates
 *   it with the same VNI and sends it to the VTEP it came from (the slot still holds that source
 *   endpoint in `pool.family/addr/port`).
 * - `TAKEN`: the stage took ownership of the slot. It must later hand it to `ctx.toDevice(slot)`
 *   or `ctx.toNetwork(slot)`, or drop it with `ctx.drop(stage, reason, slot)`, or release it
 *   with `pool.release(slot)` — exactly once. (A DNS responder forwarding a query upstream and
 *   answering when the reply comes back.) Holding slots starves the pool: bound what you hold.
 * - `dropVerdict(i)` (a negative number): drop, counted under the stage's own reason
 *   `reasons[i]`. The pipeline releases the slot.
 *
 * Anything else — a throw, an unknown verdict, a drop index outside `reasons`, or a frame left
 * out of bounds — releases the slot and counts `stage_failed` in the dataplane's drop list: a
 * stage bug never takes the pipeline down nor leaks a slot. A stage that throws must not have
 * taken or released the slot.
 *
 * ## In-place rewrite rules
 *
 * A stage may rewrite bytes in `[pool.off[slot], pool.limit(slot))` and set `pool.len[slot]`.
 * It must not move `pool.off[slot]` and must not write before it: the headroom belongs to the
 * pipeline, which writes the VXLAN header there (inside, and outside REPLY). Growing is bounded
 * by the slot's tailroom: `pool.off[slot] + newLen <= pool.limit(slot)` — check it before
 * writing (the ND responder does: an advertisement is longer than a bare solicitation). The
 * result must stay a frame of 14 .. device MTU + 18 bytes. A frame that breaks these rules
 * after the stage returns PASS or REPLY is dropped as `stage_failed`. The L2 header length (tag
 * or not) must not change during PASS; later stages' `ctx.l3` would be stale.
 *
 * ## Counting
 *
 * Each drop reason a stage declares (`reasons`, stable snake_case, append-only like every
 * counter list) is counted in `stats().stages[stage.name][reason]` — summed over every network
 * that has a stage of that name — and published on the dataplane drop channel
 * (`overlay.dataplane.drop`) as reason `'<stage>.<reason>'` with the VNI as scope. Stages with
 * the same name must declare the same reasons. REPLY and TAKEN verdicts are counted in
 * `stats().inside|outside.stageReplies|stageTaken`; a stage keeps any further counters of its own.
 *
 * ## Context, re-entrancy, threading
 *
 * Single-threaded: every call happens on the event loop that owns the pool. `attach(ctx)` runs
 * when the stage is added to a network (once: one stage object serves one network), `detach()`
 * when it is removed, its network removed, or the dataplane closed; on detach, give back every
 * slot you hold. `ctx` is the network's, the same object for every stage and frame of it.
 *
 * `ctx.toDevice(slot)` queues a frame the stage owns for this network's device;
 * `ctx.toNetwork(slot)` forwards one into the overlay (FDB lookup, encapsulation, flooding per
 * policy, no stages run on it). Both take ownership and may be called at any time the stage
 * owns a slot: from inside a stage call (for a slot other than the one being judged — that one
 * is answered by the verdict), the batch is flushed when the pipeline's batch ends; from a
 * timer or I/O callback, they flush at once. Never call them (nor any dataplane method) from
 * within a device's `write` or a transport's `send`. From inside a stage call, do not call the
 * dataplane's control methods for the same network's stage list (`addStage`/`removeStage`);
 * FDB and neighbour changes are fine.
 *
 * The hot path allocates nothing per frame; a stage should not either (bench/micro-dataplane.ts
 * shows how to prove it).
 */
export interface Stage {
  /** Unique within a network; stable snake_case (it names counters). */
  readonly name: string;
  readonly kind: StageKind;
  /** This stage's drop reasons, stable snake_case, append-only. `dropVerdict(i)` names `reasons[i]`. */
  readonly reasons?: readonly string[];
  /** Called only for frames to a group (broadcast/multicast) MAC. Default false: every frame. */
  readonly groupOnly?: boolean;
  /** device → network. Absent: the stage does not see this direction. */
  inside?(ctx: StageContext, slot: number): number;
  /** network → device. Absent: the stage does not see this direction. */
  outside?(ctx: StageContext, slot: number): number;
  attach?(ctx: StageContext): void;
  detach?(): void;
}

export type StageKind = 'responder' | 'filter' | 'translator';

/** One per network, reused for every frame; see the contract above. */
export interface StageContext {
  readonly pool: BufferPool;
  readonly vni: number;
  /** EtherType after an optional 802.1Q tag; -1 when the tag is truncated. Valid during a call. */
  readonly etherType: number;
  /** Absolute offset in `pool.data` of the L3 header. Valid during a call. */
  readonly l3: number;
  /** The destination MAC is a group address. Valid during a call. */
  readonly group: boolean;
  /** Queue a frame the stage owns for this network's device (takes ownership). */
  toDevice(slot: number): void;
  /** Forward a frame the stage owns into the overlay, as if it came from the device past the stages (takes ownership). */
  toNetwork(slot: number): void;
  /** Drop a slot the stage owns (after TAKEN), counting `stage.reasons[reason]`; releases it. */
  drop(stage: Stage, reason: number, slot: number): void;
}

/** Continue with the next stage, then forwarding. */
export const PASS = 0;
/** The frame was rewritten into an answer: back to the device (inside) or the source VTEP (outside). */
export const REPLY = 1;
/** The stage owns the slot now. */
export const TAKEN = 2;

/** The verdict that drops the frame counting the stage's `reasons[reason]`. */
export function dropVerdict(reason: number): number {
  return -1 - reason;
}

/** Index into `reasons` of a drop verdict (< 0). */
export function dropReasonOf(verdict: number): number {
  return -1 - verdict;
}

export const STAGE_KINDS: readonly StageKind[] = ['responder', 'filter', 'translator'];
