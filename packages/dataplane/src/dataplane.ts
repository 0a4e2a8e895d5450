import { toIpBytes, type IpInput } from './codec/address.js';
import { readI32 } from './codec/bytes.js';
import { describeBytes, formatMac, macHi, macJoin, macLo, toMac, type MacInput } from './codec/mac.js';
import { Core } from './core.js';
import type { DataplaneStats } from './counters.js';
import { ClosedError, DuplicateNetworkError, InvalidAddressError, InvalidConfigError, UnknownNetworkError } from './errors.js';
import { inside } from './inside.js';
import type { Transport } from './io.js';
import { FDB_LEARNED, FDB_STATIC, Network, type NetworkOptions } from './network.js';
import { outside } from './outside.js';
import { BufferPool } from './pool.js';
import type { Stage } from './stage.js';
import { StageChain } from './stage-chain.js';
import { ArpResponder } from './stages/arp.js';
import { NdResponder } from './stages/nd.js';
import type { Vtep } from './vtep.js';

export interface DataplaneOptions {
  /** The underlay. Owned by the dataplane: close() closes it. */
  transport: Transport;
  networks?: NetworkOptions[];
  /** Default: new BufferPool({ count: 4096 }). Shared by the transport and every device. */
  pool?: BufferPool;
  /** Datagrams per transport.send and frames per device.write. Default 64. */
  batchSize?: number;
  /**
   * Millisecond clock, injectable for ageing tests: read once per batch that needs it. The
   * default (Date.now) is sampled every 100 ms by a timer instead, so the hot path never
   * allocates for it.
   */
  now?: () => number;
}

/** One FDB entry as reported by `fdb()`. */
export interface FdbEntry {
  mac: string;
  vtep: Required<Vtep>;
  kind: 'static' | 'learned';
}

/**
 * A VXLAN data plane: networks (VNIs) each attached to a frame device, one underlay transport.
 * Control methods (setFdb, addNetwork, ...) are synchronous and may be called at any time,
 * before or after start(), on the event loop that owns the pool. Control-plane inputs are
 * validated: bad values throw InvalidConfigError / InvalidAddressError / UnknownNetworkError.
 */
export interface Dataplane {
  /** Start the transport and every attached device. Idempotent. */
  start(): void;
  /** Attach a network; its device is started now if the dataplane is running. */
  addNetwork(o: NetworkOptions): void;
  /** Detach a network: its FDB, neighbours and flood list are dropped, its stages detached and its device closed. */
  removeNetwork(vni: number): void;
  /**
   * Add a stage to the network's list (contract in stage.ts). Its `kind` fixes its band —
   * inside: responders, filters, translators; outside: translators, filters, responders —
   * and `position` its place among the stages of its kind (0 = first; default last). Throws
   * DuplicateStageError for a name the network has, InvalidConfigError for a malformed stage,
   * a bad position, or a stage object attached elsewhere. Not from within a stage call of the
   * same network.
   */
  addStage(vni: number, stage: Stage, options?: { position?: number }): void;
  /** Remove the network's stage called `name` and detach it; false when there is none. */
  removeStage(vni: number, name: string): boolean;
  /** Names of the network's stages, in inside order (then outside-only ones). */
  stages(vni: number): string[];
  /**
   * Static FDB entry (replaces a learned one). `mac` as text 'aa:bb:cc:dd:ee:ff', a 48-bit
   * number, or 6 bytes; a group (multicast) MAC is refused.
   */
  setFdb(vni: number, mac: MacInput, vtep: Vtep): void;
  deleteFdb(vni: number, mac: MacInput): void;
  /**
   * Suppression entry: ARP requests (IPv4) or neighbour solicitations (IPv6) for `ip` are
   * answered locally with `mac`. `ip` as text or 4/16 bytes (the family follows the length).
   */
  setNeighbour(vni: number, ip: IpInput, mac: MacInput): void;
  deleteNeighbour(vni: number, ip: IpInput): void;
  /** Add a VTEP to the network's head-end replication list (idempotent). */
  addFloodVtep(vni: number, vtep: Vtep): void;
  removeFloodVtep(vni: number, vtep: Vtep): void;
  /** Current FDB of a network (static and unexpired learned entries). Allocates. */
  fdb(vni: number): FdbEntry[];
  /** Copy of the counters, drops by reason. */
  stats(): DataplaneStats;
  /** Close every device and the transport. Further calls throw ClosedError. */
  close(): Promise<void>;
  readonly pool: BufferPool;
}

export function createDataplane(o: DataplaneOptions): Dataplane {
  if (o === null || typeof o !== 'object') throw new InvalidConfigError('options', 'must be an object');
  const t = o.transport;
  if (!t || typeof t.start !== 'function' || typeof t.send !== 'function') throw new InvalidConfigError('transport', 'must implement Transport');
  const batchSize = o.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) throw new InvalidConfigError('batchSize', `must be an integer in 1..4096, got ${batchSize}`);
  if (o.now !== undefined && typeof o.now !== 'function') throw new InvalidConfigError('now', 'must be a function returning milliseconds');
  if (o.pool !== undefined && !(o.pool instanceof BufferPool)) throw new InvalidConfigError('pool', 'must be a BufferPool');
  const pool = o.pool ?? new BufferPool({ count: 4096 });
  const dp = new DataplaneImpl(new Core(pool, t, o.now ?? Date.now, batchSize), batchSize);
  for (const n of o.networks ?? []) dp.addNetwork(n);
  return dp;
}

class DataplaneImpl implements Dataplane {
  private started = false;
  private closed = false;

  constructor(
    private readonly core: Core,
    private readonly batchSize: number,
  ) {}

  get pool(): BufferPool {
    return this.core.pool;
  }

  start(): void {
    this.open();
    if (this.started) return;
    this.started = true;
    const core = this.core;
    core.startClock();
    core.transport.start(core.pool, (batch) => core.run(outside, batch));
    for (const net of core.networks.values()) net.device.start(core.pool, net.sink);
  }

  addNetwork(o: NetworkOptions): void {
    this.open();
    const net = new Network(o, this.batchSize);
    const core = this.core;
    if (core.networks.has(net.vni)) throw new DuplicateNetworkError(net.vni);
    net.sink = (batch) => core.runNetwork(inside, net, batch);
    net.chain = new StageChain(core, net);
    try {
      if (net.arpSuppression) {
        net.chain.add(new ArpResponder(net, core.counters));
        net.chain.add(new NdResponder(net, core.counters));
      }
      for (const s of o.stages ?? []) net.chain.add(s);
    } catch (err) {
      net.chain.detachAll();
      throw err;
    }
    core.networks.set(net.vni, net);
    if (this.started) net.device.start(core.pool, net.sink);
  }

  removeNetwork(vni: number): void {
    this.open();
    const net = this.net(vni);
    const core = this.core;
    net.flushDevice(core.pool, core.counters);
    net.removed = true;
    core.networks.delete(vni);
    net.releaseVteps(core.vteps);
    void net.device.close().catch(() => {});
    const failed = net.chain.detachAll();
    if (failed !== undefined) throw failed;
  }

  addStage(vni: number, stage: Stage, options?: { position?: number }): void {
    this.open();
    this.net(vni).chain.add(stage, options?.position);
  }

  removeStage(vni: number, name: string): boolean {
    this.open();
    return this.net(vni).chain.remove(name);
  }

  stages(vni: number): string[] {
    this.open();
    return this.net(vni).chain.names();
  }

  setFdb(vni: number, mac: MacInput, vtep: Vtep): void {
    this.open();
    const net = this.net(vni);
    const m = toMac(mac);
    if (m % 2 ** 41 >= 2 ** 40) throw new InvalidAddressError('unicast MAC address (group bit set)', typeof mac === 'string' ? mac : mac instanceof Uint8Array ? describeBytes(mac) : formatMac(m));
    const v = this.core.vteps.intern(vtep);
    const i = net.fdb.insert(macHi(m), macLo(m));
    if (i < 0) {
      this.core.vteps.unref(v);
      throw new InvalidConfigError('fdb', `network ${vni} FDB is full`);
    }
    if (net.fdb.flags[i] !== 0) this.core.vteps.unref(net.fdb.va[i]);
    if (net.fdb.flags[i] === FDB_LEARNED) net.learnedCount--;
    net.fdb.va[i] = v;
    net.fdb.flags[i] = FDB_STATIC;
  }

  deleteFdb(vni: number, mac: MacInput): void {
    this.open();
    const net = this.net(vni);
    const m = toMac(mac);
    const i = net.fdb.find(macHi(m), macLo(m));
    if (i >= 0) net.removeFdbAt(i, this.core.vteps);
  }

  setNeighbour(vni: number, ip: IpInput, mac: MacInput): void {
    this.open();
    const net = this.net(vni);
    const addr = toIpBytes(ip);
    const m = toMac(mac);
    if (addr.family === 6) {
      if (!net.neighbours6.set(addr, macHi(m), macLo(m))) throw new InvalidConfigError('neighbours', `network ${vni} IPv6 neighbour table is full`);
      return;
    }
    const i = net.neighbours.insert(0, readI32(addr.bytes, 0));
    if (i < 0) throw new InvalidConfigError('neighbours', `network ${vni} neighbour table is full`);
    net.neighbours.va[i] = macHi(m);
    net.neighbours.vb[i] = macLo(m);
  }

  deleteNeighbour(vni: number, ip: IpInput): void {
    this.open();
    const net = this.net(vni);
    const addr = toIpBytes(ip);
    if (addr.family === 6) net.neighbours6.delete(addr);
    else net.neighbours.remove(0, readI32(addr.bytes, 0));
  }

  addFloodVtep(vni: number, vtep: Vtep): void {
    this.open();
    const net = this.net(vni);
    const v = this.core.vteps.intern(vtep);
    if (net.floodList.includes(v)) {
      this.core.vteps.unref(v);
      return;
    }
    net.floodList.push(v);
  }

  removeFloodVtep(vni: number, vtep: Vtep): void {
    this.open();
    const net = this.net(vni);
    const v = this.core.vteps.lookup(vtep); // validates: throws InvalidConfigError
    const at = v < 0 ? -1 : net.floodList.indexOf(v);
    if (at < 0) return;
    net.floodList.splice(at, 1);
    this.core.vteps.unref(v);
  }

  fdb(vni: number): FdbEntry[] {
    this.open();
    const net = this.net(vni);
    const core = this.core;
    const now = core.now();
    net.sweep(now, core.vteps);
    const t = net.fdb;
    const out: FdbEntry[] = [];
    for (let i = 0; i < t.capacity; i++) {
      if (t.used[i] === 0) continue;
      out.push({ mac: formatMac(macJoin(t.ka[i], t.kb[i])), vtep: core.vteps.toVtep(t.va[i]), kind: t.flags[i] === FDB_STATIC ? 'static' : 'learned' });
    }
    return out;
  }

  stats(): DataplaneStats {
    return this.core.counters.snapshot();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const core = this.core;
    core.stopClock();
    const closing: Promise<void>[] = [core.transport.close()];
    let detachFailed: unknown;
    for (const net of core.networks.values()) {
      net.removed = true;
      closing.push(net.device.close());
      detachFailed ??= net.chain.detachAll();
    }
    core.networks.clear();
    if (detachFailed !== undefined) closing.push(Promise.reject(detachFailed));
    const results = await Promise.allSettled(closing);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private open(): void {
    if (this.closed) throw new ClosedError('dataplane');
  }

  private net(vni: number): Network {
    const net = this.core.networks.get(vni);
    if (!net) throw new UnknownNetworkError(vni);
    return net;
  }
}
