import { Drop, C, Counters, settleBatch } from './counters.js';
import type { Transport } from './io.js';
import { FDB_LEARNED, MAX_LEARNED_PER_NETWORK, type Network } from './network.js';
import { PacketBatch, type BufferPool } from './pool.js';
import { VtepTable } from './vtep.js';

/** How often (in clock ms) learned FDB entries are swept for ageing. */
const SWEEP_INTERVAL_MS = 1000;
/** Resolution of the default clock (see startClock). */
const CLOCK_TICK_MS = 100;

/**
 * What `inside` and `outside` share: the pool, the transport, the networks by VNI, the VTEP
 * table, counters and the outgoing datagram batch. Single-threaded: every method runs on the
 * event loop that owns the pool; no method is re-entrant (a device's write and a transport's
 * send must not call the sinks synchronously).
 */
export class Core {
  readonly counters = new Counters();
  readonly vteps = new VtepTable();
  readonly networks = new Map<number, Network>();
  /** Datagrams waiting for transport.send. */
  readonly tx: PacketBatch;
  /** Networks with frames in their `out` batch during one outside() call. */
  readonly dirty: Network[] = [];
  dirtyCount = 0;
  /** > 0 while inside/outside (or a stage's toNetwork) runs: stage hand-backs are flushed at its end. */
  depth = 0;
  /** The clock was read for the current batch (inside's forwarding reads it at most once). */
  clockRead = false;
  /**
   * The clock reading of the current batch, in a typed array so passing it around never
   * boxes a double (a heap allocation) the way a number argument can.
   */
  readonly clock = new Float64Array(1);
  private readonly lastSweep = new Float64Array([-Infinity]);
  private ticker: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly pool: BufferPool,
    readonly transport: Transport,
    readonly now: () => number,
    batchSize: number,
  ) {
    this.tx = new PacketBatch(batchSize);
  }

  /**
   * Run a pipeline direction over a batch with `depth` raised, so a stage handing a slot back
   * during it (ctx.toDevice/toNetwork) leaves the flush to the batch's end. The try/finally lives
   * here, not around the per-packet loop, where it would cost the loop.
   */
  run(f: (core: Core, batch: PacketBatch) => void, batch: PacketBatch): void {
    this.depth++;
    try {
      f(this, batch);
    } finally {
      this.depth--;
    }
  }

  runNetwork(f: (core: Core, net: Network, batch: PacketBatch) => void, net: Network, batch: PacketBatch): void {
    this.depth++;
    try {
      f(this, net, batch);
    } finally {
      this.depth--;
    }
  }

  /** Send pending datagrams, count what the transport refused, release every slot. */
  flushTx(): void {
    const b = this.tx;
    const n = b.count;
    if (n === 0) return;
    let sent = 0;
    try {
      sent = this.transport.send(this.pool, b);
    } catch {
      sent = 0; // A throwing transport must not take the pipeline down: count it.
    }
    settleBatch(this.pool, b, n, sent, this.counters, C.sent, Drop.transport_send_failed, -1);
  }

  /** Queue a slot for the transport, flushing first when the batch is full. */
  pushTx(slot: number): void {
    if (this.tx.count === this.tx.capacity) this.flushTx();
    this.tx.slots[this.tx.count++] = slot;
  }

  /** Queue a slot for a network's device, flushing first when its batch is full. */
  pushDevice(net: Network, slot: number): void {
    const out = net.out;
    if (out.count === out.capacity) net.flushDevice(this.pool, this.counters);
    out.slots[out.count++] = slot;
    if (!net.dirty) {
      net.dirty = true;
      this.dirty[this.dirtyCount++] = net;
    }
  }

  flushDevices(): void {
    for (let i = 0; i < this.dirtyCount; i++) {
      const net = this.dirty[i];
      if (net.dirty) net.flushDevice(this.pool, this.counters);
    }
    this.dirtyCount = 0;
  }

  /**
   * Learn that MAC (hi, lo) lives behind the VTEP that sent `slot`. The common case (entry
   * exists and points there) only refreshes the timestamp; creating or moving an entry
   * interns the endpoint, which allocates, once per change.
   */
  learn(net: Network, hi: number, lo: number, slot: number): void {
    const fdb = net.fdb;
    const now = this.clock[0];
    const i = fdb.find(hi, lo);
    if (i >= 0) {
      if (fdb.flags[i] !== FDB_LEARNED) return; // Static entries are the control plane's word.
      if (this.vteps.matchesSlot(fdb.va[i], this.pool, slot, net.learnPort)) {
        fdb.stamp[i] = now;
        return;
      }
      const v = this.vteps.internSlot(this.pool, slot, net.learnPort);
      this.vteps.unref(fdb.va[i]);
      fdb.va[i] = v;
      fdb.stamp[i] = now;
      this.counters.c[C.learned]++;
      return;
    }
    if (net.learnedCount >= MAX_LEARNED_PER_NETWORK) {
      this.counters.c[C.learnRefused]++;
      return;
    }
    const j = fdb.insert(hi, lo);
    if (j < 0) {
      this.counters.c[C.learnRefused]++;
      return;
    }
    fdb.va[j] = this.vteps.internSlot(this.pool, slot, net.learnPort);
    fdb.flags[j] = FDB_LEARNED;
    fdb.stamp[j] = now;
    net.learnedCount++;
    this.counters.c[C.learned]++;
  }

  /** Read the clock for this batch into `clock[0]` (once per batch, never per packet). */
  readClock(): void {
    if (this.ticker === null) this.clock[0] = this.now();
  }

  /**
   * With the default clock, keep `clock[0]` current from a 100 ms timer instead of reading
   * Date.now() per batch: the reading is a boxed double, i.e. an allocation per batch, and
   * ageing needs no finer resolution. An injected clock is read per batch (tests).
   */
  startClock(): void {
    if (this.now !== Date.now || this.ticker !== null) return;
    this.clock[0] = Date.now();
    this.ticker = setInterval(() => (this.clock[0] = Date.now()), CLOCK_TICK_MS);
    this.ticker.unref();
  }

  stopClock(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
  }

  /** Age out learned entries, at most once per SWEEP_INTERVAL_MS of clock time. */
  maybeSweep(): void {
    const now = this.clock[0];
    if (now - this.lastSweep[0] < SWEEP_INTERVAL_MS) return;
    this.lastSweep[0] = now;
    for (const net of this.networks.values()) if (net.learnedCount > 0) net.sweep(now, this.vteps);
  }
}
