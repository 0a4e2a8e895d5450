/**
 * The protocol state of one WireGuardDevice and the operations both directions share
 * (handshake initiation, keepalives, the pending-packet queue, transmitting, keypair
 * bookkeeping). Package-internal: embedders use WireGuardDevice. inside.ts (to the network),
 * outside.ts (from the network) and timers.ts operate on it.
 *
 * Single-threaded: used only from the owner's event loop.
 */
import { CounterSet, InvalidConfigError, PacketBatch, type BufferPool, type Transport } from '@overlay/dataplane';
import { AllowedIps } from './allowed-ips.js';
import { CookieChecker } from './cookie.js';
import { decodeKey } from './keys.js';
import { INIT_MAC1, INITIATION_LEN, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER, KEEPALIVE_TIMEOUT } from './messages.js';
import { createInitiation, wipeState } from './noise.js';
import { BinaryEndpoint, endpointKey, type Peer } from './peer.js';
import { publicFromPrivate, randomBytes } from './primitives.js';
import { LoadGuard } from './load.js';
import { Tai64nStamper } from './tai64n.js';
import { OpenQueue, type DataCipher, type Keypair } from './transport-data.js';
import type { WireGuardDeviceOptions } from './device.js';

/** Event payloads: only the public key identifies the peer. */
export interface PeerEvent {
  publicKey: string;
}
export interface PeerDownEvent extends PeerEvent {
  reason: 'handshake_timeout' | 'keys_expired' | 'removed';
}

export const DROP_REASONS = [
  'too_short', 'unknown_type', 'bad_length', 'bad_mac1', 'under_load_cookie_sent', 'rate_limited', 'handshake_failed',
  'unknown_peer', 'replayed_initiation', 'initiation_flood', 'unknown_index', 'unexpected_response', 'bad_cookie',
  'key_expired', 'replay', 'counter_too_large', 'decrypt_failed', 'source_not_allowed', 'malformed_inner', 'no_peer',
  'no_endpoint', 'queue_full', 'pool_exhausted', 'no_room', 'transport_send_failed', 'handshake_timeout', 'device_write_failed',
  'out_batch_full', 'device_closed', 'rate_table_full',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export type IndexEntry = { peer: Peer; keypair: Keypair | null };

export const INDEX_MASK = 0x3fffffff;

export class Engine {
  readonly mode: 'l3' | 'overlay';
  readonly staticPrivate: Buffer;
  readonly staticPublic: Buffer;
  readonly clock: () => number;
  readonly wallBase: number;
  readonly clockBase: number;
  readonly stamper: Tai64nStamper;
  readonly queueLimit: number;
  readonly checker: CookieChecker;

  readonly peersByKey = new Map<string, Peer>();
  readonly peersByEndpoint = new Map<number, Peer>();
  readonly routes = new AllowedIps<Peer>();
  readonly indices = new Map<number, IndexEntry>();

  pool: BufferPool | null = null;
  transport: Transport | null = null;
  cipher: DataCipher | null = null;
  readonly txBatch = new PacketBatch(256);
  /** Queue flushes use their own batch: they can run inside send() when a transport delivers synchronously. */
  readonly queueBatch = new PacketBatch(256);
  /** Transport data between its checks and its AEAD call (outside.ts), reused per batch. */
  readonly rxOpen = new OpenQueue(256);
  closed = false;
  /**
   * The clock reading for the batch (or timer pass) in progress. Hot-path helpers read it
   * here instead of taking it as an argument: a double passed to a call V8 does not inline is
   * boxed, one allocation per packet.
   */
  now = 0;

  readonly load: LoadGuard;

  /** Every drop by reason, published on 'overlay.crypto.drop' (see CounterSet). */
  readonly drops = new CounterSet<DropReason>(DROP_REASONS, 'overlay.crypto.drop');
  readonly txStats = { packets: 0, bytes: 0, keepalives: 0, handshakeInitiations: 0, handshakeResponses: 0, cookieReplies: 0 };
  readonly rxStats = { packets: 0, bytes: 0, keepalives: 0, handshakeInitiations: 0, handshakeResponses: 0, cookieReplies: 0 };

  constructor(o: WireGuardDeviceOptions, readonly emit: (event: string, payload: PeerEvent | PeerDownEvent) => void) {
    this.staticPrivate = decodeKey(o.privateKey, 'privateKey');
    this.staticPublic = publicFromPrivate(this.staticPrivate);
    this.mode = o.mode ?? 'l3';
    if (this.mode !== 'l3' && this.mode !== 'overlay') throw new InvalidConfigError('mode', `must be 'l3' or 'overlay'`);
    this.clock = o.now ?? (() => performance.now());
    this.clockBase = this.clock();
    this.wallBase = Date.now();
    this.queueLimit = o.queueLimit ?? 128;
    if (!Number.isInteger(this.queueLimit) || this.queueLimit < 0 || this.queueLimit > 65536) throw new InvalidConfigError('queueLimit', 'must be an integer in 0..65536');
    this.load = new LoadGuard(o.underLoadThreshold ?? 500);
    this.stamper = new Tai64nStamper(() => this.wallNow());
    this.checker = new CookieChecker(this.staticPublic, this.clock());
  }

  announce(peer: Peer): void {
    const event: PeerEvent = { publicKey: peer.publicKeyText };
    if (!peer.up) {
      peer.up = true;
      this.emit('peer-up', event);
    } else {
      this.emit('rekey', event);
    }
  }

  /** Sends an initiation unless one went out less than REKEY_TIMEOUT ago (or `retransmit`). */
  initiate(peer: Peer, retransmit: boolean): void {
    const now = (this.now = this.clock());
    if (!retransmit && peer.handshake && now - peer.lastInitiationSentAt < REKEY_TIMEOUT) return;
    if (!peer.endpoint) {
      this.drops.add(this.drops.at.no_endpoint);
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

  zeroKeys(peer: Peer, reason: PeerDownEvent['reason'] | null): void {
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

  usableSendKeypair(peer: Peer): Keypair | null {
    const now = this.now;
    const kp = peer.current;
    if (!kp) return null;
    const age = now - kp.createdAt;
    if (age >= REJECT_AFTER_TIME || kp.sendCounter >= REJECT_AFTER_MESSAGES) return null;
    if (kp.initiator && (age >= REKEY_AFTER_TIME || kp.sendCounter >= REKEY_AFTER_MESSAGES)) this.initiate(peer, false);
    return kp;
  }

  afterDataSent(peer: Peer, plainLen: number): void {
    const now = this.now;
    peer.txBytes += plainLen;
    this.txStats.packets++;
    this.txStats.bytes += plainLen;
    peer.keepaliveAt = 0;
    if (plainLen > 0 && peer.newHandshakeAt === 0) peer.newHandshakeAt = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT;
    if (peer.persistentKeepaliveMs > 0) peer.persistentAt = now + peer.persistentKeepaliveMs;
  }

  sendKeepalive(peer: Peer): void {
    const kp = this.usableSendKeypair(peer);
    const pool = this.pool;
    if (!kp || !pool || !peer.endpoint) return;
    const slot = pool.acquire();
    if (slot < 0) {
      this.drops.add(this.drops.at.pool_exhausted);
      return;
    }
    pool.len[slot] = 0;
    this.cipher!.seal(slot, kp, 1);
    this.setDestination(pool, slot, peer);
    this.afterDataSent(peer, 0);
    this.txStats.keepalives++;
    this.sendOwned(pool, slot);
  }

  /** Copies a packet into a device-owned slot on the peer's queue. */
  enqueue(peer: Peer, pool: BufferPool, slot: number): boolean {
    if (peer.queueCount >= peer.queue.length) {
      this.drops.add(this.drops.at.queue_full);
      return false;
    }
    const copy = pool.acquire();
    if (copy < 0) {
      this.drops.add(this.drops.at.pool_exhausted);
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

  flushQueue(peer: Peer): void {
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
        this.drops.add(this.drops.at.no_room);
        pool.release(slot);
        continue;
      }
      this.setDestination(pool, slot, peer);
      this.afterDataSent(peer, plainLen);
      tx.push(slot);
      if (tx.count === tx.capacity) this.flushTx(pool, tx, true);
    }
    this.flushTx(pool, tx, true);
  }

  clearQueue(peer: Peer, reason: DropReason | null): void {
    const pool = this.pool;
    while (peer.queueCount > 0) {
      const slot = peer.queue[peer.queueHead];
      peer.queueHead = (peer.queueHead + 1) % peer.queue.length;
      peer.queueCount--;
      if (reason) this.drops.count(reason);
      pool?.release(slot);
    }
  }

  /** Sends a batch; returns how many failed (counted). Releases the slots when `owned`. */
  flushTx(pool: BufferPool, tx: PacketBatch, owned = false): number {
    if (tx.count === 0) return 0;
    let sent = 0;
    try {
      sent = this.transport!.send(pool, tx);
    } catch {
      sent = 0;
    }
    const failed = tx.count - sent;
    this.drops.add(this.drops.at.transport_send_failed, failed);
    if (owned) for (let i = 0; i < tx.count; i++) pool.release(tx.slots[i]);
    tx.clear();
    return failed;
  }

  sendOwned(pool: BufferPool, slot: number): void {
    const b = new PacketBatch(1);
    b.push(slot);
    let sent = 0;
    try {
      sent = this.transport!.send(pool, b);
    } catch {
      sent = 0;
    }
    if (sent !== 1) this.drops.add(this.drops.at.transport_send_failed);
    pool.release(slot);
  }

  transmitControl(msg: Buffer, peer: Peer): void {
    if (peer.endpoint) this.transmitTo(msg, peer.endpoint);
  }

  transmitTo(msg: Buffer, ep: BinaryEndpoint): void {
    const pool = this.pool;
    if (!pool || !this.transport) return;
    const slot = pool.acquire();
    if (slot < 0) {
      this.drops.add(this.drops.at.pool_exhausted);
      return;
    }
    pool.fill(slot, msg);
    pool.setEndpoint(slot, ep.family, ep.addr, ep.port);
    this.sendOwned(pool, slot);
  }

  setDestination(pool: BufferPool, slot: number, peer: Peer): void {
    const ep = peer.endpoint!;
    pool.family[slot] = ep.family;
    ep.writeAddr(pool.addr, slot * 16);
    pool.port[slot] = ep.port;
  }

  sourceOf(pool: BufferPool, slot: number): BinaryEndpoint {
    const fam = pool.family[slot] === 6 ? 6 : 4;
    const at = slot * 16;
    return new BinaryEndpoint(fam, Buffer.from(pool.addr.subarray(at, at + (fam === 4 ? 4 : 16))), pool.port[slot]);
  }

  keyOf(ep: BinaryEndpoint): number {
    const a = Buffer.alloc(16);
    ep.addr.copy(a);
    return endpointKey(ep.family, a, 0, ep.port);
  }

  /** A fresh random local index. 30 bits: still unguessable, and always a V8 small integer. */
  newIndex(): number {
    for (;;) {
      const i = randomBytes(4).readUInt32LE(0) & INDEX_MASK;
      if (!this.indices.has(i)) return i;
    }
  }

  dropKeypair(kp: Keypair): void {
    this.indices.delete(kp.localIndex);
    kp.wipe();
  }

  wallNow(): number {
    return this.wallBase + (this.clock() - this.clockBase);
  }
}
