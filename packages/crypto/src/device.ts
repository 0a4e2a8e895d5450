/**
 * WireGuardDevice: the embedder's handle on the protocol. It holds our static key and the peers,
 * runs handshakes, seals outgoing packets (inside.ts) and opens incoming datagrams (outside.ts)
 * in place over BufferPool slots, and keeps WireGuard's timers (timers.ts) against an
 * injectable clock. The state they share is the package-internal Engine (engine.ts).
 *
 * Threading: single-threaded; every method runs on the owner's event loop. The device sends
 * handshake, cookie and keepalive messages itself through the Transport given to `attach()`.
 *
 * Two routing modes:
 *  - 'overlay': a datagram to send goes to the peer whose configured endpoint equals the slot's
 *    destination (the VTEP address); no padding (the receiver cannot strip it from an
 *    Ethernet frame); received plaintext carries the peer's configured endpoint as its source.
 *  - 'l3': slots hold IP packets; the peer is chosen by longest-prefix match of the destination
 *    over allowed IPs, plaintext is padded to 16, and received packets must come from an
 *    address in the sending peer's allowed IPs.
 */
import { EventEmitter } from 'node:events';
import { ClosedError, InvalidConfigError, type BufferPool, type PacketBatch, type Transport } from '@overlay/dataplane';
import { formatPrefix, parsePrefix } from './allowed-ips.js';
import { Engine, type DropReason, type PeerDownEvent, type PeerEvent } from './engine.js';
import { UnknownPeerError } from './errors.js';
import { sendBatch } from './inside.js';
import { decodeKey, encodeKey } from './keys.js';
import { DATA_HEADER_LEN } from './messages.js';
import { receiveBatch } from './outside.js';
import { BinaryEndpoint, Peer, type Endpoint } from './peer.js';
import { dh, wipe } from './primitives.js';
import { tick } from './timers.js';
import { DataCipher } from './transport-data.js';
import type { AeadBatch } from './aead.js';

export type { DropReason, PeerDownEvent, PeerEvent };

function sameEndpoint(x: BinaryEndpoint | null, y: BinaryEndpoint | null): boolean {
  if (!x || !y) return x === y;
  return x.family === y.family && x.port === y.port && x.addr.equals(y.addr);
}

/** The secrets a peer holds beyond its sessions; wiped once the peer is gone for good. */
function wipePeerSecrets(p: Peer): void {
  wipe(p.staticShared);
  wipe(p.presharedKey);
}

export interface WireGuardDeviceOptions {
  /** Our static private key, WireGuard base64. */
  privateKey: string;
  /** Routing mode, see the module comment. Default 'l3'. */
  mode?: 'l3' | 'overlay';
  /** Monotonic clock in ms. Inject a fake one to run the timers fast in tests. */
  now?: () => number;
  /** Real-time interval (ms) between timer evaluations once attached. Default 100. */
  tickMs?: number;
  /** Packets held per peer while its handshake is pending; more are dropped. Default 128. */
  queueLimit?: number;
  /**
   * Handshake messages per second above which the device considers itself under load and
   * demands cookies (mac2). Default 500. 0 means always under load (tests).
   */
  underLoadThreshold?: number;
  /**
   * Seals and opens transport data, a run of slots per call. Default: libsodium, one call per
   * packet (`sodiumAead`); openHost passes @overlay/native's batched one (`nativeAead()`).
   */
  aead?: AeadBatch;
}

export interface PeerConfig {
  publicKey: string;
  presharedKey?: string | null;
  endpoint?: Endpoint | null;
  allowedIPs?: string[];
  /** Seconds; 0 or absent disables. */
  persistentKeepalive?: number;
}

/** A copy of a peer's state for embedders (no key material besides the public key). */
export interface PeerStatus {
  publicKey: string;
  endpoint: Endpoint | null;
  allowedIPs: string[];
  up: boolean;
  rxBytes: number;
  txBytes: number;
  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshake: number;
  handshakes: number;
  queued: number;
}

export interface DeviceStats {
  tx: { packets: number; bytes: number; keepalives: number; handshakeInitiations: number; handshakeResponses: number; cookieReplies: number };
  rx: { packets: number; bytes: number; keepalives: number; handshakeInitiations: number; handshakeResponses: number; cookieReplies: number };
  /** reason -> count; stable snake_case reasons. */
  drops: Record<string, number>;
}

/**
 * Events: 'peer-up' and 'rekey' with a PeerEvent, 'peer-down' with a PeerDownEvent; emitted
 * synchronously from send/receive/tick on the owner's event loop.
 */
export class WireGuardDevice extends EventEmitter {
  readonly publicKey: string;
  readonly mode: 'l3' | 'overlay';
  private readonly e: Engine;
  private readonly tickMs: number;
  private readonly aead: AeadBatch | undefined;
  private timer: NodeJS.Timeout | null = null;

  constructor(o: WireGuardDeviceOptions) {
    super();
    this.e = new Engine(o, (event, payload) => this.emit(event, payload));
    this.publicKey = encodeKey(this.e.staticPublic);
    this.mode = this.e.mode;
    this.tickMs = o.tickMs ?? 100;
    if (o.aead !== undefined && (typeof o.aead.seal !== 'function' || typeof o.aead.open !== 'function')) throw new InvalidConfigError('aead', 'needs seal() and open()');
    this.aead = o.aead;
  }

  // ---------------------------------------------------------------- configuration

  /**
   * Adds a peer or updates one with the same public key. Fields left undefined keep their
   * value; repeating the current configuration changes nothing (sessions, a pending handshake,
   * queued packets, a roamed endpoint and timers are kept), so embedders may call it whenever
   * they re-program a member.
   */
  setPeer(cfg: PeerConfig): void {
    const pub = decodeKey(cfg.publicKey, 'publicKey');
    const text = pub.toString('base64');
    let peer = this.e.peersByKey.get(text);
    if (!peer) {
      let shared: Buffer;
      try {
        shared = dh(this.e.staticPrivate, pub);
      } catch {
        throw new InvalidConfigError('publicKey', 'is a low-order point');
      }
      peer = new Peer(pub, shared, this.e.queueLimit);
      this.e.peersByKey.set(text, peer);
    }
    if (cfg.presharedKey !== undefined) {
      const psk = cfg.presharedKey ? decodeKey(cfg.presharedKey, 'presharedKey') : null;
      wipe(peer.presharedKey);
      peer.presharedKey = psk;
    }
    let endpointChanged = false;
    if (cfg.endpoint !== undefined) {
      const ep = cfg.endpoint ? BinaryEndpoint.parse(cfg.endpoint) : null;
      // Unchanged configuration is a no-op (embedders re-program peers often): in particular a
      // roamed endpoint stays where the peer's packets last came from.
      if (!sameEndpoint(ep, peer.configuredEndpoint)) {
        endpointChanged = true;
        if (peer.configuredEndpoint) this.e.peersByEndpoint.delete(this.e.keyOf(peer.configuredEndpoint));
        peer.configuredEndpoint = ep;
        peer.endpoint = ep;
        if (ep) this.e.peersByEndpoint.set(this.e.keyOf(ep), peer);
      }
    }
    if (cfg.allowedIPs !== undefined) {
      const prefixes = cfg.allowedIPs.map((a) => parsePrefix(a));
      this.e.routes.removeValue(peer);
      peer.allowed = prefixes;
      for (const p of prefixes) this.e.routes.insert(p, peer);
    }
    if (cfg.persistentKeepalive !== undefined) {
      const s = cfg.persistentKeepalive;
      if (!Number.isInteger(s) || s < 0 || s > 65535) throw new InvalidConfigError('persistentKeepalive', 'must be an integer in 0..65535 seconds');
      if (peer.persistentKeepaliveMs !== s * 1000) {
        peer.persistentKeepaliveMs = s * 1000;
        peer.persistentAt = s > 0 ? this.e.clock() + peer.persistentKeepaliveMs : 0;
      }
    }
    // A handshake pending towards the old (or no) endpoint: start over at the new one now rather
    // than after REKEY_TIMEOUT, so the queued packets do not wait for the retransmission timer.
    if (endpointChanged && peer.endpoint && this.e.pool && (peer.handshake || peer.queueCount > 0)) {
      this.e.initiate(peer, peer.handshake !== null);
    }
  }

  removePeer(publicKey: string): void {
    const peer = this.peerOf(publicKey);
    this.e.routes.removeValue(peer);
    if (peer.configuredEndpoint) this.e.peersByEndpoint.delete(this.e.keyOf(peer.configuredEndpoint));
    this.e.peersByKey.delete(peer.publicKeyText);
    this.e.clearQueue(peer, null);
    this.e.zeroKeys(peer, 'removed');
    wipePeerSecrets(peer);
  }

  peer(publicKey: string): PeerStatus | null {
    const p = this.e.peersByKey.get(decodeKey(publicKey, 'publicKey').toString('base64'));
    return p ? this.statusOf(p) : null;
  }

  peers(): PeerStatus[] {
    return [...this.e.peersByKey.values()].map((p) => this.statusOf(p));
  }

  /** Counts drops that happen around the device (e.g. the TUN write after receive()). */
  countDrop(reason: DropReason, n = 1): void {
    if (n > 0) this.e.drops.count(reason, n);
  }

  stats(): DeviceStats {
    return { tx: { ...this.e.txStats }, rx: { ...this.e.rxStats }, drops: this.e.drops.snapshot() };
  }

  /**
   * Binds the device to the pool its slots come from and the transport handshake messages go
   * out on, and starts the timers. Called once by createSecureTransport / createTunnel.
   */
  attach(pool: BufferPool, transport: Transport): void {
    if (pool.headroom < DATA_HEADER_LEN || pool.tailroom < 16 + 15) throw new InvalidConfigError('pool', 'needs headroom >= 16 and tailroom >= 31');
    if (this.e.pool) throw new InvalidConfigError('attach', 'the device is already attached');
    if (this.e.closed) throw new ClosedError('WireGuardDevice');
    this.e.pool = pool;
    this.e.transport = transport;
    this.e.cipher = new DataCipher(pool, this.aead);
    if (this.tickMs > 0) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  /** Starts a handshake with a peer now (otherwise the first packet to it does). */
  connect(publicKey: string): void {
    this.e.initiate(this.peerOf(publicKey), false);
  }

  async close(): Promise<void> {
    if (this.e.closed) return;
    this.e.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const p of this.e.peersByKey.values()) {
      this.e.clearQueue(p, null);
      this.e.zeroKeys(p, null);
      wipePeerSecrets(p);
    }
    wipe(this.e.staticPrivate);
  }

  private peerOf(publicKey: string): Peer {
    const p = this.e.peersByKey.get(decodeKey(publicKey, 'publicKey').toString('base64'));
    if (!p) throw new UnknownPeerError();
    return p;
  }

  private statusOf(p: Peer): PeerStatus {
    return {
      publicKey: p.publicKeyText,
      endpoint: p.endpoint ? p.endpoint.toEndpoint() : null,
      allowedIPs: p.allowed.map(formatPrefix),
      up: p.up,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      lastHandshake: p.lastHandshakeWallMs,
      handshakes: p.handshakesCompleted,
      queued: p.queueCount,
    };
  }

  // ---------------------------------------------------------------- data path

  /**
   * Encrypts and transmits the packets of `batch` (inside: device to network). Slots stay owned
   * by the caller (as with Transport.send); a packet held for a pending handshake is copied.
   * Returns how many were sent or queued; every other packet is a counted drop.
   */
  send(pool: BufferPool, batch: PacketBatch): number {
    return sendBatch(this.e, pool, batch);
  }

  /**
   * Processes received datagrams (outside: network to device). Takes ownership of every slot in
   * `batch`: transport data that authenticates is decrypted in place and pushed to `out`
   * (ownership passes to the caller); everything else is consumed or dropped with a counted
   * reason and released. Never throws on packet content. `out` needs room for batch.count.
   */
  receive(pool: BufferPool, batch: PacketBatch, out: PacketBatch): void {
    receiveBatch(this.e, pool, batch, out);
  }

  /** Evaluates every peer's timers against the clock. Runs on an interval once attached. */
  tick(): void {
    tick(this.e);
  }
}
