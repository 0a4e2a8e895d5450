import { isValidVni } from './codec/vxlan.js';
import { Drop, type Counters, C, settleBatch } from './counters.js';
import { InvalidConfigError } from './errors.js';
import type { BatchSink, FrameDevice } from './io.js';
import { PacketBatch, type BufferPool } from './pool.js';
import { Ipv6Neighbours } from './neighbours.js';
import { PairTable } from './table.js';
import type { StageChain } from './stage-chain.js';
import type { Stage } from './stage.js';
import type { VtepTable } from './vtep.js';

export interface NetworkOptions {
  /** VXLAN network identifier, 0..2^24-1. */
  vni: number;
  /** Where this network's inner frames come from and go to. Owned by the dataplane from now on. */
  device: FrameDevice;
  /** BUM policy: head-end replication to the flood list, or drop. Default 'flood'. */
  unknownUnicast?: 'flood' | 'drop';
  /** Learn inner source MAC → outer source VTEP on receive. Default false. */
  learning?: boolean;
  /**
   * UDP port of learned VTEPs: 'source' (default) takes the datagram's source port, right for
   * peers like ours that send from their VXLAN port; a number (e.g. 4789) suits peers that send
   * from varying source ports, as the Linux kernel's VXLAN does (RFC 7348 §5 suggests a
   * flow-hashed source port).
   */
  learnPort?: 'source' | number;
  /** Learned entries age out after this long without traffic. Default 300 000 ms. */
  ageingMs?: number;
  /**
   * Answer ARP requests and IPv6 neighbour solicitations for known neighbours locally: installs
   * the responder stages 'arp' and 'nd' (stages/arp.ts, stages/nd.ts) first. Default true.
   */
  arpSuppression?: boolean;
  /** Stages for this network (stage.ts), added in this order after the ARP/ND responders. */
  stages?: readonly Stage[];
  /**
   * VXLAN Group Policy (GBP): send the sender's Group Policy ID (a stage sets `pool.group`, e.g.
   * the policy filter) in the header, and take the ID of received headers into `pool.group`.
   * Every VTEP of the network must speak GBP (ours, or the kernel's `vxlan … gbp`): the kernel
   * without `gbp` drops headers with the G flag. Trust a received ID only on an authenticated
   * underlay (the WireGuard tunnel). Default false: received IDs are ignored.
   */
  gbp?: boolean;
}

/** FDB entry flags. */
export const FDB_STATIC = 1;
export const FDB_LEARNED = 2;
/** Bound on learned MACs per network, so a flood of forged source MACs cannot grow memory. */
export const MAX_LEARNED_PER_NETWORK = 65_536;
const MAX_FDB = 1 << 20;

/**
 * State of one attached network (VNI): its device, FDB, neighbour table, flood list and the
 * batch of frames on their way to the device. Owned by one dataplane, single-threaded.
 */
export class Network {
  readonly vni: number;
  readonly device: FrameDevice;
  /** Largest frame accepted: device MTU + Ethernet header + one 802.1Q tag. */
  readonly maxFrame: number;
  readonly flood: boolean;
  readonly learning: boolean;
  /** VXLAN-GBP on this network (NetworkOptions.gbp). */
  readonly gbp: boolean;
  readonly ageingMs: number;
  readonly arpSuppression: boolean;
  /** 0: the source port; else the fixed port learned VTEPs get. */
  readonly learnPort: number;
  /** MAC (hi16, lo32) → va: VTEP index; flags FDB_STATIC/FDB_LEARNED; stamp: last seen (learned). */
  readonly fdb = new PairTable(MAX_FDB);
  /** IPv4 (0, ip32) → MAC (va: hi16, vb: lo32). */
  readonly neighbours = new PairTable(MAX_FDB);
  /** IPv6 → MAC, for ND suppression. */
  readonly neighbours6 = new Ipv6Neighbours(MAX_FDB);
  /** Head-end replication list: VTEP indices. */
  readonly floodList: number[] = [];
  learnedCount = 0;
  /** Frames waiting for device.write. */
  readonly out: PacketBatch;
  dirty = false;
  removed = false;
  /** The device's sink, bound once. */
  sink: BatchSink = () => {};
  /** The network's stage list (set by the dataplane right after construction). */
  chain!: StageChain;

  constructor(o: NetworkOptions, batchSize: number) {
    if (o === null || typeof o !== 'object') throw new InvalidConfigError('network', 'must be an object');
    if (!isValidVni(o.vni)) throw new InvalidConfigError('vni', `must be an integer in 0..16777215, got ${o.vni}`);
    const d = o.device;
    if (!d || typeof d.start !== 'function' || typeof d.write !== 'function') throw new InvalidConfigError('device', 'must implement FrameDevice');
    if (!Number.isInteger(d.mtu) || d.mtu < 68 || d.mtu > 65535) throw new InvalidConfigError('device.mtu', `must be an integer in 68..65535, got ${d.mtu}`);
    const policy = o.unknownUnicast ?? 'flood';
    if (policy !== 'flood' && policy !== 'drop') throw new InvalidConfigError('unknownUnicast', `must be 'flood' or 'drop', got ${String(policy)}`);
    const ageing = o.ageingMs ?? 300_000;
    if (typeof ageing !== 'number' || !(ageing > 0)) throw new InvalidConfigError('ageingMs', `must be a positive number, got ${ageing}`);
    const lp = o.learnPort ?? 'source';
    if (lp !== 'source' && (!Number.isInteger(lp) || lp < 1 || lp > 65535)) throw new InvalidConfigError('learnPort', `must be 'source' or a port 1..65535, got ${String(lp)}`);
    if (o.stages !== undefined && !Array.isArray(o.stages)) throw new InvalidConfigError('stages', 'must be an array of stages');
    this.vni = o.vni;
    this.learnPort = lp === 'source' ? 0 : lp;
    this.device = d;
    this.maxFrame = d.mtu + 18;
    this.flood = policy === 'flood';
    this.learning = o.learning ?? false;
    this.gbp = o.gbp ?? false;
    this.ageingMs = ageing;
    this.arpSuppression = o.arpSuppression ?? true;
    this.out = new PacketBatch(batchSize);
  }

  /** Write pending frames to the device, count what it refused, release every slot. */
  flushDevice(pool: BufferPool, counters: Counters): void {
    const b = this.out;
    const n = b.count;
    this.dirty = false;
    if (n === 0) return;
    let written = 0;
    try {
      written = this.device.write(pool, b);
    } catch {
      written = 0; // A throwing device must not take the pipeline down: count it.
    }
    settleBatch(pool, b, n, written, counters, C.delivered, Drop.device_write_failed, this.vni);
  }

  /** Remove FDB entry `i` (static or learned), releasing its VTEP reference. Never allocates. */
  removeFdbAt(i: number, vteps: VtepTable): void {
    vteps.unref(this.fdb.va[i]);
    if (this.fdb.flags[i] === FDB_LEARNED) this.learnedCount--;
    this.fdb.removeAt(i);
  }

  /** Drop learned entries idle longer than ageingMs. */
  sweep(now: number, vteps: VtepTable): void {
    const t = this.fdb;
    for (let i = 0; i < t.capacity; ) {
      if (t.used[i] === 1 && t.flags[i] === FDB_LEARNED && now - t.stamp[i] > this.ageingMs) {
        this.removeFdbAt(i, vteps); // Backward shift may move another entry into i: look at i again.
        continue;
      }
      i++;
    }
  }

  /** Release every VTEP reference this network holds (on removal). */
  releaseVteps(vteps: VtepTable): void {
    const t = this.fdb;
    for (let i = 0; i < t.capacity; i++) if (t.used[i] === 1) vteps.unref(t.va[i]);
    for (const v of this.floodList) vteps.unref(v);
    this.floodList.length = 0;
  }
}
