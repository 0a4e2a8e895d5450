/** One VTEP for the overlay tests: an 'overlay' WireGuardDevice behind createSecureTransport on a testnet address. */
import { BufferPool, PacketBatch, type Transport } from '@overlay/dataplane';
import type { createTestnet } from '@overlay/dataplane/testing';
import { WireGuardDevice, createSecureTransport, generatePrivateKey } from '../../src/index.js';

export interface VtepOptions {
  /** Timer interval; default 0 (no timers, as the fake-clock tests want). */
  tickMs?: number;
  /** Wraps the testnet transport, e.g. to drop chosen datagrams. */
  wrap?: (inner: Transport) => Transport;
}

export function vtepSide(net: ReturnType<typeof createTestnet>, address: string, o: VtepOptions = {}) {
  const dev = new WireGuardDevice({ privateKey: generatePrivateKey(), mode: 'overlay', tickMs: o.tickMs ?? 0 });
  const raw = net.transport(address, 4789);
  const t: Transport = createSecureTransport({ inner: o.wrap ? o.wrap(raw) : raw, device: dev });
  const pool = new BufferPool({ count: 512, frameCapacity: 2048 });
  const got: { from: string; port: number; text: string; at: number }[] = [];
  t.start(pool, (batch) => {
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      got.push({ from: Array.from(pool.addr.subarray(s * 16, s * 16 + 4)).join('.'), port: pool.port[s], text: pool.copyOut(s).toString(), at: performance.now() });
      pool.release(s);
    }
  });
  /** Sends one datagram to the VTEP at `to` (IPv4) through the secure transport. */
  const send = (to: string, text: string) => {
    const slot = pool.acquire();
    pool.fill(slot, Buffer.from(text));
    pool.setEndpoint(slot, 4, Buffer.from(to.split('.').map(Number)), 4789);
    const b = new PacketBatch(1);
    b.push(slot);
    const n = t.send(pool, b);
    pool.release(slot);
    return n;
  };
  return { dev, t, pool, got, send, address };
}
