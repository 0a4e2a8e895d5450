/**
 * Inside: packets from the device side (a TUN device, or the dataplane's VXLAN datagrams) to
 * the network. Routes each slot to a peer, seals it in place and transmits the batch; packets
 * for a peer without a session are queued while its handshake runs.
 */
import { InvalidConfigError, type BufferPool, type PacketBatch } from '@overlay/dataplane';
import type { Engine } from './engine.js';
import { endpointKey, type Peer } from './peer.js';
import type { Keypair } from './transport-data.js';

/**
 * Encrypts and transmits the packets of `batch`. Slots stay owned by the caller (as with
 * Transport.send); a packet held for a pending handshake is copied. Returns how many were
 * sent or queued; every other packet is a counted drop in stats().drops.
 */
export function sendBatch(e: Engine, pool: BufferPool, batch: PacketBatch): number {
  const cipher = e.cipher;
  if (!cipher || pool !== e.pool) throw new InvalidConfigError('pool', 'send() before attach() or with another pool');
  if (e.closed) {
    e.drops.add(e.drops.at.device_closed, batch.count);
    return 0;
  }
  e.now = e.clock();
  const tx = e.txBatch;
  tx.clear();
  let accepted = 0;
  // Consecutive packets under one keypair are sealed with one AEAD call (cipher.sealRun) just
  // before the batch goes out or the keypair changes: [runStart, tx.count) under runKp.
  let runKp: Keypair | null = null;
  let runStart = 0;
  let runCounter = 0;
  const padTo = e.mode === 'l3' ? 16 : 1;
  for (let i = 0; i < batch.count; i++) {
    const slot = batch.slots[i];
    const peer = routeOf(e, pool, slot);
    if (!peer) {
      e.drops.add(e.drops.at.no_peer);
      continue;
    }
    const kp = e.usableSendKeypair(peer);
    if (!kp) {
      if (e.enqueue(peer, pool, slot)) accepted++;
      e.initiate(peer, false);
      continue;
    }
    if (!peer.endpoint) {
      e.drops.add(e.drops.at.no_endpoint);
      continue;
    }
    const plainLen = pool.len[slot];
    if (!cipher.reserve(slot, padTo)) {
      e.drops.add(e.drops.at.no_room);
      continue;
    }
    if (kp !== runKp) {
      cipher.sealRun(tx.slots, runStart, tx.count - runStart, runKp!, runCounter);
      runKp = kp;
      runStart = tx.count;
      runCounter = kp.sendCounter;
    }
    kp.sendCounter++;
    e.setDestination(pool, slot, peer);
    e.afterDataSent(peer, plainLen);
    tx.push(slot);
    accepted++;
    if (tx.count === tx.capacity) {
      cipher.sealRun(tx.slots, runStart, tx.count - runStart, runKp, runCounter);
      runKp = null;
      runStart = 0;
      accepted -= e.flushTx(pool, tx);
    }
  }
  if (runKp) cipher.sealRun(tx.slots, runStart, tx.count - runStart, runKp, runCounter);
  accepted -= e.flushTx(pool, tx);
  return accepted;
}

function routeOf(e: Engine, pool: BufferPool, slot: number): Peer | null {
  const data = pool.data;
  if (e.mode === 'overlay') {
    const peer = e.peersByEndpoint.get(endpointKey(pool.family[slot], pool.addr, slot * 16, pool.port[slot]));
    if (!peer) return null;
    const ep = peer.configuredEndpoint!;
    if (ep.family === 6 && !ep.sameAddr(pool.addr, slot * 16)) return null;
    return peer;
  }
  const off = pool.off[slot];
  const len = pool.len[slot];
  const version = len > 0 ? data[off] >> 4 : 0;
  if (version === 4 && len >= 20) return e.routes.lookup(4, data, off + 16);
  if (version === 6 && len >= 40) return e.routes.lookup(6, data, off + 24);
  return null;
}
