/**
 * The overlay's use of the tunnel: a Transport that encrypts every datagram for the peer whose
 * configured endpoint is the datagram's destination (the remote VTEP) and decrypts what comes
 * back, so the dataplane runs encrypted without knowing about crypto. Handshakes, cookies and
 * keepalives are handled inside; a datagram sent while its peer's handshake is pending is held
 * (bounded per peer, overflow counted as `queue_full`).
 */
import { InvalidConfigError, PacketBatch, type BatchSink, type BufferPool, type Transport } from '@overlay/dataplane';
import type { WireGuardDevice } from './device.js';
import { DATA_HEADER_LEN } from './messages.js';
import { TAG_LEN } from './primitives.js';

/**
 * Bytes the secure transport adds to every datagram: the 16-byte transport-data header and the
 * 16-byte tag (overlay mode does not pad). Lower the overlay MTU by this much.
 */
export const SECURE_TRANSPORT_OVERHEAD = DATA_HEADER_LEN + TAG_LEN;

export interface SecureTransportOptions {
  inner: Transport;
  /** A device in 'overlay' mode whose peers' endpoints are the VTEP addresses. */
  device: WireGuardDevice;
}

export function createSecureTransport(o: SecureTransportOptions): Transport {
  const { inner, device } = o;
  if (device.mode !== 'overlay') throw new InvalidConfigError('device', "createSecureTransport needs a device in 'overlay' mode");
  let pool: BufferPool | null = null;
  let out = new PacketBatch(64);
  return {
    get localPort() {
      return inner.localPort;
    },
    start(p: BufferPool, sink: BatchSink): void {
      pool = p;
      device.attach(p, inner);
      inner.start(p, (batch) => {
        if (out.capacity < batch.count) out = new PacketBatch(batch.count);
        out.clear();
        device.receive(p, batch, out);
        if (out.count > 0) sink(out);
      });
    },
    send(p: BufferPool, batch: PacketBatch): number {
      if (p !== pool) throw new InvalidConfigError('pool', 'send() with a pool other than the one given to start()');
      return device.send(p, batch);
    },
    async close(): Promise<void> {
      await device.close();
      await inner.close();
    },
  };
}
