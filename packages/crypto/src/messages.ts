/** WireGuard message types, sizes and field offsets (all integers little-endian). */
export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_DATA = 4;

export const INITIATION_LEN = 148;
export const RESPONSE_LEN = 92;
export const COOKIE_REPLY_LEN = 64;
/** type(4) + receiver index(4) + counter(8). */
export const DATA_HEADER_LEN = 16;
/** Header plus an empty payload's tag: a keepalive. */
export const DATA_MIN_LEN = 32;

export const INIT_SENDER = 4;
export const INIT_EPHEMERAL = 8;
export const INIT_STATIC = 40;
export const INIT_TIMESTAMP = 88;
export const INIT_MAC1 = 116;
export const INIT_MAC2 = 132;

export const RESP_SENDER = 4;
export const RESP_RECEIVER = 8;
export const RESP_EPHEMERAL = 12;
export const RESP_EMPTY = 44;
export const RESP_MAC1 = 60;
export const RESP_MAC2 = 76;

export const COOKIE_RECEIVER = 4;
export const COOKIE_NONCE = 8;
export const COOKIE_BODY = 32;

export const DATA_RECEIVER = 4;
export const DATA_COUNTER = 8;

export const CONSTRUCTION = Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
export const IDENTIFIER = Buffer.from('WireGuard v1 zx2c4 Jason@zx2c4.com');
export const LABEL_MAC1 = Buffer.from('mac1----');
export const LABEL_COOKIE = Buffer.from('cookie--');

/**
 * Message limits. The paper (section 6.1) says rekey after 2^60 messages and reject after
 * 2^64 − 2^13 − 1, but counters here are JS numbers, exact only up to 2^53 − 1: past it
 * `sendCounter++` stops changing and a nonce would repeat. So the limits enforced are
 * min(paper, 2^53 − 1) for rejecting and, to rekey while the session still works, half of that
 * space for rekeying. Every counter check (sending, the receive-side reject, the replay window)
 * uses these two.
 */
export const SPEC_REKEY_AFTER_MESSAGES = 2n ** 60n;
export const SPEC_REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
/** Counters from this one on are never sent nor accepted: 2^53 − 1. */
export const REJECT_AFTER_MESSAGES = Math.min(Number.MAX_SAFE_INTEGER, Number(SPEC_REJECT_AFTER_MESSAGES));
/** The initiator starts a new handshake once a session has sent this many: 2^52. */
export const REKEY_AFTER_MESSAGES = Math.min(Number(SPEC_REKEY_AFTER_MESSAGES), 2 ** 52);
/** Protocol times from the WireGuard paper, section 6.1 (ms). */
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const REKEY_TIMEOUT_JITTER = 334;
export const KEEPALIVE_TIMEOUT = 10_000;
export const COOKIE_REFRESH_TIME = 120_000;
/** At most 50 initiations per second are consumed from one peer (flood protection). */
export const INITIATION_MIN_INTERVAL = 20;
/** Sessions idle this long (REJECT_AFTER_TIME × 3) have their keys zeroed. */
export const ZERO_KEYS_AFTER = REJECT_AFTER_TIME * 3;
