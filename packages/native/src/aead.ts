import { native } from './binding.js';
import { NativeAddonMissingError } from './errors.js';

/**
 * Which code seals and opens WireGuard transport data: the addon's batch entry points
 * (csrc/aead.c: ChaCha20-Poly1305 from the OpenSSL inside Node.js, one native call per run of
 * slots under one key), or libsodium one packet at a time (@overlay/crypto's default).
 */
export type AeadImpl = 'native' | 'sodium';

/** The shape @overlay/crypto's WireGuardDeviceOptions.aead takes (AeadBatch), structurally. */
export interface NativeAead {
  seal(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, remoteIndex: number, counterLo: number, counterHi: number): void;
  open(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first: number, count: number, key: Uint8Array, ok: Uint8Array): number;
}

/** The addon's batched AEAD, or undefined when the addon cannot load here or has none. */
export function nativeAead(): NativeAead | undefined {
  try {
    const a = native();
    const seal = a.sealBatch;
    const open = a.openBatch;
    if (typeof seal !== 'function' || typeof open !== 'function') return undefined;
    return { seal, open };
  } catch {
    return undefined;
  }
}

/**
 * The batched AEAD for `impl`, or undefined for libsodium per packet. Default: the
 * environment's OVERLAY_AEAD_IMPL ('native' or 'sodium': a switch for A/B benchmarks), else
 * native where it loads. Asked for 'native' explicitly, an addon without it throws
 * NativeAddonMissingError (UnsupportedPlatformError off Linux).
 */
export function resolveAead(impl?: AeadImpl): NativeAead | undefined {
  if (impl === undefined) {
    const env = process.env.OVERLAY_AEAD_IMPL;
    if (env === 'native' || env === 'sodium') impl = env;
  }
  if (impl === 'sodium') return undefined;
  if (impl === undefined) return nativeAead();
  const a = native();
  if (typeof a.sealBatch !== 'function' || typeof a.openBatch !== 'function') throw new NativeAddonMissingError(new Error('the addon has no sealBatch/openBatch: rebuild it'));
  return { seal: a.sealBatch, open: a.openBatch };
}
