/**
 * The L3 use of the tunnel, like a WireGuard interface: IP packets read from a TUN device are
 * routed to peers by allowed IPs and sent encrypted over the underlay transport; decrypted
 * packets whose source the sending peer is allowed to use are written to the TUN device.
 */
import { PacketBatch, BufferPool, type FrameDevice, type Transport } from '@overlay/dataplane';
import type { WireGuardDevice } from './device.js';

export interface TunnelOptions {
  /** A device in 'l3' mode. */
  device: WireGuardDevice;
  /** A TUN device (IP packets, no Ethernet header). */
  tun: FrameDevice;
  /** The underlay UDP transport. */
  transport: Transport;
  /** Default: 4096 slots of tun.mtu + 64 bytes. */
  pool?: BufferPool;
}

export interface Tunnel {
  readonly pool: BufferPool;
  start(): void;
  close(): Promise<void>;
}

export function createTunnel(o: TunnelOptions): Tunnel {
  const pool = o.pool ?? new BufferPool({ count: 4096, frameCapacity: Math.max(o.tun.mtu + 64, 1600) });
  let out = new PacketBatch(64);
  let started = false;
  return {
    pool,
    start(): void {
      if (started) return;
      started = true;
      o.device.attach(pool, o.transport);
      o.transport.start(pool, (batch) => {
        if (out.capacity < batch.count) out = new PacketBatch(batch.count);
        out.clear();
        o.device.receive(pool, batch, out);
        if (out.count === 0) return;
        let written = 0;
        try {
          written = o.tun.write(pool, out);
        } catch {
          written = 0;
        }
        o.device.countDrop('device_write_failed', out.count - written);
        for (let i = 0; i < out.count; i++) pool.release(out.slots[i]);
      });
      o.tun.start(pool, (batch) => {
        o.device.send(pool, batch);
        for (let i = 0; i < batch.count; i++) pool.release(batch.slots[i]);
      });
    },
    async close(): Promise<void> {
      await o.device.close();
      await o.tun.close();
      await o.transport.close();
    },
  };
}
