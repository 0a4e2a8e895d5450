import { ETHERNET_HEADER_LENGTH, ETHERNET_VLAN_HEADER_LENGTH, ETHERTYPE_VLAN } from './codec/ethernet.js';
import { isGroupMac } from './codec/mac.js';
import { encodeVxlan, VXLAN_HEADER_LENGTH } from './codec/vxlan.js';
import type { Core } from './core.js';
import { C, Drop } from './counters.js';
import { DuplicateStageError, InvalidConfigError } from './errors.js';
import { forward } from './inside.js';
import type { Network } from './network.js';
import type { BufferPool } from './pool.js';
import type { CounterSet } from './reasons.js';
import { PASS, REPLY, STAGE_KINDS, TAKEN, type Stage, type StageContext, type StageKind } from './stage.js';

/** What runInside/runOutside return for a frame a stage broke (counted `stage_failed`, released). */
const FAILED = 3;
export const MODE_NONE = 0;
export const MODE_GROUP = 1;
export const MODE_ALL = 2;
const modeOf = (list: StageEntry[]) => (list.length === 0 ? MODE_NONE : list.every((e) => e.groupOnly) ? MODE_GROUP : MODE_ALL);
const NAME_RE = /^[a-z][a-z0-9_]{0,62}$/;
/** Band of each kind per direction (stage.ts, "Order"). */
const BAND_INSIDE: Record<StageKind, number> = { responder: 0, filter: 1, translator: 2 };
const BAND_OUTSIDE: Record<StageKind, number> = { translator: 0, filter: 1, responder: 2 };
/** Stage objects attached to some network: one stage object serves one network. */
const attached = new WeakSet<Stage>();

class StageEntry {
  constructor(
    readonly stage: Stage,
    readonly set: CounterSet<string>,
    readonly reasonCount: number,
    readonly groupOnly: boolean,
  ) {}
}

/**
 * One network's ordered stage list and the StageContext its stages see (the chain is the
 * context: one object per network, its view fields rewritten per frame, nothing allocated).
 * Runs the list for `inside` and `outside` and carries out the verdicts. The contract is in
 * stage.ts.
 */
export class StageChain implements StageContext {
  readonly pool: BufferPool;
  readonly vni: number;
  etherType = -1;
  l3 = 0;
  group = false;
  /** Stages per direction in call order. */
  inList: StageEntry[] = [];
  outList: StageEntry[] = [];
  /**
   * What the per-frame check of each direction reads, one field: NONE (no stages: nothing to
   * do), GROUP (only groupOnly stages: run for group destinations), ALL (run for every frame).
   */
  inMode = MODE_NONE;
  outMode = MODE_NONE;
  /** Per kind, in position order. */
  private readonly bands: Record<StageKind, StageEntry[]> = { responder: [], filter: [], translator: [] };

  constructor(
    private readonly core: Core,
    private readonly net: Network,
  ) {
    this.pool = core.pool;
    this.vni = net.vni;
  }

  /** Stage names in inside order, then those only on outside. */
  names(): string[] {
    const seen = new Set<string>();
    for (const e of [...this.inList, ...this.outList]) seen.add(e.stage.name);
    return [...seen];
  }

  /** Validate and insert `stage` in its band at `position` (default: last), then attach it. */
  add(stage: Stage, position?: number): void {
    if (stage === null || typeof stage !== 'object') throw new InvalidConfigError('stage', 'must be an object');
    const { name, kind } = stage;
    if (typeof name !== 'string' || !NAME_RE.test(name)) throw new InvalidConfigError('stage.name', `must be snake_case (a-z, 0-9, _; ≤ 63), got ${String(name)}`);
    if (!STAGE_KINDS.includes(kind)) throw new InvalidConfigError('stage.kind', `must be one of ${STAGE_KINDS.join(', ')}, got ${String(kind)}`);
    const reasons = stage.reasons ?? [];
    if (!Array.isArray(reasons) || reasons.some((r) => typeof r !== 'string' || !NAME_RE.test(r)) || new Set(reasons).size !== reasons.length) {
      throw new InvalidConfigError('stage.reasons', `${name}: must be unique snake_case names`);
    }
    for (const f of ['inside', 'outside', 'attach', 'detach'] as const) {
      if (stage[f] !== undefined && typeof stage[f] !== 'function') throw new InvalidConfigError(`stage.${f}`, `${name}: must be a function`);
    }
    if (stage.inside === undefined && stage.outside === undefined) throw new InvalidConfigError('stage', `${name}: needs inside() or outside()`);
    if (stage.groupOnly !== undefined && typeof stage.groupOnly !== 'boolean') throw new InvalidConfigError('stage.groupOnly', `${name}: must be a boolean`);
    if (this.find(name) !== undefined) throw new DuplicateStageError(this.vni, name);
    if (attached.has(stage)) throw new InvalidConfigError('stage', `${name}: this stage object is already attached to a network`);
    const band = this.bands[kind];
    const at = position ?? band.length;
    if (!Number.isInteger(at) || at < 0 || at > band.length) throw new InvalidConfigError('position', `must be an integer in 0..${band.length} (place among the ${kind}s), got ${position}`);
    const entry = new StageEntry(stage, this.core.counters.stageSet(name, reasons), reasons.length, stage.groupOnly === true);
    stage.attach?.(this); // may throw: nothing has changed yet
    attached.add(stage);
    band.splice(at, 0, entry);
    this.rebuild();
  }

  /** Remove the stage called `name` and detach it. False when there is none. */
  remove(name: string): boolean {
    const e = this.find(name);
    if (e === undefined) return false;
    const band = this.bands[e.stage.kind];
    band.splice(band.indexOf(e), 1);
    this.rebuild();
    attached.delete(e.stage);
    e.stage.detach?.();
    return true;
  }

  /** Detach every stage (network removed, dataplane closed). Returns the first error a detach threw. */
  detachAll(): unknown {
    let first: unknown;
    for (const kind of STAGE_KINDS) {
      for (const e of this.bands[kind].splice(0)) {
        attached.delete(e.stage);
        try {
          e.stage.detach?.();
        } catch (err) {
          first ??= err;
        }
      }
    }
    this.rebuild();
    return first;
  }

  private find(name: string): StageEntry | undefined {
    for (const kind of STAGE_KINDS) for (const e of this.bands[kind]) if (e.stage.name === name) return e;
    return undefined;
  }

  private rebuild(): void {
    const all = [...this.bands.responder, ...this.bands.filter, ...this.bands.translator];
    const inList = all.filter((e) => e.stage.inside !== undefined).sort((a, b) => BAND_INSIDE[a.stage.kind] - BAND_INSIDE[b.stage.kind]);
    const outList = all.filter((e) => e.stage.outside !== undefined).sort((a, b) => BAND_OUTSIDE[a.stage.kind] - BAND_OUTSIDE[b.stage.kind]);
    this.inList = inList;
    this.outList = outList;
    this.inMode = modeOf(inList);
    this.outMode = modeOf(outList);
  }

  /**
   * Fill the L3 view of the frame at `off`. The pipeline has checked 14 ≤ len and that the frame
   * lies in the slot, so the header is read without a second range check.
   */
  private view(off: number, len: number, group: boolean): void {
    const d = this.pool.data;
    const type = (d[off + 12] << 8) | d[off + 13];
    if (type !== ETHERTYPE_VLAN) {
      this.etherType = type;
      this.l3 = off + ETHERNET_HEADER_LENGTH;
    } else if (len >= ETHERNET_VLAN_HEADER_LENGTH) {
      this.etherType = (d[off + 16] << 8) | d[off + 17];
      this.l3 = off + ETHERNET_VLAN_HEADER_LENGTH;
    } else {
      this.etherType = -1;
      this.l3 = off + len;
    }
    this.group = group;
  }

  /**
   * After a stage returned: the frame is still where it was, at least 14 bytes, inside the slot,
   * and — unless it goes back to the local device (`toDevice`) — at most mtu + 18 bytes.
   */
  private frameOk(slot: number, off: number, toDevice = false): boolean {
    const pool = this.pool;
    const len = pool.len[slot];
    return pool.off[slot] === off && len >= ETHERNET_HEADER_LENGTH && (toDevice || len <= this.net.maxFrame) && off + len <= pool.limit(slot);
  }

  private fail(slot: number): number {
    if (this.pool.isInUse(slot)) this.pool.release(slot);
    this.core.counters.drop(Drop.stage_failed, this.vni);
    return FAILED;
  }

  /** A negative verdict: the stage's own drop reason, if it names one. */
  private dropOrFail(e: StageEntry, v: number, slot: number): number {
    if (v < 0 && v >= -e.reasonCount && (v | 0) === v) {
      e.set.add(-1 - v, 1, this.vni);
      this.pool.release(slot);
      return v;
    }
    return this.fail(slot);
  }

  /**
   * Run the inside stages on the frame in `slot`. PASS: forward it (it may have been rewritten;
   * `pool.len` re-read by the caller). Anything else: handled here (queued, taken, or dropped).
   */
  runInside(slot: number, group: boolean): number {
    const pool = this.pool;
    const off = pool.off[slot];
    const len = pool.len[slot];
    this.view(off, len, group);
    const list = this.inList;
    for (let k = 0; k < list.length; k++) {
      const e = list[k];
      if (e.groupOnly && !this.group) continue;
      let v: number;
      try {
        v = e.stage.inside!(this, slot);
      } catch {
        return this.fail(slot);
      }
      if (v === PASS) {
        // Unchanged bounds (the common case) need no check; a translator may have changed the dst MAC.
        if ((pool.off[slot] !== off || pool.len[slot] !== len) && !this.frameOk(slot, off)) return this.fail(slot);
        this.group = isGroupMac(pool.data, off);
        continue;
      }
      if (v === REPLY) {
        if (!this.frameOk(slot, off, true)) return this.fail(slot);
        this.core.counters.c[C.insideStageReplies]++;
        this.core.pushDevice(this.net, slot);
        return REPLY;
      }
      if (v === TAKEN) {
        this.core.counters.c[C.insideStageTaken]++;
        return TAKEN;
      }
      return this.dropOrFail(e, v, slot);
    }
    return PASS;
  }

  /**
   * Run the outside stages on the decapsulated frame in `slot`. PASS: queue it for the device.
   * REPLY: re-encapsulated with this VNI and queued for the VTEP it came from.
   */
  runOutside(slot: number, group: boolean): number {
    const pool = this.pool;
    const off = pool.off[slot];
    const len = pool.len[slot];
    this.view(off, len, group);
    const list = this.outList;
    for (let k = 0; k < list.length; k++) {
      const e = list[k];
      if (e.groupOnly && !this.group) continue;
      let v: number;
      try {
        v = e.stage.outside!(this, slot);
      } catch {
        return this.fail(slot);
      }
      if (v === PASS) {
        if ((pool.off[slot] !== off || pool.len[slot] !== len) && !this.frameOk(slot, off)) return this.fail(slot);
        this.group = isGroupMac(pool.data, off);
        continue;
      }
      if (v === REPLY) {
        // The headroom holds at least the VXLAN header just stripped (off did not move).
        if (!this.frameOk(slot, off)) return this.fail(slot);
        encodeVxlan(pool.data, off - VXLAN_HEADER_LENGTH, this.vni);
        pool.off[slot] = off - VXLAN_HEADER_LENGTH;
        pool.len[slot] += VXLAN_HEADER_LENGTH;
        this.core.counters.c[C.outsideStageReplies]++;
        this.core.pushTx(slot);
        return REPLY;
      }
      if (v === TAKEN) {
        this.core.counters.c[C.outsideStageTaken]++;
        return TAKEN;
      }
      return this.dropOrFail(e, v, slot);
    }
    return PASS;
  }

  /** A slot a stage hands back: its network still exists and the frame is in bounds. */
  private accept(slot: number, headroom: number): boolean {
    const pool = this.pool;
    if (this.net.removed) {
      pool.release(slot);
      this.core.counters.drop(Drop.network_removed, this.vni);
      return false;
    }
    const off = pool.off[slot];
    const len = pool.len[slot];
    if (len >= ETHERNET_HEADER_LENGTH && len <= this.net.maxFrame && off - pool.base(slot) >= headroom && off + len <= pool.limit(slot)) return true;
    this.fail(slot);
    return false;
  }

  toDevice(slot: number): void {
    if (!this.accept(slot, 0)) return;
    const core = this.core;
    core.pushDevice(this.net, slot);
    if (core.depth === 0) core.flushDevices();
  }

  toNetwork(slot: number): void {
    if (!this.accept(slot, VXLAN_HEADER_LENGTH)) return;
    const core = this.core;
    const pool = this.pool;
    if (core.depth > 0) {
      forward(core, this.net, slot, pool.off[slot], pool.len[slot]);
      return;
    }
    core.depth++;
    try {
      core.clockRead = false;
      forward(core, this.net, slot, pool.off[slot], pool.len[slot]);
      core.flushTx();
    } finally {
      core.depth--;
    }
  }

  drop(stage: Stage, reason: number, slot: number): void {
    const e = this.find(stage?.name);
    if (e === undefined || e.stage !== stage) {
      this.fail(slot);
      return;
    }
    this.dropOrFail(e, -1 - reason, slot);
  }
}
