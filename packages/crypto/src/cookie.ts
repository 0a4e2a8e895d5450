/**
 * mac1/mac2 and cookie replies (WireGuard paper §5.4.4, §5.4.7). mac1 proves the sender knows
 * the receiver's public key; under load the receiver demands mac2, keyed by a cookie bound to
 * the sender's IP address and port, and answers a missing one with an encrypted cookie reply.
 */
import { COOKIE_BODY, COOKIE_NONCE, COOKIE_RECEIVER, COOKIE_REFRESH_TIME, COOKIE_REPLY_LEN, LABEL_COOKIE, LABEL_MAC1, MSG_COOKIE_REPLY } from './messages.js';
import { equal, hash, mac, randomBytes, xaeadDecrypt, xaeadEncrypt } from './primitives.js';

const ZERO16 = Buffer.alloc(16);

/** Our side as receiver of handshake messages: verifies macs, issues cookies. */
export class CookieChecker {
  private readonly mac1Key: Buffer;
  private readonly cookieKey: Buffer;
  private secret = randomBytes(32);
  private secretSetAt: number;

  constructor(ourPublic: Buffer, now: number) {
    this.mac1Key = hash(LABEL_MAC1, ourPublic);
    this.cookieKey = hash(LABEL_COOKIE, ourPublic);
    this.secretSetAt = now;
  }

  /** mac1 at `macOffset` covers msg[0..macOffset). */
  checkMac1(msg: Uint8Array, macOffset: number): boolean {
    return equal(mac(this.mac1Key, msg.subarray(0, macOffset)), msg.subarray(macOffset, macOffset + 16));
  }

  /** mac2 at macOffset+16 covers msg[0..macOffset+16) and is keyed by the source's cookie. */
  checkMac2(msg: Uint8Array, macOffset: number, source: Buffer, now: number): boolean {
    const cookie = this.cookieFor(source, now);
    return equal(mac(cookie, msg.subarray(0, macOffset + 16)), msg.subarray(macOffset + 16, macOffset + 32));
  }

  /** Writes a cookie reply to `out` for a message whose mac1 is at macOffset. */
  createReply(msg: Uint8Array, macOffset: number, receiverIndex: number, source: Buffer, now: number, out: Buffer): number {
    const cookie = this.cookieFor(source, now);
    const nonce = randomBytes(24);
    const body = xaeadEncrypt(this.cookieKey, nonce, cookie, msg.subarray(macOffset, macOffset + 16));
    out.fill(0, 0, COOKIE_REPLY_LEN);
    out[0] = MSG_COOKIE_REPLY;
    out.writeUInt32LE(receiverIndex >>> 0, COOKIE_RECEIVER);
    nonce.copy(out, COOKIE_NONCE);
    body.copy(out, COOKIE_BODY);
    return COOKIE_REPLY_LEN;
  }

  private cookieFor(source: Buffer, now: number): Buffer {
    if (now - this.secretSetAt >= COOKIE_REFRESH_TIME) {
      this.secret = randomBytes(32);
      this.secretSetAt = now;
    }
    return mac(this.secret, source);
  }
}

/** Our side as sender of handshake messages to one peer: adds macs, keeps the latest cookie. */
export class CookieGenerator {
  private readonly mac1Key: Buffer;
  private readonly cookieKey: Buffer;
  private cookie: Buffer | null = null;
  private cookieAt = 0;
  private lastMac1: Buffer | null = null;

  constructor(peerPublic: Buffer) {
    this.mac1Key = hash(LABEL_MAC1, peerPublic);
    this.cookieKey = hash(LABEL_COOKIE, peerPublic);
  }

  /** Fills mac1 and mac2 (zeros unless we hold a fresh cookie) of a message in place. */
  addMacs(msg: Buffer, macOffset: number, now: number): void {
    const m1 = mac(this.mac1Key, msg.subarray(0, macOffset));
    m1.copy(msg, macOffset);
    this.lastMac1 = m1;
    if (this.cookie && now - this.cookieAt < COOKIE_REFRESH_TIME) {
      mac(this.cookie, msg.subarray(0, macOffset + 16)).copy(msg, macOffset + 16);
    } else {
      ZERO16.copy(msg, macOffset + 16);
    }
  }

  /** Takes a cookie reply for our last message; false when it does not authenticate. */
  consumeReply(msg: Uint8Array, now: number): boolean {
    if (!this.lastMac1) return false;
    const cookie = xaeadDecrypt(this.cookieKey, msg.subarray(COOKIE_NONCE, COOKIE_BODY), msg.subarray(COOKIE_BODY, COOKIE_REPLY_LEN), this.lastMac1);
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieAt = now;
    return true;
  }
}
