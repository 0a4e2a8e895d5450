/**
 * Outside: datagrams from the network. Transport data is authenticated and decrypted in place
 * and handed on; handshake initiations, responses and cookie replies are consumed here. Every
 * rejected datagram is a counted drop with a stable reason, never a throw.
 */
import { InvalidConfigError, type BufferPool, type PacketBatch } from '@overlay/dataplane';
import { INDEX_MASK, type Engine, type IndexEntry } from './engine.js';
import {
  COOKIE_RECEIVER, COOKIE_REPLY_LEN, DATA_COUNTER, DATA_MIN_LEN, DATA_RECEIVER, INIT_MAC1, INITIATION_LEN, INITIATION_MIN_INTERVAL,
  KEEPALIVE_TIMEOUT, MSG_COOKIE_REPLY, MSG_DATA, MSG_INITIATION, MSG_RESPONSE, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME,
  REKEY_TIMEOUT, RESP_MAC1, RESP_RECEIVER, RESPONSE_LEN, ZERO_KEYS_AFTER,
} from './messages.js';
import { consumeInitiation, consumeResponse, createResponse, wipeState } from './noise.js';
import type { BinaryEndpoint, Peer } from './peer.js';
import { compareTai64n } from './tai64n.js';
import { Keypair, OpenQueue } from './transport-data.js';
import { RATE_LIMITED, RATE_OK } from './load.js';

/**
 * Processes received datagrams. Takes ownership of every slot in `batch`: transport data that
 * authenticates is decrypted in place and pushed to `out` (ownership passes to the caller);
 * everything else is consumed or dropped with a counted reason and released. Never throws
 * on packet content. `out` must have room for batch.count slots.
 */
export function receiveBatch(e: Engine, pool: BufferPool, batch: PacketBatch, out: PacketBatch): void {
  if (!e.cipher || pool !== e.pool) throw new InvalidConfigError('pool', 'receive() before attach() or with another pool');
  if (e.closed) {
    // A transport may still deliver a batch it had in hand when the device closed.
    for (let i = 0; i < batch.count; i++) pool.release(batch.slots[i]);
    e.drops.add(e.drops.at.device_closed, batch.count);
    return;
  }
  const now = (e.now = e.clock());
  // A receive from inside a receive (a send that a synchronous transport answers at once) gets a
  // queue of its own; otherwise the device's queue is reused and nothing is allocated.
  const q = e.rxOpen.busy ? new OpenQueue(batch.count) : e.rxOpen.reserve(batch.count);
  q.busy = true;
  try {
    receiveInto(e, pool, batch, out, q, now);
  } finally {
    q.busy = false;
    q.count = 0;
  }
}

function receiveInto(e: Engine, pool: BufferPool, batch: PacketBatch, out: PacketBatch, q: OpenQueue, now: number): void {
  for (let i = 0; i < batch.count; i++) {
    const slot = batch.slots[i];
    const len = pool.len[slot];
    const off = pool.off[slot];
    const data = pool.data;
    if (len < 4) {
      e.drops.add(e.drops.at.too_short);
      pool.release(slot);
      continue;
    }
    const type = data.readUInt32LE(off);
    if (type === MSG_DATA) {
      // Checked now, opened with the rest of the run (one AEAD call per keypair run).
      if (!admitData(e, pool, slot, q)) pool.release(slot);
      continue;
    }
    // A handshake message may change keypairs: the data before it is finished first, in order.
    finishData(e, pool, out, q);
    if (type === MSG_INITIATION || type === MSG_RESPONSE || type === MSG_COOKIE_REPLY) {
      handleHandshake(e, pool, slot, type, now);
    } else {
      e.drops.add(e.drops.at.unknown_type);
    }
    pool.release(slot);
  }
  finishData(e, pool, out, q);
}

/**
 * Transport data before decryption: length, index, counter bounds, expiry, replay pre-check. A
 * datagram that passes is queued on e.rxOpen with its keypair and counter; false is a counted drop.
 */
function admitData(e: Engine, pool: BufferPool, slot: number, q: OpenQueue): boolean {
  const now = e.now;
  const data = pool.data;
  const off = pool.off[slot];
  const len = pool.len[slot];
  if (len < DATA_MIN_LEN) {
    e.drops.add(e.drops.at.too_short);
    return false;
  }
  const index = data.readUInt32LE(off + DATA_RECEIVER);
  // Our indices are below 2^30 (small integers to V8, so the lookup never boxes a number).
  const entry = index <= INDEX_MASK ? e.indices.get(index) : undefined;
  const kp = entry?.keypair;
  if (!entry || !kp) {
    e.drops.add(e.drops.at.unknown_index);
    return false;
  }
  const hi = data.readUInt32LE(off + DATA_COUNTER + 4);
  if (hi >= 0x200000) {
    e.drops.add(e.drops.at.counter_too_large);
    return false;
  }
  const counter = hi * 0x100000000 + data.readUInt32LE(off + DATA_COUNTER);
  if (now - kp.createdAt >= REJECT_AFTER_TIME || counter >= REJECT_AFTER_MESSAGES) {
    e.drops.add(e.drops.at.key_expired);
    return false;
  }
  if (!kp.replay.mayAccept(counter)) {
    e.drops.add(e.drops.at.replay);
    return false;
  }
  q.push(slot, entry, counter);
  return true;
}

/**
 * Opens the queued transport data, one AEAD call per run of one keypair, then finishes each
 * datagram in arrival order: replay window, keypair confirmation, roaming, timers, delivery.
 */
function finishData(e: Engine, pool: BufferPool, out: PacketBatch, q: OpenQueue): void {
  const n = q.count;
  if (n === 0) return;
  for (let i = 0; i < n; ) {
    const kp = q.entries[i]!.keypair!;
    let j = i + 1;
    while (j < n && q.entries[j]!.keypair === kp) j++;
    e.cipher!.openRun(q.slots, i, j - i, kp, q.ok);
    i = j;
  }
  for (let i = 0; i < n; i++) {
    const slot = q.slots[i];
    const entry = q.entries[i]!;
    q.entries[i] = null;
    if (!afterOpen(e, pool, slot, entry, q.counters[i], q.ok[i] === 1)) pool.release(slot);
    else if (!out.push(slot)) {
      // The caller's batch is smaller than documented: never leak the slot.
      e.drops.add(e.drops.at.out_batch_full);
      pool.release(slot);
    }
  }
  q.count = 0;
}

function afterOpen(e: Engine, pool: BufferPool, slot: number, entry: IndexEntry, counter: number, opened: boolean): boolean {
  const now = e.now;
  const kp = entry.keypair!;
  if (!opened) {
    e.drops.add(e.drops.at.decrypt_failed);
    return false;
  }
  if (kp.dead) {
    // Dropped (e.g. as `previous` when an earlier datagram of this batch confirmed `next`).
    e.drops.add(e.drops.at.unknown_index);
    return false;
  }
  // A second copy of a counter within one batch passed the pre-check too: only one is accepted.
  if (!kp.replay.accept(counter)) {
    e.drops.add(e.drops.at.replay);
    return false;
  }
  const peer = entry.peer;
  if (kp === peer.next) confirmNext(e, peer);
  roam(e, peer, pool, slot);
  peer.newHandshakeAt = 0;
  if (peer.persistentKeepaliveMs > 0) peer.persistentAt = now + peer.persistentKeepaliveMs;
  if (kp === peer.current && kp.initiator && !peer.rekeyRequested && now - kp.createdAt >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT) {
    peer.rekeyRequested = true;
    e.initiate(peer, false);
  }
  const plain = pool.len[slot];
  e.rxStats.packets++;
  if (plain === 0) {
    e.rxStats.keepalives++;
    return false;
  }
  if (peer.keepaliveAt === 0) peer.keepaliveAt = now + KEEPALIVE_TIMEOUT;
  if (e.mode === 'l3') {
    if (!checkInner(e, pool, slot, peer)) return false;
  } else {
    presentSource(pool, slot, peer);
  }
  peer.rxBytes += pool.len[slot];
  e.rxStats.bytes += pool.len[slot];
  return true;
}

/** L3: trims padding by the IP length and checks the source against the peer's allowed IPs. */
function checkInner(e: Engine, pool: BufferPool, slot: number, peer: Peer): boolean {
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
    e.drops.add(e.drops.at.malformed_inner);
    return false;
  }
  if (ipLen > len || ipLen < (family === 4 ? 20 : 40)) {
    e.drops.add(e.drops.at.malformed_inner);
    return false;
  }
  if (e.routes.lookup(family, data, srcAt) !== peer) {
    e.drops.add(e.drops.at.source_not_allowed);
    return false;
  }
  pool.len[slot] = ipLen;
  return true;
}

/** Overlay: the dataplane sees the peer's configured VTEP endpoint as the source. */
function presentSource(pool: BufferPool, slot: number, peer: Peer): void {
  const ep = peer.configuredEndpoint ?? peer.endpoint;
  if (ep) {
    pool.family[slot] = ep.family;
    ep.writeAddr(pool.addr, slot * 16);
    pool.port[slot] = ep.port;
  }
}

/** Roaming: the peer's endpoint follows the source of its latest authenticated packet. */
function roam(e: Engine, peer: Peer, pool: BufferPool, slot: number): void {
  const ep = peer.endpoint;
  const fam = pool.family[slot];
  if (fam !== 4 && fam !== 6) return;
  const at = slot * 16;
  if (ep && ep.family === fam && ep.port === pool.port[slot] && ep.sameAddr(pool.addr, at)) return;
  peer.endpoint = e.sourceOf(pool, slot);
}

function handleHandshake(e: Engine, pool: BufferPool, slot: number, type: number, now: number): void {
  const off = pool.off[slot];
  const len = pool.len[slot];
  const expected = type === MSG_INITIATION ? INITIATION_LEN : type === MSG_RESPONSE ? RESPONSE_LEN : COOKIE_REPLY_LEN;
  if (len !== expected) {
    e.drops.add(e.drops.at.bad_length);
    return;
  }
  // Handshake path: copying out is fine (at most a few thousand per second).
  const msg = Buffer.from(pool.data.subarray(off, off + len));
  const source = e.sourceOf(pool, slot);
  if (type === MSG_COOKIE_REPLY) {
    e.rxStats.cookieReplies++;
    const entry = e.indices.get(msg.readUInt32LE(COOKIE_RECEIVER));
    if (!entry || !entry.peer.cookies.consumeReply(msg, now)) e.drops.add(e.drops.at.bad_cookie);
    return;
  }
  const macAt = type === MSG_INITIATION ? INIT_MAC1 : RESP_MAC1;
  if (!e.checker.checkMac1(msg, macAt)) {
    e.drops.add(e.drops.at.bad_mac1);
    return;
  }
  if (e.load.underLoad(now)) {
    if (!e.checker.checkMac2(msg, macAt, source.bytes(), now)) {
      sendCookieReply(e, msg, macAt, source, now);
      e.drops.add(e.drops.at.under_load_cookie_sent);
      return;
    }
    const verdict = e.load.allow(source.addr, now);
    if (verdict !== RATE_OK) {
      e.drops.count(verdict === RATE_LIMITED ? 'rate_limited' : 'rate_table_full');
      return;
    }
  }
  if (type === MSG_INITIATION) consumeInitiationMsg(e, msg, source, now);
  else consumeResponseMsg(e, msg, source, now);
}

function consumeInitiationMsg(e: Engine, msg: Buffer, source: BinaryEndpoint, now: number): void {
  e.rxStats.handshakeInitiations++;
  let peer: Peer | undefined;
  let sawStatic = false;
  const result = consumeInitiation(msg, e.staticPrivate, e.staticPublic, (remote) => {
    sawStatic = true;
    peer = e.peersByKey.get(remote.toString('base64'));
    return peer ? peer.staticShared : null;
  });
  if (!result) {
    // An authenticated static key we do not hold gets no response, only a count.
    e.drops.count(sawStatic && peer === undefined ? 'unknown_peer' : 'handshake_failed');
    return;
  }
  const p = peer!;
  if (compareTai64n(result.timestamp, p.lastTimestamp) <= 0) {
    e.drops.add(e.drops.at.replayed_initiation);
    wipeState(result.state);
    return;
  }
  if (now - p.lastInitiationConsumedAt < INITIATION_MIN_INTERVAL) {
    e.drops.add(e.drops.at.initiation_flood);
    wipeState(result.state);
    return;
  }
  p.lastTimestamp = result.timestamp;
  p.lastInitiationConsumedAt = now;
  p.newHandshakeAt = 0;
  p.endpoint = source;
  const localIndex = e.newIndex();
  const resp = Buffer.alloc(RESPONSE_LEN);
  const keys = createResponse(result.state, { remoteStatic: p.publicKey, presharedKey: p.presharedKey, senderIndex: localIndex }, resp);
  p.cookies.addMacs(resp, RESP_MAC1, now);
  const kp = new Keypair(keys.send, keys.recv, localIndex, result.state.remoteIndex, false, now, p);
  wipeState(result.state);
  e.indices.set(localIndex, { peer: p, keypair: kp });
  // Responder: the new keypair waits in `next` until the initiator's first data packet confirms it.
  if (p.next) e.dropKeypair(p.next);
  if (p.previous) e.dropKeypair(p.previous);
  p.previous = null;
  p.next = kp;
  p.zeroKeysAt = now + ZERO_KEYS_AFTER;
  p.lastHandshakeWallMs = e.wallNow();
  e.transmitControl(resp, p);
  e.txStats.handshakeResponses++;
}

function consumeResponseMsg(e: Engine, msg: Buffer, source: BinaryEndpoint, now: number): void {
  e.rxStats.handshakeResponses++;
  const entry = e.indices.get(msg.readUInt32LE(RESP_RECEIVER));
  const peer = entry?.peer;
  if (!entry || entry.keypair || !peer || !peer.handshake || peer.handshake.localIndex !== msg.readUInt32LE(RESP_RECEIVER)) {
    e.drops.add(e.drops.at.unexpected_response);
    return;
  }
  const keys = consumeResponse(msg, peer.handshake, e.staticPrivate, peer.presharedKey);
  if (!keys) {
    e.drops.add(e.drops.at.handshake_failed);
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
  // Initiator: the new keypair is current at once. The one to keep as previous is the newest
  // the peer may still send under: an unconfirmed `next` (we answered its initiation while ours
  // was in flight: it completes its handshake with that keypair and sends under it) rather than
  // the old current. Dropping `next` here left both sides of crossing initiations sending under
  // keypairs the other had discarded, until the 15 s new-handshake timer.
  if (peer.previous) e.dropKeypair(peer.previous);
  if (peer.next) {
    if (peer.current) e.dropKeypair(peer.current);
    peer.previous = peer.next;
    peer.next = null;
  } else {
    peer.previous = peer.current;
  }
  peer.current = kp;
  peer.zeroKeysAt = now + ZERO_KEYS_AFTER;
  peer.lastHandshakeWallMs = e.wallNow();
  peer.handshakesCompleted++;
  e.announce(peer);
  // Confirm the session to the responder: queued data does it, or an empty keepalive.
  if (peer.queueCount > 0) e.flushQueue(peer);
  else e.sendKeepalive(peer);
}

function confirmNext(e: Engine, peer: Peer): void {
  const kp = peer.next!;
  if (peer.previous) e.dropKeypair(peer.previous);
  peer.previous = peer.current;
  peer.current = kp;
  peer.next = null;
  peer.handshakesCompleted++;
  peer.rekeyRequested = false;
  // The session is up: an initiation of ours still in flight (crossing the peer's) need not be
  // retransmitted; a late response to it is still consumed.
  peer.retransmitAt = 0;
  e.announce(peer);
  if (peer.queueCount > 0) e.flushQueue(peer);
}

function sendCookieReply(e: Engine, msg: Buffer, macAt: number, source: BinaryEndpoint, now: number): void {
  const out = Buffer.alloc(COOKIE_REPLY_LEN);
  e.checker.createReply(msg, macAt, msg.readUInt32LE(4), source.bytes(), now, out);
  e.transmitTo(out, source);
  e.txStats.cookieReplies++;
}
