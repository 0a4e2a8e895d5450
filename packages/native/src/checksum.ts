import { onesComplementSum } from '@overlay/dataplane';
import { native, type Addon } from './binding.js';
import { NativeAddonMissingError } from './errors.js';

/**
 * Which implementation does the per-segment checksum work: the addon's C (csrc/csum.c), or the
 * dataplane's JavaScript (the reference, and the fallback where the addon cannot load).
 */
export type ChecksumImpl = 'native' | 'js';

export type NativeChecksum = Pick<Addon, 'checksumBatch' | 'tsoSegment'>;

/** The addon's checksum entry points, or undefined when the addon cannot load here. */
export function nativeChecksum(): NativeChecksum | undefined {
  try {
    const a = native();
    return typeof a.checksumBatch === 'function' && typeof a.tsoSegment === 'function' ? a : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The addon for `impl`, or undefined for the JS path. Default: the environment's
 * OVERLAY_CHECKSUM_IMPL ('native' or 'js': a switch for A/B benchmarks), else native where it
 * loads. Asked for 'native' explicitly, an addon that does not load (or predates these entry
 * points) throws the typed UnsupportedPlatformError / NativeAddonMissingError.
 */
export function resolveChecksum(impl: ChecksumImpl | undefined): NativeChecksum | undefined {
  if (impl === undefined) {
    const env = process.env.OVERLAY_CHECKSUM_IMPL;
    if (env === 'js' || env === 'native') impl = env;
  }
  if (impl === 'js') return undefined;
  if (impl === undefined) return nativeChecksum();
  const a = native();
  if (typeof a.checksumBatch !== 'function' || typeof a.tsoSegment !== 'function') {
    throw new NativeAddonMissingError(new Error('the addon has no checksumBatch/tsoSegment: rebuild it'));
  }
  return a;
}

/**
 * A batch of checksums over one buffer, queued as (offset, length, seed) triples and summed in
 * one call: one N-API crossing for a whole batch instead of one per segment. `sum(i)` is then
 * onesComplementSum(data, off, len, seed) of the i-th triple. Grows only when a batch is larger
 * than any before it; otherwise allocates nothing.
 */
export class ChecksumBatch {
  count = 0;
  private tri: Int32Array;

  constructor(
    private readonly addon: NativeChecksum | undefined,
    capacity = 64,
  ) {
    this.tri = new Int32Array(capacity * 3);
  }

  clear(): void {
    this.count = 0;
  }

  /** Queue one sum; returns its index. `seed` must be a folded sum (0 .. 0xffff). */
  add(off: number, len: number, seed: number): number {
    const i = this.count;
    if (i * 3 + 3 > this.tri.length) {
      const t = new Int32Array(this.tri.length * 2);
      t.set(this.tri);
      this.tri = t;
    }
    this.tri[i * 3] = off;
    this.tri[i * 3 + 1] = len;
    this.tri[i * 3 + 2] = seed;
    this.count = i + 1;
    return i;
  }

  /** Compute every queued sum over `data`. */
  run(data: Uint8Array): void {
    if (this.count === 0) return;
    if (this.addon) this.addon.checksumBatch(data, this.tri, this.count);
    else checksumBatchJs(data, this.tri, this.count);
  }

  /** The folded sum of triple i after run(). */
  sum(i: number): number {
    return this.tri[i * 3 + 2];
  }
}

/** The JavaScript reference of the addon's checksumBatch. */
export function checksumBatchJs(data: Uint8Array, tri: Int32Array, count: number): void {
  for (let i = 0; i < count; i++) tri[i * 3 + 2] = onesComplementSum(data, tri[i * 3], tri[i * 3 + 1], tri[i * 3 + 2]);
}
