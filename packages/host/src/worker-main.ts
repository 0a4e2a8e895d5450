/**
 * One data-path worker of openHost with `workers` > 1 (docs/multicore.md): its own queue of
 * every TAP (IFF_MULTI_QUEUE), its own pool and dataplane, its own receive socket on the VXLAN
 * port and its own sockets on the shared source ports (WorkerTransport). Applies control-plane
 * changes from the main thread between batches, reports its counters every STATS_PUSH_MS and
 * when asked. Started by worker-host.ts; not an entry point of its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BufferPool, createDataplane, type Dataplane } from '@overlay/dataplane';
import { UdpTransport, type IoCounterSnapshot, type TapDevice } from '@overlay/native';
import { attachNetwork, hostStats, openTap } from './host.js';
import { DEFAULT_POOL_SLOTS, DEFAULT_SOCKET_BUFFER } from './options.js';
import { errorInfo, STATS_PUSH_MS, WORKER_OPS, type FromWorker, type ToWorker, type WorkerInit } from './worker-protocol.js';
import { sumStats } from './worker-stats.js';
import { SOURCE_PORTS, WorkerTransport } from './worker-transport.js';

const port = parentPort;
if (!port) throw new Error('worker-main.ts runs as a worker thread of openHost');
const post = (m: FromWorker) => port.postMessage(m);

interface Running {
  dp: Dataplane;
  transport: WorkerTransport;
  taps: TapDevice[];
}

/** Bind the sockets, open a queue of each TAP, build and start the pipeline. Closes what it opened on failure. */
function open(init: WorkerInit): Running {
  const o = init.options;
  const u = o.underlay;
  const batchSize = o.batchSize ?? 64;
  const sock = (p: number, gro: boolean) =>
    UdpTransport.bind({
      address: u.address,
      port: p,
      reuseport: true,
      batchSize,
      recvBufferBytes: u.recvBufferBytes ?? DEFAULT_SOCKET_BUFFER,
      sendBufferBytes: u.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER,
      gso: u.gso ?? true,
      gro,
    });
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    const rx = sock(init.port, u.gro ?? true);
    opened.push(rx);
    const tx: UdpTransport[] = [];
    for (let i = 0; i < SOURCE_PORTS; i++) {
      // No GRO staging on the source-port sockets: they carry little (only learning peers answer them).
      const t = sock(init.sourcePorts[i] ?? 0, false);
      opened.push(t);
      tx.push(t);
    }
    const transport = new WorkerTransport(rx, tx, batchSize);
    // Each socket keeps a batch of slots ready for receiving: the pool gets room for the source-port sockets' share.
    const pool = new BufferPool({ count: (o.poolSlots ?? DEFAULT_POOL_SLOTS) + SOURCE_PORTS * batchSize });
    const dp = createDataplane({ transport, pool, batchSize });
    opened.length = 0;
    opened.push(dp);
    const taps: TapDevice[] = [];
    o.networks.forEach((n, i) => {
      const tap = openTap(n, o, batchSize, init.mtus[i], true, init.taps[i]);
      try {
        attachNetwork(dp, n, tap);
      } catch (err) {
        // attached or not, the dataplane closes it if it holds it; close() twice is harmless
        void tap.close();
        throw err;
      }
      taps.push(tap);
    });
    dp.start();
    return { dp, transport, taps };
  } catch (err) {
    for (const c of opened) void c.close().catch(() => undefined);
    throw err;
  }
}

function stats(r: Running) {
  const t = r.transport;
  const transport = sumStats([t.rx.counters.snapshot(), ...t.tx.map((s) => s.counters.snapshot())]) as IoCounterSnapshot;
  return hostStats(r.dp, transport, undefined, r.taps);
}

function main(init: WorkerInit): void {
  let r: Running;
  try {
    r = open(init);
  } catch (err) {
    post({ t: 'failed', error: errorInfo(err) });
    port!.close();
    return;
  }
  const t = r.transport;
  post({ t: 'ready', port: t.localPort, sourcePorts: t.tx.map((s) => s.localPort), taps: r.taps.map((x) => x.name), mtus: r.taps.map((x) => x.mtu), stats: stats(r) });
  const timer = setInterval(() => post({ t: 'stats', id: 0, stats: stats(r) }), STATS_PUSH_MS);
  const ops = new Set<string>(WORKER_OPS);
  port!.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'open':
        break; // only before main() (see the end of this file)
      case 'op':
        try {
          if (!ops.has(m.op)) throw new Error(`unknown op ${m.op}`);
          (r.dp[m.op] as (...a: unknown[]) => unknown).apply(r.dp, m.args);
        } catch (err) {
          post({ t: 'warn', error: errorInfo(err) });
        }
        break;
      case 'stats':
        post({ t: 'stats', id: m.id, stats: stats(r) });
        break;
      case 'fdb':
        try {
          post({ t: 'fdb', id: m.id, entries: r.dp.fdb(m.vni) });
        } catch (err) {
          post({ t: 'warn', error: errorInfo(err) });
          post({ t: 'fdb', id: m.id, entries: [] });
        }
        break;
      case 'close':
        clearInterval(timer);
        // The dataplane closes the TAP queues (the TAP goes with its last queue) and the sockets.
        void r.dp.close().finally(() => {
          post({ t: 'closed', id: m.id });
          port!.close();
        });
        break;
    }
  });
}

const init = workerData as WorkerInit;
if (!init.wait) main(init);
else {
  // Modules are loaded; open once worker 0 has settled the ports and TAP names.
  port.once('message', (m: ToWorker) => {
    if (m.t === 'open') return main({ ...init, port: m.port, sourcePorts: m.sourcePorts, taps: m.taps, mtus: m.mtus, wait: false });
    // Worker 0 failed and the host is closing: nothing was opened here.
    if (m.t === 'close') post({ t: 'closed', id: m.id });
    else post({ t: 'failed', error: { name: 'Error', code: 'PROTOCOL', message: `expected open, got ${m.t}` } });
    port.close();
  });
}
