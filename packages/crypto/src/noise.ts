/**
 * The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as WireGuard frames it (paper §5.4):
 *
 *   <- s
 *   -> e, es, s, ss, {timestamp}
 *   <- e, ee, se, psk, {}
 *
 * Pure functions over message buffers: no peers, no timers, no I/O. Ephemeral keys can be
 * injected so known-answer tests reproduce a transcript. mac1/mac2 are outside Noise and are
 * handled in cookie.ts; these functions leave those 32 bytes to the caller.
 */
import {
  CONSTRUCTION, IDENTIFIER, INIT_EPHEMERAL, INIT_SENDER, INIT_STATIC, INIT_TIMESTAMP,
  MSG_INITIATION, MSG_RESPONSE, RESP_EMPTY, RESP_EPHEMERAL, RESP_RECEIVER, RESP_SENDER,
} from './messages.js';
import { aeadDecrypt, aeadEncrypt, dh, generatePrivate, hash, kdf, publicFromPrivate, wipe } from './primitives.js';

const INITIAL_CHAIN = hash(CONSTRUCTION);
const INITIAL_HASH = hash(INITIAL_CHAIN, IDENTIFIER);
const EMPTY = Buffer.alloc(0);
const ZERO_KEY = Buffer.alloc(32);

/** Transcript state carried between the two messages. Owned by one handshake; wiped after use. */
export interface HandshakeState {
  chainingKey: Buffer;
  hash: Buffer;
  /** Our ephemeral private key (initiator only, until the response). */
  ephemeralPrivate: Buffer | null;
  /** The initiator's ephemeral public key (responder side). */
  remoteEphemeral: Buffer | null;
  localIndex: number;
  remoteIndex: number;
}

export interface SessionKeys {
  send: Buffer;
  recv: Buffer;
}

export interface InitiationInput {
  staticPublic: Buffer;
  remoteStatic: Buffer;
  /** DH(our static private, remote static public), precomputed per peer. */
  staticShared: Buffer;
  /** The first message's payload: WireGuard's 12-byte TAI64N timestamp. */
  timestamp: Buffer;
  senderIndex: number;
  ephemeralPrivate?: Buffer;
  /** Noise prologue; WireGuard's identifier by default (other values: published Noise vectors). */
  prologue?: Buffer;
}

/** h after MixHash(prologue) and the pre-message MixHash(responder static). */
function initialHash(prologue: Buffer | undefined, responderStatic: Buffer): Buffer {
  return hash(prologue ? hash(INITIAL_CHAIN, prologue) : INITIAL_HASH, responderStatic);
}

/**
 * Writes an initiation into `out`: the header, then the Noise message (ephemeral, encrypted
 * static, encrypted payload) from byte 8; with the 12-byte timestamp that is bytes 0..115 and
 * mac1/mac2 follow.
 */
export function createInitiation(input: InitiationInput, out: Buffer): HandshakeState {
  const e = input.ephemeralPrivate ?? generatePrivate();
  const ePub = publicFromPrivate(e);
  let h = initialHash(input.prologue, input.remoteStatic);
  const [c0] = kdf(1, INITIAL_CHAIN, ePub);
  h = hash(h, ePub);
  const es = dh(e, input.remoteStatic);
  const [c1, k1] = kdf(2, c0, es);
  const encStatic = aeadEncrypt(k1, 0, input.staticPublic, h);
  h = hash(h, encStatic);
  const [c, k2] = kdf(2, c1, input.staticShared);
  const encTime = aeadEncrypt(k2, 0, input.timestamp, h);
  h = hash(h, encTime);
  wipe(c0, es, c1, k1, k2);
  out.fill(0);
  out[0] = MSG_INITIATION;
  out.writeUInt32LE(input.senderIndex >>> 0, INIT_SENDER);
  ePub.copy(out, INIT_EPHEMERAL);
  encStatic.copy(out, INIT_STATIC);
  encTime.copy(out, INIT_TIMESTAMP);
  return { chainingKey: c, hash: h, ephemeralPrivate: e, remoteEphemeral: null, localIndex: input.senderIndex >>> 0, remoteIndex: 0 };
}

export interface ConsumedInitiation {
  state: HandshakeState;
  remoteStatic: Buffer;
  timestamp: Buffer;
}

/**
 * Authenticates an initiation. `staticSharedFor` maps the decrypted initiator static key to the
 * precomputed DH(our static, their static), or null for an unknown key (then this returns null
 * and no further work is done). Returns null on any authentication failure.
 */
export function consumeInitiation(
  msg: Uint8Array,
  staticPrivate: Buffer,
  staticPublic: Buffer,
  staticSharedFor: (remoteStatic: Buffer) => Buffer | null,
  options: { prologue?: Buffer; payloadLen?: number } = {},
): ConsumedInitiation | null {
  const ePub = Buffer.from(msg.subarray(INIT_EPHEMERAL, INIT_EPHEMERAL + 32));
  let h = initialHash(options.prologue, staticPublic);
  const [c0] = kdf(1, INITIAL_CHAIN, ePub);
  h = hash(h, ePub);
  let es: Buffer;
  try {
    es = dh(staticPrivate, ePub);
  } catch {
    return null;
  }
  const [c1, k1] = kdf(2, c0, es);
  wipe(c0, es);
  const encStatic = msg.subarray(INIT_STATIC, INIT_STATIC + 48);
  const remoteStatic = aeadDecrypt(k1, 0, encStatic, h);
  wipe(k1);
  const ss = remoteStatic && staticSharedFor(remoteStatic);
  if (!ss) {
    wipe(c1);
    return null;
  }
  h = hash(h, encStatic);
  const [c, k2] = kdf(2, c1, ss);
  wipe(c1);
  const encTime = msg.subarray(INIT_TIMESTAMP, INIT_TIMESTAMP + (options.payloadLen ?? 12) + 16);
  const timestamp = aeadDecrypt(k2, 0, encTime, h);
  wipe(k2);
  if (!timestamp) {
    wipe(c);
    return null;
  }
  h = hash(h, encTime);
  const senderIndex = msg[4] | (msg[5] << 8) | (msg[6] << 16) | (msg[7] << 24);
  return {
    state: { chainingKey: c, hash: h, ephemeralPrivate: null, remoteEphemeral: ePub, localIndex: 0, remoteIndex: senderIndex >>> 0 },
    remoteStatic,
    timestamp,
  };
}

export interface ResponseInput {
  remoteStatic: Buffer;
  presharedKey: Buffer | null;
  senderIndex: number;
  ephemeralPrivate?: Buffer;
  /** The second message's payload; WireGuard's is empty. */
  payload?: Buffer;
}

/**
 * Writes a response into `out` (the Noise message from byte 12; with WireGuard's empty payload
 * that is bytes 0..59 and mac1/mac2 follow); returns the session keys (responder side).
 */
export function createResponse(state: HandshakeState, input: ResponseInput, out: Buffer): SessionKeys {
  const e = input.ephemeralPrivate ?? generatePrivate();
  const ePub = publicFromPrivate(e);
  const [c1] = kdf(1, state.chainingKey, ePub);
  let h = hash(state.hash, ePub);
  const ee = dh(e, state.remoteEphemeral!);
  const [c2] = kdf(1, c1, ee);
  const se = dh(e, input.remoteStatic);
  const [c3] = kdf(1, c2, se);
  const [c, t, k] = kdf(3, c3, input.presharedKey ?? ZERO_KEY);
  h = hash(h, t);
  const empty = aeadEncrypt(k, 0, input.payload ?? EMPTY, h);
  h = hash(h, empty);
  wipe(e, ee, se, c1, c2, c3, t, k);
  out.fill(0);
  out[0] = MSG_RESPONSE;
  out.writeUInt32LE(input.senderIndex >>> 0, RESP_SENDER);
  out.writeUInt32LE(state.remoteIndex >>> 0, RESP_RECEIVER);
  ePub.copy(out, RESP_EPHEMERAL);
  empty.copy(out, RESP_EMPTY);
  state.localIndex = input.senderIndex >>> 0;
  const [recv, send] = kdf(2, c, EMPTY);
  wipe(c);
  return { send, recv };
}

/**
 * Authenticates a response against our pending initiation state. Returns the session keys
 * (initiator side), or null on failure (the state is left usable for a genuine response).
 */
export function consumeResponse(
  msg: Uint8Array,
  state: HandshakeState,
  staticPrivate: Buffer,
  presharedKey: Buffer | null,
  payloadLen = 0,
): (SessionKeys & { payload: Buffer }) | null {
  const ePub = Buffer.from(msg.subarray(RESP_EPHEMERAL, RESP_EPHEMERAL + 32));
  // Only derived values are wiped: the state stays usable for a genuine response.
  const [c1] = kdf(1, state.chainingKey, ePub);
  const h = hash(state.hash, ePub);
  let ee: Buffer | null = null;
  let se: Buffer;
  try {
    ee = dh(state.ephemeralPrivate!, ePub);
    se = dh(staticPrivate, ePub);
  } catch {
    wipe(c1, ee);
    return null;
  }
  const [c2] = kdf(1, c1, ee);
  const [c3] = kdf(1, c2, se);
  const [c, t, k] = kdf(3, c3, presharedKey ?? ZERO_KEY);
  const empty = msg.subarray(RESP_EMPTY, RESP_EMPTY + payloadLen + 16);
  const payload = aeadDecrypt(k, 0, empty, hash(h, t));
  wipe(ee, se, c1, c2, c3, t, k);
  if (!payload) {
    wipe(c);
    return null;
  }
  state.remoteIndex = (msg[RESP_SENDER] | (msg[RESP_SENDER + 1] << 8) | (msg[RESP_SENDER + 2] << 16) | (msg[RESP_SENDER + 3] << 24)) >>> 0;
  const [send, recv] = kdf(2, c, EMPTY);
  wipe(c);
  return { send, recv, payload };
}

export function wipeState(state: HandshakeState): void {
  wipe(state.chainingKey, state.hash, state.ephemeralPrivate);
  state.ephemeralPrivate = null;
}

export { RESP_RECEIVER };
