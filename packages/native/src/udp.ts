import { isIP } from 'node:net';
import { InvalidConfigError, type BufferPool, type PacketBatch, type Transport } from '@overlay/dataplane';
import { KIND_UDP, native, UDP_DEFER, UDP_GRO, UDP_GSO, type NativeHandle } from './binding.js';
import { IoCounters } from './counters.js';
import type { NativeError } from './errors.js';
import { NativeIo } from './native-io.js';

export interface UdpOptions {
  /** Local address to bind: IPv4, or IPv6 ('::' is dual-stack and also carries IPv4). */
  address: string;
  /** Local port; 0 picks a free one (see localPort). */
  port: number;
  /** SO_REUSEPORT, so several sockets (one per worker) share the port. */
  reuseport?: boolean;
  /** SO_RCVBUF / SO_SNDBUF in bytes (as root, beyond the sysctl limits). Default: the kernel's. */
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  /** Datagrams per recvmmsg/sendmmsg call. Default 64. */
  batchSize?: number;
  /**
   * UDP GSO (UDP_SEGMENT): a run of same-size datagrams to one destination in a batch (as the
   * frames cut from one TSO read are) goes down the stack as one message, cut up late by the
   * kernel. Turned off by itself if the route refuses it (counters.txGsoFallbacks). Default false.
   */
  gso?: boolean;
  /**
   * UDP GRO (UDP_GRO): the kernel may hand over a run of datagrams of one flow (e.g. a peer's GSO
   * message) as one message; it lands in a private 64 KiB staging buffer per recvmmsg message
   * (min(batchSize, 64) × 64 KiB per socket) and each datagram is copied into its own pool slot, in order,
   * so the sink still sees one datagram per slot. Counters rxGroMessages/rxGroDatagrams. Default false.
   */
  gro?: boolean;
  /**
   * With `gro`, for the encrypted overlay: a datagram that looks like WireGuard transport data
   * (≥ 32 bytes, type 4) gets only its 16-byte header copied into its slot; the addon's AEAD open
   * (`resolveAead('native')`) authenticates the rest where it was received and decrypts it
   * straight into the slot, one copy fewer per datagram. Only for a sink that opens or drops every
   * such datagram with that AEAD before it returns (the WireGuard device does): until then the
   * slot holds just the header, and a later receive reuses the staging area. Default false.
   */
  deferSealed?: boolean;
  /** How long send() may wait for room when the socket buffer is full before giving up on the rest. Default 2 ms. */
  sendWaitMs?: number;
  /** Called when receiving fails for good. Default: a process warning. */
  onError?: (err: NativeError) => void;
}

/**
 * A UDP socket as the overlay's Transport, using recvmmsg/sendmmsg: each readable wake-up
 * receives up to `batchSize` datagrams into pool slots with one syscall and makes one sink call,
 * their sources written into pool.family/addr/port (IPv4-mapped IPv6 sources are reported as
 * IPv4). send() takes destinations from the same arrays.
 *
 * Single-threaded: use it from the thread that bound it.
 */
export class UdpTransport extends NativeIo implements Transport {
  readonly address: string;
  readonly family: 4 | 6;
  readonly localPort: number;
  protected override readonly rxSyscall = 'recvmmsg';

  private constructor(o: UdpOptions, family: 4 | 6, handle: NativeHandle, counters: IoCounters, localPort: number) {
    super(handle, counters, o.batchSize ?? 64, o.onError);
    this.address = o.address;
    this.family = family;
    this.localPort = localPort;
  }

  /** Bind the socket. Throws NativeError (e.g. code 'EADDRINUSE') or InvalidConfigError. */
  // `override`: a class constructor inherits Function.prototype.bind; this static replaces it.
  static override bind(o: UdpOptions): UdpTransport {
    const family = isIP(o.address);
    if (family !== 4 && family !== 6) throw new InvalidConfigError('address', `not an IP address: ${JSON.stringify(o.address)}`);
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new InvalidConfigError('port', `must be 0..65535, got ${o.port}`);
    const batch = o.batchSize ?? 64;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new InvalidConfigError('batchSize', `must be 1..1024, got ${batch}`);
    for (const k of ['recvBufferBytes', 'sendBufferBytes'] as const) {
      const v = o[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 0x7fffffff)) throw new InvalidConfigError(k, `must be 0..2^31-1, got ${v}`);
    }
    const wait = o.sendWaitMs ?? 2;
    if (!Number.isInteger(wait) || wait < 0 || wait > 1000) throw new InvalidConfigError('sendWaitMs', `must be 0..1000, got ${wait}`);
    const n = native();
    const fd = n.openUdp(family, o.address, o.port, o.reuseport ? 1 : 0, o.recvBufferBytes ?? 0, o.sendBufferBytes ?? 0);
    const counters = new IoCounters(n.counterCount);
    const handle = n.create(fd, KIND_UDP, family, (o.gso ? UDP_GSO : 0) | (o.gro ? UDP_GRO : 0) | (o.gro && o.deferSealed ? UDP_DEFER : 0), batch, wait, counters.values);
    try {
      return new UdpTransport(o, family, handle, counters, n.localPort(handle));
    } catch (err) {
      n.close(handle);
      throw err;
    }
  }

  /**
   * sendmmsg in chunks of batchSize, in one native call. Returns how many were sent. A datagram
   * the kernel refuses for its destination (no route, a firewall drop, too big) is counted in
   * txErrors and its class and skipped; the others still go. Only a send queue that stays full
   * for sendWaitMs gives up on the rest (txEagain, txUnsent).
   */
  send(pool: BufferPool, batch: PacketBatch): number {
    return this.transmit(pool, batch);
  }

  protected capacity(pool: BufferPool): number {
    // A datagram may use the tailroom too (room for VXLAN and tunnel headers over a full frame).
    return Math.min(pool.frameCapacity + pool.tailroom, pool.stride - pool.headroom);
  }

  protected describe(): string {
    return `UDP transport ${this.address}:${this.localPort}`;
  }
}
