// A native handle collected without close() must let go of what it referenced (the pool's
// arrays, the counters) and close its descriptor: nothing stays pinned until the process ends.
import { describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import { UdpTransport } from '@overlay/native';
import { LOOP4 } from './helpers/udp.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

/** Bind a socket, register a pool with it by sending once, and forget both. Returns weak refs. */
function abandon(): { pool: WeakRef<Int32Array>; counters: WeakRef<Float64Array>; port: number } {
  const pool = new BufferPool({ count: 8 });
  const t = UdpTransport.bind({ address: '127.0.0.1', port: 0 });
  const s = pool.acquire();
  pool.fill(s, Buffer.from('x'));
  pool.setEndpoint(s, 4, LOOP4, 9); // discard port; the datagram only registers the pool
  const b = new PacketBatch(1);
  b.push(s);
  t.send(pool, b);
  return { pool: new WeakRef(pool.off), counters: new WeakRef(t.counters.values), port: t.localPort };
}

describe('native handle finalizer', () => {
  it('releases the pool and counter arrays of a handle collected without close()', async () => {
    const refs: ReturnType<typeof abandon>[] = [];
    for (let i = 0; i < 4; i++) refs.push(abandon());
    // Finalizers run from the event loop after the GC pass: collect, yield, collect again. (A
    // deref() keeps its target alive until the current job ends, so check only after yielding.)
    const gone = () => refs.every((r) => r.pool.deref() === undefined && r.counters.deref() === undefined);
    for (let i = 0; i < 20; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
      if (gone()) break;
      await new Promise((r) => setTimeout(r, 0));
    }
    expect(JSON.stringify(refs.map((r) => [r.pool.deref() === undefined, r.counters.deref() === undefined]))).toBe(JSON.stringify(refs.map(() => [true, true])));
    // The descriptors were closed too: each port can be bound again.
    for (const r of refs) {
      const again = UdpTransport.bind({ address: '127.0.0.1', port: r.port });
      await again.close();
    }
  });
});
