import { createRequire } from 'node:module';
import { NativeAddonMissingError, NativeError, UnsupportedPlatformError } from './errors.js';

/** Shape of the compiled addon (csrc/addon.c). Internal: the classes wrap it. */
export interface Addon {
  readonly counterCount: number;
  openTap(name: string, flags: number): [fd: number, name: string];
  linkSet(name: string, mtu: number, txqlen: number, up: number): void;
  linkMtu(name: string): number;
  openUdp(family: 4 | 6, address: string, port: number, reuseport: number, rcvbuf: number, sndbuf: number): number;
  localPort(handle: NativeHandle): number;
  create(fd: number, kind: number, family: number, vnetHdrOrUdpFlags: number, maxBatch: number, waitMs: number, counters: Float64Array): NativeHandle;
  setPool(
    handle: NativeHandle,
    which: number,
    data: Uint8Array,
    off: Int32Array,
    len: Int32Array,
    family: Uint8Array,
    addr: Uint8Array,
    port: Uint16Array,
    stride: number,
    capacity: number,
  ): void;
  start(handle: NativeHandle, rxSlots: Int32Array, ctl: Int32Array, onBatch: (n: number) => void): void;
  send(handle: NativeHandle, slots: Int32Array, count: number): number;
  writeGso(handle: NativeHandle, slots: Int32Array, count: number, groups: Int32Array, ngroups: number): number;
  close(handle: NativeHandle): void;
  setErrorClass(ctor: typeof NativeError): void;
  errnoError(errno: number, syscall: string): NativeError;
  /** tri[3i+2] = onesComplementSum(data, tri[3i], tri[3i+1], tri[3i+2]) for i < count (csrc/csum_napi.c). */
  checksumBatch(data: Uint8Array, tri: Int32Array, count: number): void;
  /** Cut one IPv4 TCP super-frame into pool slots (csrc/csum.c); frames written, or -1 if malformed. */
  tsoSegment(
    src: Uint8Array,
    srcOff: number,
    srcLen: number,
    mss: number,
    dst: Uint8Array,
    off: Int32Array,
    len: Int32Array,
    frameCapacity: number,
    slots: Int32Array,
    first: number,
    count: number,
  ): number;
  /** Seal slots[first .. first+count) as WireGuard transport data under key (csrc/aead.c); absent when node's OpenSSL lacks ChaCha20-Poly1305. */
  sealBatch?(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, remoteIndex: number, counterLo: number, counterHi: number): void;
  /** Open slots[first .. first+count) in place; ok[first + i] = 1 for each authentic one; returns how many (csrc/aead.c). */
  openBatch?(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, ok: Uint8Array): number;
  /** sealBatch and openBatch forced onto OpenSSL's EVP layer (the reference for the direct path; tests, benchmarks). */
  sealBatchEvp?(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, remoteIndex: number, counterLo: number, counterHi: number): void;
  openBatchEvp?(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, ok: Uint8Array): number;
  /** True when sealBatch/openBatch call OpenSSL's ChaCha20 and Poly1305 directly (node exports them), false on EVP. */
  aeadDirect?: boolean;
}

/** Opaque native handle (an N-API external). */
export type NativeHandle = { readonly __native: unique symbol };

export const KIND_TAP = 0;
export const KIND_UDP = 1;
export const TAP_TUN = 1;
export const TAP_VNET_HDR = 2;
export const TAP_MULTI_QUEUE = 4;
export const TAP_OFFLOAD = 8;
/** create() flags for a UDP socket. */
export const UDP_GSO = 1;
export const UDP_GRO = 2;
/** With UDP_GRO: WireGuard transport data stays in the staging area until openBatch (csrc/io.h). */
export const UDP_DEFER = 4;
/** setPool `which`: the pool receives land in, the pool sends come from. */
export const POOL_RX = 1;
export const POOL_TX = 2;

let addon: Addon | undefined;

/** Load the addon on first use. Throws UnsupportedPlatformError off Linux. */
export function native(): Addon {
  if (addon) return addon;
  if (process.platform !== 'linux') throw new UnsupportedPlatformError(process.platform);
  const require = createRequire(import.meta.url);
  try {
    // Same relative path from src/ (sources) and dist/ (compiled).
    addon = require('../build/Release/overlay_native.node') as Addon;
  } catch (err) {
    throw new NativeAddonMissingError(err);
  }
  addon.setErrorClass(NativeError);
  return addon;
}
