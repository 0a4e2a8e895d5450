/**
 * Gossip envelopes: building, sealing and opening UDP packets, and the freshness checks every
 * packet and push-pull request goes through.
 *
 * Packet: [sealed by the cluster keyring] Envelope{header, msgs...}. Opening checks, each failure
 * a counted drop with a stable reason: size cap (`oversized`), AEAD (`auth_failed`), protobuf
 * (`malformed`), protocol range (`protocol_mismatch`), sender (`bad_sender`), freshness and
 * replay (`stale_timestamp`, `replayed`, `old_session`).
 *
 * Replay protection: every packet carries the sender's name, a session id (its start time in ms,
 * so it grows across restarts), a per-session sequence number and a send timestamp, all inside
 * the AEAD. A receiver keeps, per sender, the newest session and a 64-packet sliding window over
 * sequence numbers (as IPsec/WireGuard do): older sessions, sequence numbers already seen or left
 * of the window are dropped. A timestamp farther than `maxClockSkewMs` from our clock is dropped
 * too, which bounds what a replay can do against a receiver that has just restarted and holds no
 * window yet. Requires clocks within maxClockSkewMs (NTP). Push-pull requests use the same check
 * with their own sequence space (pushpull.ts).
 *
 * Single-threaded; owned by one agent.
 */
import type { Clock } from './env.js';
import type { Sealer } from './keyring.js';
import type { AgentDrops } from './counters.js';
import { type Envelope, MAX_NAME_LEN, PROTOCOL_MAX, PROTOCOL_MIN, WireDecodeError, decodeEnvelope, encodeHeader } from './wire.js';

const WINDOW = 64;
const MAX_SENDERS = 65536;

interface SenderState {
  session: number;
  top: number;
  /** Bit i: top − i seen (lo: i < 32, hi: 32 ≤ i < 64). */
  lo: number;
  hi: number;
}

/** Outcome of a freshness check: null when fresh (and now recorded as seen). */
export type Staleness = 'stale_timestamp' | 'replayed' | 'old_session' | null;

/**
 * Per sender: newest session and a 64-entry sliding window over sequence numbers, plus the
 * clock-skew bound. Bounded to 65 536 senders (the oldest is forgotten first).
 */
export class SessionWindows {
  private readonly senders = new Map<string, SenderState>();

  constructor(
    private readonly clock: Clock,
    private readonly maxClockSkewMs: number,
  ) {}

  /** Check (from, session, seq, ts); records it as seen when fresh. */
  check(from: string, session: number, seq: number, ts: number): Staleness {
    if (Math.abs(this.clock.now() - ts) > this.maxClockSkewMs) return 'stale_timestamp';
    if (seq < 1) return 'replayed';
    const w = this.senders.get(from);
    if (!w || session > w.session) {
      if (!w && this.senders.size >= MAX_SENDERS) this.senders.delete(this.senders.keys().next().value!);
      this.senders.set(from, { session, top: seq, lo: 1, hi: 0 });
      return null;
    }
    if (session < w.session) return 'old_session';
    if (seq > w.top) {
      const d = seq - w.top;
      if (d >= WINDOW) {
        w.lo = 0;
        w.hi = 0;
      } else if (d >= 32) {
        w.hi = (w.lo << (d - 32)) >>> 0;
        w.lo = 0;
      } else {
        w.hi = ((w.hi << d) | (w.lo >>> (32 - d))) >>> 0;
        w.lo = (w.lo << d) >>> 0;
      }
      w.lo = (w.lo | 1) >>> 0;
      w.top = seq;
      return null;
    }
    const i = w.top - seq;
    if (i >= WINDOW) return 'replayed';
    if (i < 32) {
      if ((w.lo >>> i) & 1) return 'replayed';
      w.lo = (w.lo | (1 << i)) >>> 0;
    } else {
      if ((w.hi >>> (i - 32)) & 1) return 'replayed';
      w.hi = (w.hi | (1 << (i - 32))) >>> 0;
    }
    return null;
  }

  /** Forget a sender (reaped member). */
  forget(from: string): void {
    this.senders.delete(from);
  }
}

/** A sender name we accept: non-empty, bounded, not ourselves. */
export const validSender = (from: string, self: string): boolean => from !== '' && from !== self && from.length <= MAX_NAME_LEN;

/** Whether a peer's protocol range [pmin, pmax] overlaps ours. */
export const protocolOverlaps = (pmin: number, pmax: number): boolean => pmax >= PROTOCOL_MIN && pmin <= PROTOCOL_MAX && pmin <= pmax;

/** Why a sealed unit (datagram or push-pull chunk) failed to open. */
export type OpenFailure = 'oversized' | 'auth_failed' | 'malformed' | 'protocol_mismatch';

/** The checks every sealed unit passes: size cap, AEAD, decoding, protocol range. */
export function openSealed<T extends { pmin: number; pmax: number }>(sealer: Sealer, bytes: Uint8Array, maxBytes: number, decode: (plain: Uint8Array) => T): T | OpenFailure {
  if (bytes.length > maxBytes) return 'oversized';
  const plain = sealer.open(bytes);
  if (!plain) return 'auth_failed';
  let v: T;
  try {
    v = decode(plain);
  } catch (e) {
    if (!(e instanceof WireDecodeError)) throw e;
    return 'malformed';
  }
  return protocolOverlaps(v.pmin, v.pmax) ? v : 'protocol_mismatch';
}

export interface EnvelopeOptions {
  name: string;
  session: number;
  clock: Clock;
  sealer: Sealer;
  maxPacketBytes: number;
  maxClockSkewMs: number;
  drops: AgentDrops;
}

/** Builds our packets and opens everyone else's. */
export class Envelopes {
  private sendSeq = 0;
  private readonly windows: SessionWindows;

  constructor(private readonly o: EnvelopeOptions) {
    this.windows = new SessionWindows(o.clock, o.maxClockSkewMs);
  }

  /** A fresh header (next sequence number, our clock now). */
  header(): Uint8Array {
    return encodeHeader({ pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: this.o.name, session: this.o.session, seq: ++this.sendSeq, ts: this.o.clock.now() });
  }

  /** Bytes left for message fields in a packet with header `head`. */
  room(head: Uint8Array): number {
    return this.o.maxPacketBytes - head.length - this.o.sealer.overhead;
  }

  /** Concatenate the header and pre-encoded fields, and seal. */
  seal(head: Uint8Array, fields: Uint8Array[]): Uint8Array {
    let len = head.length;
    for (const f of fields) len += f.length;
    const plain = new Uint8Array(len);
    plain.set(head, 0);
    let off = head.length;
    for (const f of fields) {
      plain.set(f, off);
      off += f.length;
    }
    return this.o.sealer.seal(plain);
  }

  /** Open and check one datagram; null when dropped (counted). */
  open(bytes: Uint8Array): Envelope | null {
    const d = this.o.drops;
    const env = openSealed(this.o.sealer, bytes, this.o.maxPacketBytes, decodeEnvelope);
    if (typeof env === 'string') return (d.add(d.at[env]), null);
    if (!validSender(env.from, this.o.name)) return (d.add(d.at.bad_sender), null);
    const why = this.windows.check(env.from, env.session, env.seq, env.ts);
    if (why) return (d.add(d.at[why]), null);
    return env;
  }

  forget(from: string): void {
    this.windows.forget(from);
  }
}
