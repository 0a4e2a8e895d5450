/**
 * WireGuard's timers as deadlines per peer, evaluated by tick() against the engine's clock:
 * handshake retransmission and give-up, keepalive, new handshake after silence, persistent
 * keepalive, and zeroing keys of idle sessions.
 */
import type { Engine, PeerDownEvent } from './engine.js';
import { REJECT_AFTER_TIME, REKEY_ATTEMPT_TIME } from './messages.js';
import type { Peer } from './peer.js';
import { wipeState } from './noise.js';

/** Evaluates every peer's timers against the clock. Called on an interval once attached. */
export function tick(e: Engine): void {
  if (e.closed) return;
  const now = (e.now = e.clock());
  for (const peer of e.peersByKey.values()) {
    if (peer.retransmitAt !== 0 && now >= peer.retransmitAt) {
      if (now - peer.handshakeStartedAt >= REKEY_ATTEMPT_TIME) giveUp(e, peer);
      else e.initiate(peer, true);
    }
    if (peer.keepaliveAt !== 0 && now >= peer.keepaliveAt) {
      peer.keepaliveAt = 0;
      e.sendKeepalive(peer);
    }
    if (peer.newHandshakeAt !== 0 && now >= peer.newHandshakeAt) {
      peer.newHandshakeAt = 0;
      // Sent data but heard nothing for KEEPALIVE + REKEY_TIMEOUT: the session may be dead.
      e.initiate(peer, false);
    }
    if (peer.persistentAt !== 0 && now >= peer.persistentAt) {
      peer.persistentAt = now + peer.persistentKeepaliveMs;
      e.sendKeepalive(peer);
    }
    if (peer.zeroKeysAt !== 0 && now >= peer.zeroKeysAt) e.zeroKeys(peer, 'keys_expired');
  }
}

function giveUp(e: Engine, peer: Peer): void {
  peer.retransmitAt = 0;
  if (peer.handshake) {
    e.indices.delete(peer.handshake.localIndex);
    wipeState(peer.handshake);
    peer.handshake = null;
  }
  e.clearQueue(peer, 'handshake_timeout');
  const now = (e.now = e.clock());
  if (peer.up && !(peer.current && now - peer.current.createdAt < REJECT_AFTER_TIME)) {
    peer.up = false;
    const event: PeerDownEvent = { publicKey: peer.publicKeyText, reason: 'handshake_timeout' };
    e.emit('peer-down', event);
  }
}
