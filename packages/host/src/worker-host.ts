/**
 * openHost with `workers` > 1, the main thread's side (docs/multicore.md): starts the data-path
 * workers (worker-main.ts), sets the TAPs' links up once every worker holds a queue, and gives
 * the embedder the same Host: `dataplane` is a front that validates each control-plane change on
 * a never-started copy of the tables (so bad input throws here, synchronously, with the
 * dataplane's own errors) and posts it to every worker, which applies it between two batches;
 * `stats()` sums what the workers last reported, `statsAsync()` asks them.
 */
import type { Worker } from 'node:worker_threads';
import {
  BufferPool,
  createDataplane,
  spawnWorker,
  type BatchSink,
  type Dataplane,
  type FdbEntry,
  type FrameDevice,
  type PacketBatch,
  type Transport,
} from '@overlay/dataplane';
import { attachNetwork, type Host, type HostDevice, type HostStats } from './host.js';
import { WorkerStartError, WorkersUnsupportedError } from './worker-errors.js';
import { addLinkAddress, linkExists, linkMac, removeLinkAddress, setLinkMac, setLinkUp } from './link.js';
import type { HostOptions } from './options.js';
import type { FromWorker, ToWorker, WorkerInit, WorkerOp } from './worker-protocol.js';
import { sumStats } from './worker-stats.js';

/** What openHost worked out before choosing the worker path. */
export interface UnderlayInfo {
  device: string;
  family: 4 | 6;
  mtu: number;
  defaultMtu: number;
  port: number;
  batchSize: number;
}

/** How long a worker may take to open its sockets and TAP queues, or to close them. */
const WORKER_TIMEOUT_MS = 30_000;

/** The worker: worker-main.js beside this file, or its .ts source through tsx (spawnWorker). */
function spawn(init: WorkerInit): Worker {
  // node:worker_threads is loaded by the first worker: a host without workers does not hold it (docs/agent-memory.md).
  return spawnWorker(import.meta.url, './worker-main', { workerData: init });
}

/** One worker as the main thread sees it: requests by id, the last report. */
class WorkerLink {
  last: HostStats | undefined;
  exited = false;
  private nextId = 1;
  private readonly waiting = new Map<number, (m: FromWorker) => void>();
  readonly ready: Promise<Extract<FromWorker, { t: 'ready' }>>;

  constructor(
    readonly index: number,
    readonly w: Worker,
  ) {
    this.ready = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new WorkerStartError(index, 'TIMEOUT', `no answer in ${WORKER_TIMEOUT_MS} ms`)), WORKER_TIMEOUT_MS);
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          clearTimeout(t);
          this.last = m.stats;
          resolve(m);
        } else if (m.t === 'failed') {
          clearTimeout(t);
          reject(new WorkerStartError(index, m.error.code, `${m.error.name}: ${m.error.message}`));
        } else if (m.t === 'stats' && m.id === 0) this.last = m.stats;
        else if (m.t === 'warn') process.emitWarning(`data-path worker ${index}: ${m.error.code} ${m.error.message}`, 'OverlayWorkerWarning');
        else if ('id' in m) {
          const f = this.waiting.get(m.id);
          this.waiting.delete(m.id);
          f?.(m);
        }
      });
      w.on('error', (err) => {
        clearTimeout(t);
        reject(new WorkerStartError(index, 'CRASHED', err.message));
        process.emitWarning(`data-path worker ${index} failed: ${err.stack ?? err.message}`, 'OverlayWorkerWarning');
      });
      w.on('exit', () => {
        clearTimeout(t);
        this.exited = true;
        reject(new WorkerStartError(index, 'EXITED', 'exited before it was ready'));
        for (const f of this.waiting.values()) f({ t: 'closed', id: 0 });
        this.waiting.clear();
      });
    });
    this.ready.catch(() => undefined); // observed by openWorkerHost
  }

  post(m: ToWorker): void {
    if (!this.exited) this.w.postMessage(m);
  }

  /** Ask and wait for the answer with the same id (resolves undefined if the worker is gone or silent). */
  ask<T extends FromWorker>(make: (id: number) => ToWorker): Promise<T | undefined> {
    if (this.exited) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, WORKER_TIMEOUT_MS);
      this.waiting.set(id, (m) => {
        clearTimeout(t);
        resolve(m.t === 'closed' && m.id === 0 ? undefined : (m as T));
      });
      this.w.postMessage(make(id));
    });
  }

  async close(): Promise<void> {
    if (!this.exited) await this.ask((id) => ({ t: 'close', id }));
    await this.w.terminate();
  }
}

/** A device and a transport that do nothing: the never-started copy of the tables runs on them. */
function nullDevice(name: string, mtu: number): FrameDevice {
  return { name, mtu, start: (_p: BufferPool, _s: BatchSink) => undefined, write: (_p: BufferPool, _b: PacketBatch) => 0, close: async () => undefined };
}
const nullTransport = (port: number): Transport => ({ localPort: port, start: () => undefined, send: () => 0, close: async () => undefined });

/** The workers' counters summed, with each worker's beside them (a worker reports first in its `ready`). */
function aggregate(parts: ReadonlyArray<HostStats | undefined>): HostStats {
  const each = parts.filter((p): p is HostStats => p !== undefined);
  return { ...sumStats(each), workers: each };
}

export async function openWorkerHost(o: HostOptions, u: UnderlayInfo): Promise<Host> {
  const n = o.workers ?? 1;
  const mtus = o.networks.map((x) => x.mtu ?? u.defaultMtu);
  // The tables as the workers hold them, checked here first: a bad static entry throws before any thread starts.
  const shadow = createDataplane({ transport: nullTransport(u.port), pool: new BufferPool({ count: 1 }), batchSize: u.batchSize });
  o.networks.forEach((x, i) => attachNetwork(shadow, x, nullDevice(x.tap, mtus[i])));

  const links: WorkerLink[] = [];
  const added: Array<{ link: string; cidr: string }> = [];
  let devices: HostDevice[];
  let port: number;
  try {
    // Every thread loads its modules at once; worker 0 creates the TAPs and picks the ports, the others then join them.
    for (let i = 0; i < n; i++) {
      const init = { index: i, options: o, port: u.port, sourcePorts: [], taps: o.networks.map((x) => x.tap), mtus, wait: i > 0 };
      links.push(new WorkerLink(i, spawn(init)));
    }
    const first = await links[0].ready;
    port = first.port;
    for (const l of links.slice(1)) l.post({ t: 'open', port, sourcePorts: first.sourcePorts, taps: first.taps, mtus: first.mtus });
    await Promise.all(links.map((l) => l.ready));
    devices = o.networks.map((x, i) => {
      const name = first.taps[i];
      if (x.mac) setLinkMac(name, x.mac);
      for (const a of x.addresses ?? []) {
        addLinkAddress(name, a);
        added.push({ link: name, cidr: a });
      }
      setLinkUp(name);
      return { vni: x.vni, name, mac: linkMac(name), mtu: first.mtus[i], tap: undefined };
    });
  } catch (err) {
    await Promise.allSettled(links.map((l) => l.close()));
    for (const a of added) if (linkExists(a.link)) removeLinkAddress(a.link, a.cidr);
    throw err;
  }

  const each = (op: WorkerOp, args: unknown[]) => {
    for (const l of links) l.post({ t: 'op', op, args });
  };
  /** Apply on the copy (throws on bad input, nothing posted), then post to every worker. */
  const relay =
    <A extends unknown[]>(op: WorkerOp, apply: (...a: A) => void) =>
    (...a: A): void => {
      apply(...a);
      each(op, a);
    };
  const statsNow = () => aggregate(links.map((l) => l.last));
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await Promise.allSettled(links.map((l) => l.close()));
      await shadow.close();
      for (const a of added) if (linkExists(a.link)) removeLinkAddress(a.link, a.cidr);
    })());

  const dataplane: Dataplane = {
    start: () => undefined,
    addNetwork: () => {
      throw new WorkersUnsupportedError('addNetwork');
    },
    addStage: () => {
      throw new WorkersUnsupportedError('addStage');
    },
    removeNetwork: relay('removeNetwork', shadow.removeNetwork.bind(shadow)),
    removeStage: (vni, name) => {
      const had = shadow.removeStage(vni, name);
      if (had) each('removeStage', [vni, name]);
      return had;
    },
    stages: (vni) => shadow.stages(vni),
    setFdb: relay('setFdb', shadow.setFdb.bind(shadow)),
    deleteFdb: relay('deleteFdb', shadow.deleteFdb.bind(shadow)),
    setNeighbour: relay('setNeighbour', shadow.setNeighbour.bind(shadow)),
    deleteNeighbour: relay('deleteNeighbour', shadow.deleteNeighbour.bind(shadow)),
    addFloodVtep: relay('addFloodVtep', shadow.addFloodVtep.bind(shadow)),
    removeFloodVtep: relay('removeFloodVtep', shadow.removeFloodVtep.bind(shadow)),
    // Static entries; learned ones live in the worker that learned them (fdbPerWorker).
    fdb: (vni) => shadow.fdb(vni),
    stats: () => statsNow().dataplane,
    close,
    pool: shadow.pool,
  };

  return {
    dataplane,
    tunnel: undefined,
    transport: { localPort: port, address: o.underlay.address, family: u.family, counters: { snapshot: () => statsNow().transport } },
    devices,
    underlay: { device: u.device, family: u.family, mtu: u.mtu },
    workers: n,
    stats: statsNow,
    statsAsync: async () => aggregate(await Promise.all(links.map(async (l) => (await l.ask<Extract<FromWorker, { t: 'stats' }>>((id) => ({ t: 'stats', id })))?.stats ?? l.last))),
    fdbPerWorker: async (vni) => {
      shadow.fdb(vni); // UnknownNetworkError for a VNI the host does not have
      return Promise.all(links.map(async (l) => (await l.ask<Extract<FromWorker, { t: 'fdb' }>>((id) => ({ t: 'fdb', id, vni })))?.entries ?? []));
    },
    close,
  };
}
