/**
 * One configured WireGuard peer: its keys, endpoint, allowed IPs, the handshake in flight, the
 * previous/current/next keypairs, its timer deadlines and the packets queued while a handshake
 * is pending. Plain state; the protocol logic lives in device.ts. Owned by one device.
 */
import { formatIpAddress, InvalidAddressError } from '@overlay/dataplane';
import { CookieGenerator } from './cookie.js';
import { parseAddress, type Prefix } from './allowed-ips.js';
import type { HandshakeState } from './noise.js';
import type { Keypair } from './transport-data.js';

export interface Endpoint {
  address: string;
  port: number;
}

/** Endpoint in the pool's binary form. */
export class BinaryEndpoint {
  constructor(readonly family: 4 | 6, readonly addr: Buffer, readonly port: number) {}

  static parse(e: Endpoint, field = 'endpoint'): BinaryEndpoint {
    const port = e.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidAddressError(field, `${e.address}:${port}`);
    const a = parseAddress(e.address, field);
    return new BinaryEndpoint(a.family, a.bytes, port);
  }

  toEndpoint(): Endpoint {
    return { address: formatIpAddress(this.family, this.addr), port: this.port };
  }

  /** Writes the address bytes into `dst` at `at` (a slot's pool.addr), by hand: 4 or 16 bytes cost less than a Buffer.copy call. */
  writeAddr(dst: Uint8Array, at: number): void {
    const a = this.addr;
    for (let i = 0; i < a.length; i++) dst[at + i] = a[i];
  }

  /** Whether `src` at `at` holds this address (per packet: no Buffer.compare call). */
  sameAddr(src: Uint8Array, at: number): boolean {
    const a = this.addr;
    for (let i = 0; i < a.length; i++) if (src[at + i] !== a[i]) return false;
    return true;
  }

  /** Source bytes for cookies: address then big-endian port. */
  bytes(): Buffer {
    const b = Buffer.alloc(this.addr.length + 2);
    this.addr.copy(b, 0);
    b.writeUInt16BE(this.port, this.addr.length);
    return b;
  }
}

/** A number key for an endpoint held in pool slot metadata; equal endpoints give equal keys. */
export function endpointKey(family: number, addr: Uint8Array, at: number, port: number): number {
  if (family === 4) return (((addr[at] << 24) | (addr[at + 1] << 16) | (addr[at + 2] << 8) | addr[at + 3]) >>> 0) * 65536 + port;
  // IPv6: FNV-1a over the 16 bytes, then the port; collisions are resolved by comparing bytes.
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i++) h = Math.imul(h ^ addr[at + i], 0x01000193) >>> 0;
  return 2 ** 48 + h * 65536 + port;
}

export class Peer {
  readonly publicKeyText: string;
  presharedKey: Buffer | null = null;
  /** DH(our static, their static), computed once per configuration. */
  staticShared: Buffer;
  /** Where we send: the configured endpoint, then the source of the latest authenticated packet. */
  endpoint: BinaryEndpoint | null = null;
  /** The endpoint as configured (the overlay routes by it, so it is stable across roaming). */
  configuredEndpoint: BinaryEndpoint | null = null;
  allowed: Prefix[] = [];
  persistentKeepaliveMs = 0;
  readonly cookies: CookieGenerator;

  handshake: HandshakeState | null = null;
  lastTimestamp: Buffer = Buffer.alloc(12);
  lastInitiationConsumedAt = -Infinity;
  lastInitiationSentAt = -Infinity;
  handshakeStartedAt = 0;

  previous: Keypair | null = null;
  current: Keypair | null = null;
  next: Keypair | null = null;
  up = false;

  // Timer deadlines (device clock, ms); 0 = not armed.
  retransmitAt = 0;
  keepaliveAt = 0;
  newHandshakeAt = 0;
  zeroKeysAt = 0;
  persistentAt = 0;
  /** Set when a receive-side rekey (REJECT - KEEPALIVE - REKEY_TIMEOUT) was already asked for. */
  rekeyRequested = false;

  /** Slots held while a handshake is pending (copies, owned by the device). */
  readonly queue: Int32Array;
  queueHead = 0;
  queueCount = 0;

  rxBytes = 0;
  txBytes = 0;
  lastHandshakeWallMs = 0;
  handshakesCompleted = 0;

  constructor(readonly publicKey: Buffer, staticShared: Buffer, queueLimit: number) {
    this.publicKeyText = publicKey.toString('base64');
    this.staticShared = staticShared;
    this.cookies = new CookieGenerator(publicKey);
    this.queue = new Int32Array(queueLimit);
  }
}
