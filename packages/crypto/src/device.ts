/**
 * WireGuardDevice: the protocol engine. It holds our static key and the peers, runs handshakes,
 * seals outgoing packets and opens incoming datagrams in place over BufferPool slots, and keeps
 * WireGuard's timers against an injectable clock.
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
import { InvalidConfigError, PacketBatch, type BufferPool, type Transport } from '@overlay/dataplane';
import { AllowedIps, formatPrefix, parsePrefix } from './allowed-ips.js';
import { CookieChecker } from './cookie.js';
import { UnknownPeerError } from './errors.js';
import { decodeKey, encodeKey } from './keys.js';
import {
  COOKIE_RECEIVER, COOKIE_REPLY_LEN, DATA_COUNTER, DATA_HEADER_LEN, DATA_MIN_LEN, DATA_RECEIVER, INIT_MAC1, INITIATION_LEN,
  INITIATION_MIN_INTERVAL, KEEPALIVE_TIMEOUT, MSG_COOKIE_REPLY, MSG_DATA, MSG_INITIATION, MSG_RESPONSE, REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER,
  RESP_MAC1, RESP_RECEIVER, RESPONSE_LEN, ZERO_KEYS_AFTER,
} from './messages.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse, wipeState } from './noise.js';
import { BinaryEndpoint, endpointKey, Peer, type Endpoint } from './peer.js';
import { dh, publicFromPrivate, randomBytes, wipe } from './primitives.js';
import { LoadGuard } from './load.js';
import { compareTai64n, Tai64nStamper } from './tai64n.js';
import { DataCipher, Keypair } from './transport-data.js';

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

/** Event payloads: only the public key identifies the peer. */
export interface PeerEvent {
  publicKey: string;
}
export interface PeerDownEvent extends PeerEvent {
  reason: 'handshake_timeout' | 'keys_expired' | 'removed';
}

const DROP_REASONS = [
  'too_short', 'unknown_type', 'bad_length', 'bad_mac1', 'under_load_cookie_sent', 'rate_limited', 'handshake_failed',
  'unknown_peer', 'replayed_initiation', 'initiation_flood', 'unknown_index', 'unexpected_response', 'bad_cookie',
  'key_expired', 'replay', 'counter_too_large', 'decrypt_failed', 'source_not_allowed', 'malformed_inner', 'no_peer',
  'no_endpoint', 'queue_full', 'pool_exhausted', 'no_room', 'transport_send_failed', 'handshake_timeout', 'device_write_failed',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

type IndexEntry = { peer: Peer; keypair: Keypair | null };

const INDEX_MASK = 0x3fffffff;

export class WireGuardDevice extends EventEmitter {
  readonly publicKey: string;
  readonly mode: 'l3' | 'overlay';
  private readonly staticPrivate: Buffer;
  private readonly staticPublic: Buffer;
  private readonly clock: () => number;
  private readonly wallBase: number;
  private readonly clockBase: number;
  private readonly stamper: Tai64nStamper;
  private readonly queueLimit: number;
  private readonly tickMs: number;
  private readonly checker: CookieChecker;

  private readonly peersByKey = new Map<string, Peer>();
  private readonly peersByEndpoint = new Map<number, Peer>();
  private readonly routes = new AllowedIps<Peer>();
  private readonly indices = new Map<number, IndexEntry>();

  private pool: BufferPool | null = null;
  private transport: Transport | null = null;
  private cipher: DataCipher | null = null;
  private readonly txBatch = new PacketBatch(256);
  /** Queue flushes use their own batch: they can run inside send() when a transport delivers synchronously. */
  private readonly queueBatch = new PacketBatch(256);
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /**
   * The clock reading for the batch (or timer pass) in progress. Hot-path helpers read it
   * here instead of taking it as an argument: a double passed to a call V8 does not inline is
   * boxed, one allocation per packet.
   */
  private now = 0;

  private readonly load: LoadGuard;

  private readonly drops: Record<DropReason, number>;
  private readonly txStats = { packets: 0, bytes: 0, keepalives: 0, handshakeInitiations: 0, handshakeResponses: 0, cookieReplies: 0 };
  private readonly rxStats = { packets: 0, bytes: 0, keepalives: 0, handshakeInitiations: 0, handshakeResponses: 0, cookieReplies: 0 };

  constructor(o: WireGuardDeviceOptions) {
    super();
    this.staticPrivate = decodeKey(o.privateKey, 'privateKey');
    this.staticPublic = publicFromPrivate(this.staticPrivate);
    this.publicKey = encodeKey(this.staticPublic);
    this.mode = o.mode ?? 'l3';
    if (this.mode !== 'l3' && this.mode !== 'overlay') throw new InvalidConfigError('mode', `must be 'l3' or 'overlay'`);
    this.clock = o.now ?? (() => performance.now());
    this.clockBase = this.clock();
    this.wallBase = Date.now();
    this.queueLimit = o.queueLimit ?? 128;
    if (!Number.isInteger(this.queueLimit) || this.queueLimit < 0 || this.queueLimit > 65536) throw new InvalidConfigError('queueLimit', 'must be an integer in 0..65536');
    this.load = new LoadGuard(o.underLoadThreshold ?? 500);
    this.stamper = new Tai64nStamper(() => this.wallNow());
    this.tickMs = o.tickMs ?? 100;
    this.checker = new CookieChecker(this.staticPublic, this.clock());
    this.drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  }

  // ---------------------------------------------------------------- configuration

  /** Adds a peer or updates one with the same public key. */
  setPeer(cfg: PeerConfig): void {
    const pub = decodeKey(cfg.publicKey, 'publicKey');
    const text = pub.toString('base64');
    let peer = this.peersByKey.get(text);
    if (!peer) {
      let shared: Buffer;
      try {
        shared = dh(this.staticPrivate, pub);
      } catch {
        throw new InvalidConfigError('publicKey', 'is a low-order point');
      }
      peer = new Peer(pub, shared, this.queueLimit);
      this.peersByKey.set(text, peer);
    }
    if (cfg.presharedKey !== undefined) peer.presharedKey = cfg.presharedKey ? decodeKey(cfg.presharedKey, 'presharedKey') : null;
    if (cfg.endpoint !== undefined) {
      if (peer.configuredEndpoint) this.peersByEndpoint.delete(this.keyOf(peer.configuredEndpoint));
      const ep = cfg.endpoint ? BinaryEndpoint.parse(cfg.endpoint) : null;
      peer.configuredEndpoint = ep;
      peer.endpoint = ep;
      if (ep) this.peersByEndpoint.set(this.keyOf(ep), peer);
    }
    if (cfg.allowedIPs !== undefined) {
      const prefixes = cfg.allowedIPs.map((a) => parsePrefix(a));
      this.routes.removeValue(peer);
      peer.allowed = prefixes;
      for (const p of prefixes) this.routes.insert(p, peer);
    }
    if (cfg.persistentKeepalive !== undefined) {
      const s = cfg.persistentKeepalive;
      if (!Number.isInteger(s) || s < 0 || s > 65535) throw new InvalidConfigError('persistentKeepalive', 'must be an integer in 0..65535 seconds');
      peer.persistentKeepaliveMs = s * 1000;
      peer.persistentAt = s > 0 ? this.clock() + peer.persistentKeepaliveMs : 0;
    }
  }

  removePeer(publicKey: string): void {
    const peer = this.peerOf(publicKey);
    this.routes.removeValue(peer);
    if (peer.configuredEndpoint) this.peersByEndpoint.delete(this.keyOf(peer.configuredEndpoint));
    this.peersByKey.delete(peer.publicKeyText);
    this.clearQueue(peer, null);
    this.zeroKeys(peer, 'removed');
  }

  peer(publicKey: string): PeerStatus | null {
    const p = this.peersByKey.get(decodeKey(publicKey, 'publicKey').toString('base64'));
    return p ? this.statusOf(p) : null;
  }

  peers(): PeerStatus[] {
    return [...this.peersByKey.values()].map((p) => this.statusOf(p));
  }

  /** Counts drops that happen around the device (e.g. the TUN write after receive()). */
  countDrop(reason: DropReason, n = 1): void {
    if (n > 0) this.drops[reason] += n;
  }

  stats(): DeviceStats {
    return { tx: { ...this.txStats }, rx: { ...this.rxStats }, drops: { ...this.drops } };
  }

  /**
   * Binds the device to the pool its slots come from and the transport handshake messages go
   * out on, and starts the timers. Called once by createSecureTransport / createTunnel.
   */
  attach(pool: BufferPool, transport: Transport): void {
    if (pool.headroom < DATA_HEADER_LEN || pool.tailroom < 16 + 15) throw new InvalidConfigError('pool', 'needs headroom >= 16 and tailroom >= 31');
    this.pool = pool;
    this.transport = transport;
    this.cipher = new DataCipher(pool);
    if (this.tickMs > 0) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  /** Starts a handshake with a peer now (otherwise the first packet to it does). */
  connect(publicKey: string): void {
    this.initiate(this.peerOf(publicKey), false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const p of this.peersByKey.values()) {
      this.clearQueue(p, null);
      this.zeroKeys(p, null);
    }
    wipe(this.staticPrivate);
  }

  // ---------------------------------------------------------------- inside (to the network)

  /**
   * Encrypts and transmits the packets of `batch`. Slots stay owned by the caller (as with
   * Transport.send); a packet held for a pending handshake is copied. Returns how many were
   * sent or queued; every other packet is a counted drop in stats().drops.
   */
  send(pool: BufferPool, batch: PacketBatch): number {
    const cipher = this.cipher;
    if (!cipher || pool !== this.pool) throw new InvalidConfigError('pool', 'send() before attach() or with another pool');
    const now = (this.now = this.clock());
    const tx = this.txBatch;
    tx.clear();
    let accepted = 0;
    for (let i = 0; i < batch.count; i++) {
      const slot = batch.slots[i];
      const peer = this.routeOf(pool, slot);
      if (!peer) {
        this.drops.no_peer++;
        continue;
      }
      const kp = this.usableSendKeypair(peer);
      if (!kp) {
        if (this.enqueue(peer, pool, slot)) accepted++;
        this.initiate(peer, false);
        continue;
      }
      if (!peer.endpoint) {
        this.drops.no_endpoint++;
        continue;
      }
      const plainLen = pool.len[slot];
      if (!cipher.seal(slot, kp, this.mode === 'l3' ? 16 : 1)) {
        this.drops.no_room++;
        continue;
      }
      this.setDestination(pool, slot, peer);
      this.afterDataSent(peer, kp, plainLen);
      tx.push(slot);
      accepted++;
      if (tx.count === tx.capacity) accepted -= this.flushTx(pool, tx);
    }
    accepted -= this.flushTx(pool, tx);
    return accepted;
  }

  // ---------------------------------------------------------------- outside (from the network)

  /**
   * Processes received datagrams. Takes ownership of every slot in `batch`: transport data that
   * authenticates is decrypted in place and pushed to `out` (ownership passes to the caller);
   * everything else is consumed or dropped with a counted reason and released. Never throws
   * on packet content. `out` must have room for batch.count slots.
   */
  receive(pool: BufferPool, batch: PacketBatch, out: PacketBatch): void {
    if (!this.cipher || pool !== this.pool) throw new InvalidConfigError('pool', 'receive() before attach() or with another pool');
    const now = (this.now = this.clock());
    for (let i = 0; i < batch.count; i++) {
      const slot = batch.slots[i];
      const len = pool.len[slot];
      const off = pool.off[slot];
      const data = pool.data;
      if (len < 4) {
        this.drops.too_short++;
        pool.release(slot);
        continue;
      }
      const type = data.readUInt32LE(off);
      if (type === MSG_DATA) {
        if (this.openData(pool, slot)) out.push(slot);
        else pool.release(slot);
        continue;
      }
      if (type === MSG_INITIATION || type === MSG_RESPONSE || type === MSG_COOKIE_REPLY) {
        this.handleHandshake(pool, slot, type, now);
      } else {
        this.drops.unknown_type++;
      }
      pool.release(slot);
    }
  }

  private openData(pool: BufferPool, slot: number): boolean {
    const now = this.now;
    const data = pool.data;
    const off = pool.off[slot];
    const len = pool.len[slot];
    if (len < DATA_MIN_LEN) {
      this.drops.too_short++;
      return false;
    }
    const index = data.readUInt32LE(off + DATA_RECEIVER);
    // Our indices are below 2^30 (small integers to V8, so the lookup never boxes a number).
    const entry = index <= INDEX_MASK ? this.indices.get(index) : undefined;
    const kp = entry?.keypair;
    if (!entry || !kp) {
      this.drops.unknown_index++;
      return false;
    }
    const hi = data.readUInt32LE(off + DATA_COUNTER + 4);
    if (hi >= 0x200000) {
      this.drops.counter_too_large++;
      return false;
    }
    const counter = hi * 0x100000000 + data.readUInt32LE(off + DATA_COUNTER);
    if (now - kp.createdAt >= REJECT_AFTER_TIME || counter >= REJECT_AFTER_MESSAGES) {
      this.drops.key_expired++;
      return false;
    }
    if (!kp.replay.mayAccept(counter)) {
      this.drops.replay++;
      return false;
    }
    if (!this.cipher!.open(slot, kp, counter)) {
      this.drops.decrypt_failed++;
      return false;
    }
    kp.replay.accept(counter);
    const peer = entry.peer;
    if (kp === peer.next) this.confirmNext(peer, now);
    this.roam(peer, pool, slot);
    peer.newHandshakeAt = 0;
    if (peer.persistentKeepaliveMs > 0) peer.persistentAt = now + peer.persistentKeepaliveMs;
    if (kp === peer.current && kp.initiator && !peer.rekeyRequested && now - kp.createdAt >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT) {
      peer.rekeyRequested = true;
      this.initiate(peer, false);
    }
    const plain = pool.len[slot];
    this.rxStats.packets++;
    if (plain === 0) {
      this.rxStats.keepalives++;
      return false;
    }
    if (peer.keepaliveAt === 0) peer.keepaliveAt = now + KEEPALIVE_TIMEOUT;
    if (this.mode === 'l3') {
      if (!this.checkInner(pool, slot, peer)) return false;
    } else {
      this.presentSource(pool, slot, peer);
    }
    peer.rxBytes += pool.len[slot];
    this.rxStats.bytes += pool.len[slot];
    return true;
  }

  /** L3: trims padding by the IP length and checks the source against the peer's allowed IPs. */
  private checkInner(pool: BufferPool, slot: number, peer: Peer): boolean {
    const data = pool.data;
    const off = pool.off[slot];
    const len = pool.len[slot];
    const version = data[off] >> 4;
    let ipLen: number;
    let srcAt: number;
    let family: 4 | 6;
    if (version === 4 && len >= 20) {
      ipLen = data.readUInt16BE(off + 2);
      srcAt = off + 12;
      family = 4;
    } else if (version === 6 && len >= 40) {
      ipLen = 40 + data.readUInt16BE(off + 4);
      srcAt = off + 8;
      family = 6;
    } else {
      this.drops.malformed_inner++;
      return false;
    }
    if (ipLen > len || ipLen < (family === 4 ? 20 : 40)) {
      this.drops.malformed_inner++;
      return false;
    }
    if (this.routes.lookup(family, data, srcAt) !== peer) {
      this.drops.source_not_allowed++;
      return false;
    }
    pool.len[slot] = ipLen;
    return true;
  }

  /** Overlay: the dataplane sees the peer's configured VTEP endpoint as the source. */
  private presentSource(pool: BufferPool, slot: number, peer: Peer): void {
    const ep = peer.configuredEndpoint ?? peer.endpoint;
    if (ep) {
      pool.family[slot] = ep.family;
      ep.addr.copy(pool.addr, slot * 16);
      pool.port[slot] = ep.port;
    }
  }

  // ---------------------------------------------------------------- handshake messages

  private handleHandshake(pool: BufferPool, slot: number, type: number, now: number): void {
    const off = pool.off[slot];
    const len = pool.len[slot];
    const expected = type === MSG_INITIATION ? INITIATION_LEN : type === MSG_RESPONSE ? RESPONSE_LEN : COOKIE_REPLY_LEN;
    if (len !== expected) {
      this.drops.bad_length++;
      return;
    }
    // Handshake path: copying out is fine (at most a few thousand per second).
    const msg = Buffer.from(pool.data.subarray(off, off + len));
    const source = this.sourceOf(pool, slot);
    if (type === MSG_COOKIE_REPLY) {
      this.rxStats.cookieReplies++;
      const entry = this.indices.get(msg.readUInt32LE(COOKIE_RECEIVER));
      if (!entry || !entry.peer.cookies.consumeReply(msg, now)) this.drops.bad_cookie++;
      return;
    }
    const macAt = type === MSG_INITIATION ? INIT_MAC1 : RESP_MAC1;
    if (!this.checker.checkMac1(msg, macAt)) {
      this.drops.bad_mac1++;
      return;
    }
    if (this.load.underLoad(now)) {
      if (!this.checker.checkMac2(msg, macAt, source.bytes(), now)) {
        this.sendCookieReply(msg, macAt, source, now);
        this.drops.under_load_cookie_sent++;
        return;
      }
      if (!this.load.allow(source.addr, now)) {
        this.drops.rate_limited++;
        return;
      }
    }
    if (type === MSG_INITIATION) this.consumeInitiationMsg(msg, source, now);
    else this.consumeResponseMsg(msg, source, now);
  }

  private consumeInitiationMsg(msg: Buffer, source: BinaryEndpoint, now: number): void {
    this.rxStats.handshakeInitiations++;
    let peer: Peer | undefined;
    let sawStatic = false;
    const result = consumeInitiation(msg, this.staticPrivate, this.staticPublic, (remote) => {
      sawStatic = true;
      peer = this.peersByKey.get(remote.toString('base64'));
      return peer ? peer.staticShared : null;
    });
    if (!result) {
      // An authenticated static key we do not hold gets no response, only a count.
      this.drops[sawStatic && peer === undefined ? 'unknown_peer' : 'handshake_failed']++;
      return;
    }
    const p = peer!;
    if (compareTai64n(result.timestamp, p.lastTimestamp) <= 0) {
      this.drops.replayed_initiation++;
      wipeState(result.state);
      return;
    }
    if (now - p.lastInitiationConsumedAt < INITIATION_MIN_INTERVAL) {
      this.drops.initiation_flood++;
      wipeState(result.state);
      return;
    }
    p.lastTimestamp = result.timestamp;
    p.lastInitiationConsumedAt = now;
    p.newHandshakeAt = 0;
    p.endpoint = source;
    const localIndex = this.newIndex();
    const resp = Buffer.alloc(RESPONSE_LEN);
    const keys = createResponse(result.state, { remoteStatic: p.publicKey, presharedKey: p.presharedKey, senderIndex: localIndex }, resp);
    p.cookies.addMacs(resp, RESP_MAC1, now);
    const kp = new Keypair(keys.send, keys.recv, localIndex, result.state.remoteIndex, false, now, p);
    wipeState(result.state);
    this.indices.set(localIndex, { peer: p, keypair: kp });
    // Responder: the new keypair waits in `next` until the initiator's first data packet confirms it.
    if (p.next) this.dropKeypair(p.next);
    if (p.previous) this.dropKeypair(p.previous);
    p.previous = null;
    p.next = kp;
    p.zeroKeysAt = now + ZERO_KEYS_AFTER;
    p.lastHandshakeWallMs = this.wallNow();
    this.transmitControl(resp, p);
    this.txStats.handshakeResponses++;
  }

  private consumeResponseMsg(msg: Buffer, source: BinaryEndpoint, now: number): void {
    this.rxStats.handshakeResponses++;
    const entry = this.indices.get(msg.readUInt32LE(RESP_RECEIVER));
    const peer = entry?.peer;
    if (!entry || entry.keypair || !peer || !peer.handshake || peer.handshake.localIndex !== msg.readUInt32LE(RESP_RECEIVER)) {
      this.drops.unexpected_response++;
      return;
    }
    const keys = consumeResponse(msg, peer.handshake, this.staticPrivate, peer.presharedKey);
    if (!keys) {
      this.drops.handshake_failed++;
      return;
    }
    const hs = peer.handshake;
    const kp = new Keypair(keys.send, keys.recv, hs.localIndex, hs.remoteIndex, true, now, peer);
    wipeState(hs);
    peer.handshake = null;
    entry.keypair = kp;
    peer.endpoint = source;
    peer.retransmitAt = 0;
    peer.newHandshakeAt = 0;
    peer.rekeyRequested = false;
    // Initiator: the new keypair is current at once; the old current becomes previous.
    if (peer.next) {
      this.dropKeypair(peer.next);
      peer.next = null;
    }
    if (peer.previous) this.dropKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = kp;
    peer.zeroKeysAt = now + ZERO_KEYS_AFTER;
    peer.lastHandshakeWallMs = this.wallNow();
    peer.handshakesCompleted++;
    this.announce(peer);
    // Confirm the session to the responder: queued data does it, or an empty keepalive.
    if (peer.queueCount > 0) this.flushQueue(peer, now);
    else this.sendKeepalive(peer, now);
  }

  private confirmNext(peer: Peer, now: number): void {
    const kp = peer.next!;
    if (peer.previous) this.dropKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = kp;
    peer.next = null;
    peer.handshakesCompleted++;
    peer.rekeyRequested = false;
    this.announce(peer);
    if (peer.queueCount > 0) this.flushQueue(peer, now);
  }

  private announce(peer: Peer): void {
    const event: PeerEvent = { publicKey: peer.publicKeyText };
    if (!peer.up) {
      peer.up = true;
      this.emit('peer-up', event);
    } else {
      this.emit('rekey', event);
    }
  }

  /** Sends an initiation unless one went out less than REKEY_TIMEOUT ago (or `retransmit`). */
  private initiate(peer: Peer, retransmit: boolean): void {
    const now = (this.now = this.clock());
    if (!retransmit && peer.handshake && now - peer.lastInitiationSentAt < REKEY_TIMEOUT) return;
    if (!peer.endpoint) {
      this.drops.no_endpoint++;
      return;
    }
    if (!retransmit && !peer.handshake) peer.handshakeStartedAt = now;
    if (peer.handshake) {
      this.indices.delete(peer.handshake.localIndex);
      wipeState(peer.handshake);
    }
    const localIndex = this.newIndex();
    const msg = Buffer.alloc(INITIATION_LEN);
    peer.handshake = createInitiation(
      { staticPublic: this.staticPublic, remoteStatic: peer.publicKey, staticShared: peer.staticShared, timestamp: this.stamper.next(), senderIndex: localIndex },
      msg,
    );
    peer.cookies.addMacs(msg, INIT_MAC1, now);
    this.indices.set(localIndex, { peer, keypair: null });
    peer.lastInitiationSentAt = now;
    peer.retransmitAt = now + REKEY_TIMEOUT + Math.floor(Math.random() * REKEY_TIMEOUT_JITTER);
    this.transmitControl(msg, peer);
    this.txStats.handshakeInitiations++;
  }

  private sendCookieReply(msg: Buffer, macAt: number, source: BinaryEndpoint, now: number): void {
    const out = Buffer.alloc(COOKIE_REPLY_LEN);
    this.checker.createReply(msg, macAt, msg.readUInt32LE(4), source.bytes(), now, out);
    this.transmitTo(out, source);
    this.txStats.cookieReplies++;
  }

  // ---------------------------------------------------------------- timers

  /** Evaluates every peer's timers against the clock. Called on an interval once attached. */
  tick(): void {
    if (this.closed) return;
    const now = (this.now = this.clock());
    for (const peer of this.peersByKey.values()) {
      if (peer.retransmitAt !== 0 && now >= peer.retransmitAt) {
        if (now - peer.handshakeStartedAt >= REKEY_ATTEMPT_TIME) this.giveUp(peer);
        else this.initiate(peer, true);
      }
      if (peer.keepaliveAt !== 0 && now >= peer.keepaliveAt) {
        peer.keepaliveAt = 0;
        this.sendKeepalive(peer, now);
      }
      if (peer.newHandshakeAt !== 0 && now >= peer.newHandshakeAt) {
        peer.newHandshakeAt = 0;
        // Sent data but heard nothing for KEEPALIVE + REKEY_TIMEOUT: the session may be dead.
        this.initiate(peer, false);
      }
      if (peer.persistentAt !== 0 && now >= peer.persistentAt) {
        peer.persistentAt = now + peer.persistentKeepaliveMs;
        this.sendKeepalive(peer, now);
      }
      if (peer.zeroKeysAt !== 0 && now >= peer.zeroKeysAt) this.zeroKeys(peer, 'keys_expired');
    }
  }

  private giveUp(peer: Peer): void {
    peer.retransmitAt = 0;
    if (peer.handshake) {
      this.indices.delete(peer.handshake.localIndex);
      wipeState(peer.handshake);
      peer.handshake = null;
    }
    this.clearQueue(peer, 'handshake_timeout');
    const now = (this.now = this.clock());
    if (peer.up && !(peer.current && now - peer.current.createdAt < REJECT_AFTER_TIME)) {
      peer.up = false;
      const e: PeerDownEvent = { publicKey: peer.publicKeyText, reason: 'handshake_timeout' };
      this.emit('peer-down', e);
    }
  }

  private zeroKeys(peer: Peer, reason: PeerDownEvent['reason'] | null): void {
    for (const kp of [peer.previous, peer.current, peer.next]) if (kp) this.dropKeypair(kp);
    peer.previous = peer.current = peer.next = null;
    if (peer.handshake) {
      this.indices.delete(peer.handshake.localIndex);
      wipeState(peer.handshake);
      peer.handshake = null;
    }
    peer.zeroKeysAt = peer.retransmitAt = peer.keepaliveAt = peer.newHandshakeAt = 0;
    if (peer.up) {
      peer.up = false;
      if (reason) this.emit('peer-down', { publicKey: peer.publicKeyText, reason } satisfies PeerDownEvent);
    }
  }

  // ---------------------------------------------------------------- helpers

  private usableSendKeypair(peer: Peer): Keypair | null {
    const now = this.now;
    const kp = peer.current;
    if (!kp) return null;
    const age = now - kp.createdAt;
    if (age >= REJECT_AFTER_TIME || kp.sendCounter >= REJECT_AFTER_MESSAGES) return null;
    if (kp.initiator && (age >= REKEY_AFTER_TIME || kp.sendCounter >= REKEY_AFTER_MESSAGES)) this.initiate(peer, false);
    return kp;
  }

  private afterDataSent(peer: Peer, kp: Keypair, plainLen: number): void {
    const now = this.now;
    peer.txBytes += plainLen;
    this.txStats.packets++;
    this.txStats.bytes += plainLen;
    peer.keepaliveAt = 0;
    if (plainLen > 0 && peer.newHandshakeAt === 0) peer.newHandshakeAt = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT;
    if (peer.persistentKeepaliveMs > 0) peer.persistentAt = now + peer.persistentKeepaliveMs;
    void kp;
  }

  private sendKeepalive(peer: Peer, now: number): void {
    const kp = this.usableSendKeypair(peer);
    const pool = this.pool;
    if (!kp || !pool || !peer.endpoint) return;
    const slot = pool.acquire();
    if (slot < 0) {
      this.drops.pool_exhausted++;
      return;
    }
    pool.len[slot] = 0;
    this.cipher!.seal(slot, kp, 1);
    this.setDestination(pool, slot, peer);
    this.afterDataSent(peer, kp, 0);
    this.txStats.keepalives++;
    this.sendOwned(pool, slot);
  }

  /** Copies a packet into a device-owned slot on the peer's queue. */
  private enqueue(peer: Peer, pool: BufferPool, slot: number): boolean {
    if (peer.queueCount >= peer.queue.length) {
      this.drops.queue_full++;
      return false;
    }
    const copy = pool.acquire();
    if (copy < 0) {
      this.drops.pool_exhausted++;
      return false;
    }
    const off = pool.off[slot];
    const len = pool.len[slot];
    const dst = pool.base(copy) + (off - pool.base(slot));
    pool.data.copy(pool.data, dst, off, off + len);
    pool.off[copy] = dst;
    pool.len[copy] = len;
    pool.family[copy] = pool.family[slot];
    pool.addr.copy(pool.addr, copy * 16, slot * 16, slot * 16 + 16);
    pool.port[copy] = pool.port[slot];
    pool.vni[copy] = pool.vni[slot];
    peer.queue[(peer.queueHead + peer.queueCount) % peer.queue.length] = copy;
    peer.queueCount++;
    return true;
  }

  private flushQueue(peer: Peer, now: number): void {
    const pool = this.pool!;
    const kp = this.usableSendKeypair(peer);
    if (!kp || !peer.endpoint) return;
    const tx = this.queueBatch;
    tx.clear();
    while (peer.queueCount > 0) {
      const slot = peer.queue[peer.queueHead];
      peer.queueHead = (peer.queueHead + 1) % peer.queue.length;
      peer.queueCount--;
      const plainLen = pool.len[slot];
      if (!this.cipher!.seal(slot, kp, this.mode === 'l3' ? 16 : 1)) {
        this.drops.no_room++;
        pool.release(slot);
        continue;
      }
      this.setDestination(pool, slot, peer);
      this.afterDataSent(peer, kp, plainLen);
      tx.push(slot);
      if (tx.count === tx.capacity) this.flushTx(pool, tx, true);
    }
    this.flushTx(pool, tx, true);
  }

  private clearQueue(peer: Peer, reason: DropReason | null): void {
    const pool = this.pool;
    while (peer.queueCount > 0) {
      const slot = peer.queue[peer.queueHead];
      peer.queueHead = (peer.queueHead + 1) % peer.queue.length;
      peer.queueCount--;
      if (reason) this.drops[reason]++;
      pool?.release(slot);
    }
  }

  /** Sends a batch; returns how many failed (counted). Releases the slots when `owned`. */
  private flushTx(pool: BufferPool, tx: PacketBatch, owned = false): number {
    if (tx.count === 0) return 0;
    let sent = 0;
    try {
      sent = this.transport!.send(pool, tx);
    } catch {
      sent = 0;
    }
    const failed = tx.count - sent;
    this.drops.transport_send_failed += failed;
    if (owned) for (let i = 0; i < tx.count; i++) pool.release(tx.slots[i]);
    tx.clear();
    return failed;
  }

  private sendOwned(pool: BufferPool, slot: number): void {
    const b = new PacketBatch(1);
    b.push(slot);
    let sent = 0;
    try {
      sent = this.transport!.send(pool, b);
    } catch {
      sent = 0;
    }
    if (sent !== 1) this.drops.transport_send_failed++;
    pool.release(slot);
  }

  private transmitControl(msg: Buffer, peer: Peer): void {
    if (peer.endpoint) this.transmitTo(msg, peer.endpoint);
  }

  private transmitTo(msg: Buffer, ep: BinaryEndpoint): void {
    const pool = this.pool;
    if (!pool || !this.transport) return;
    const slot = pool.acquire();
    if (slot < 0) {
      this.drops.pool_exhausted++;
      return;
    }
    pool.fill(slot, msg);
    pool.setEndpoint(slot, ep.family, ep.addr, ep.port);
    this.sendOwned(pool, slot);
  }

  private setDestination(pool: BufferPool, slot: number, peer: Peer): void {
    const ep = peer.endpoint!;
    pool.family[slot] = ep.family;
    ep.addr.copy(pool.addr, slot * 16);
    pool.port[slot] = ep.port;
  }

  /** Roaming: the peer's endpoint follows the source of its latest authenticated packet. */
  private roam(peer: Peer, pool: BufferPool, slot: number): void {
    const ep = peer.endpoint;
    const fam = pool.family[slot];
    if (fam !== 4 && fam !== 6) return;
    const at = slot * 16;
    if (ep && ep.family === fam && ep.port === pool.port[slot] && pool.addr.compare(ep.addr, 0, ep.addr.length, at, at + ep.addr.length) === 0) return;
    peer.endpoint = this.sourceOf(pool, slot);
  }

  private sourceOf(pool: BufferPool, slot: number): BinaryEndpoint {
    const fam = pool.family[slot] === 6 ? 6 : 4;
    const at = slot * 16;
    return new BinaryEndpoint(fam, Buffer.from(pool.addr.subarray(at, at + (fam === 4 ? 4 : 16))), pool.port[slot]);
  }

  private routeOf(pool: BufferPool, slot: number): Peer | null {
    const data = pool.data;
    if (this.mode === 'overlay') {
      const peer = this.peersByEndpoint.get(endpointKey(pool.family[slot], pool.addr, slot * 16, pool.port[slot]));
      if (!peer) return null;
      const ep = peer.configuredEndpoint!;
      if (ep.family === 6 && pool.addr.compare(ep.addr, 0, 16, slot * 16, slot * 16 + 16) !== 0) return null;
      return peer;
    }
    const off = pool.off[slot];
    const len = pool.len[slot];
    const version = len > 0 ? data[off] >> 4 : 0;
    if (version === 4 && len >= 20) return this.routes.lookup(4, data, off + 16);
    if (version === 6 && len >= 40) return this.routes.lookup(6, data, off + 24);
    return null;
  }

  private keyOf(ep: BinaryEndpoint): number {
    const a = Buffer.alloc(16);
    ep.addr.copy(a);
    return endpointKey(ep.family, a, 0, ep.port);
  }

  /** A fresh random local index. 30 bits: still unguessable, and always a V8 small integer. */
  private newIndex(): number {
    for (;;) {
      const i = randomBytes(4).readUInt32LE(0) & INDEX_MASK;
      if (!this.indices.has(i)) return i;
    }
  }

  private dropKeypair(kp: Keypair): void {
    this.indices.delete(kp.localIndex);
    kp.wipe();
  }

  private wallNow(): number {
    return this.wallBase + (this.clock() - this.clockBase);
  }

  private peerOf(publicKey: string): Peer {
    const p = this.peersByKey.get(decodeKey(publicKey, 'publicKey').toString('base64'));
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
}
