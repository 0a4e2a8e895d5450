/**
 * Signed values: what the store carries is the owner's record, sealed with the owner's Ed25519
 * signature, so whoever runs the store (or writes to it with `etcdctl`) cannot forge an endpoint.
 *
 *   value = 0x01 | signature (64 bytes) | body
 *
 * The body is the agent's RecordBody bytes (packages/agent/src/wire.ts), which name the owner; the
 * store does not decode it itself: a `RecordCodec` says who the owner is (the agent's one is in
 * packages/agent/src/store-gossip.ts).
 *
 * `VerifyingStore` wraps any EndpointStore: get, list and watch hand on only values that are well
 * formed, signed by the key's owner (the key's <node> segment, keys.ts) and verified against that
 * owner's public key; every other value is dropped and counted by reason (`drops`). Writes pass
 * through unchanged (the writer seals its own records with `sealRecord`).
 */
import { type KeyObject, createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { StoreError } from './errors.js';
import { parseKey } from './keys.js';
import type { CasResult, EndpointStore, Expected, KeyValue, Lease, ListResult, PutOptions, WatchEvent, WatchOptions } from './store.js';

export const SEALED_VERSION = 1;
const SIG = 64;

export interface SealedRecord {
  readonly body: Uint8Array;
  readonly sig: Uint8Array;
}

/** Seal `body` with a 64-byte Ed25519 secret key (seed | public key, as tweetnacl makes them). */
export function sealRecord(body: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 64) throw new StoreError('STORE_BAD_RECORD', 'secret key must be 64 bytes');
  const sig = nodeSign(null, body, privateKey(secretKey));
  const out = new Uint8Array(1 + SIG + body.length);
  out[0] = SEALED_VERSION;
  out.set(sig, 1);
  out.set(body, 1 + SIG);
  return out;
}

/** Seal an already signed record (the agent signs with its own code). */
export function sealSigned(r: SealedRecord): Uint8Array {
  if (r.sig.length !== SIG) throw new StoreError('STORE_BAD_RECORD', 'signature must be 64 bytes');
  const out = new Uint8Array(1 + SIG + r.body.length);
  out[0] = SEALED_VERSION;
  out.set(r.sig, 1);
  out.set(r.body, 1 + SIG);
  return out;
}

/** Split a sealed value (views into it); undefined when it is not one. */
export function openSealed(value: Uint8Array): SealedRecord | undefined {
  if (value.length < 1 + SIG + 1 || value[0] !== SEALED_VERSION) return undefined;
  return { sig: value.subarray(1, 1 + SIG), body: value.subarray(1 + SIG) };
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
function privateKey(secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, secret.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
}
const pubCache = new Map<string, KeyObject>();
function publicKey(pub: Uint8Array): KeyObject {
  const hex = Buffer.from(pub).toString('hex');
  let k = pubCache.get(hex);
  if (!k) {
    if (pubCache.size >= 8192) pubCache.clear();
    k = createPublicKey({ key: Buffer.concat([SPKI_ED25519, pub]), format: 'der', type: 'spki' });
    pubCache.set(hex, k);
  }
  return k;
}

export function verifySealed(r: SealedRecord, pub: Uint8Array): boolean {
  if (pub.length !== 32 || r.sig.length !== SIG) return false;
  try {
    return nodeVerify(null, r.body, publicKey(pub), r.sig);
  } catch {
    return false;
  }
}

/** How the verifier learns a body's owner; undefined when the body does not decode. */
export interface RecordCodec {
  ownerOf(body: Uint8Array): string | undefined;
}

export interface VerifyingStoreOptions {
  codec: RecordCodec;
  /** The owner's Ed25519 public key (32 bytes), undefined when unknown. */
  keyOf(owner: string): Uint8Array | undefined;
  /** Called for each dropped value (log the key and reason, never the value). */
  onDrop?(key: string, reason: VerifyDropReason, value: Uint8Array): void;
}

/** Why a value was dropped (append-only). */
export const VERIFY_DROP_REASONS = ['malformed', 'owner_mismatch', 'unknown_owner', 'bad_signature'] as const;
export type VerifyDropReason = (typeof VERIFY_DROP_REASONS)[number];

/** A store whose reads pass only values signed by the owner the key names. */
export class VerifyingStore implements EndpointStore {
  readonly kind: string;
  readonly drops: Record<VerifyDropReason, number> = { malformed: 0, owner_mismatch: 0, unknown_owner: 0, bad_signature: 0 };

  constructor(
    readonly inner: EndpointStore,
    private readonly opts: VerifyingStoreOptions,
  ) {
    this.kind = inner.kind;
  }

  /** Why `value` under `key` is not acceptable, or undefined when it is. */
  check(key: string, value: Uint8Array): VerifyDropReason | undefined {
    const rec = openSealed(value);
    const owner = rec && this.opts.codec.ownerOf(rec.body);
    if (!rec || owner === undefined) return 'malformed';
    const keyOwner = parseKey(key)?.owner;
    if (keyOwner !== undefined && keyOwner !== owner) return 'owner_mismatch';
    const pub = this.opts.keyOf(owner);
    if (!pub) return 'unknown_owner';
    return verifySealed(rec, pub) ? undefined : 'bad_signature';
  }

  private accept(key: string, value: Uint8Array): boolean {
    const why = this.check(key, value);
    if (why === undefined) return true;
    this.drops[why]++;
    this.opts.onDrop?.(key, why, value);
    return false;
  }

  get total(): number {
    let n = 0;
    for (const r of VERIFY_DROP_REASONS) n += this.drops[r];
    return n;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const kv = await this.inner.get(key);
    return kv && this.accept(kv.key, kv.value) ? kv : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    const r = await this.inner.list(prefix);
    return { entries: r.entries.filter((kv) => this.accept(kv.key, kv.value)), revision: r.revision };
  }

  /**
   * The inner watch, filtered. A plain iterator, not an async generator: `return()` must end a
   * watch whose reader is waiting in `next()` (a generator would queue the return behind it).
   */
  watch(prefix: string, opts?: WatchOptions): AsyncIterableIterator<WatchEvent> {
    const inner = this.inner.watch(prefix, opts);
    const next = async (): Promise<IteratorResult<WatchEvent>> => {
      for (;;) {
        const r = await inner.next();
        if (r.done) return r;
        const ev = r.value;
        if (ev.type === 'put' && !this.accept(ev.key, ev.value)) continue;
        if (ev.type === 'resync') return { done: false, value: { type: 'resync', revision: ev.revision, entries: ev.entries.filter((kv) => this.accept(kv.key, kv.value)) } };
        return r;
      }
    };
    const it: AsyncIterableIterator<WatchEvent> = {
      next,
      return: async () => {
        await inner.return?.();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  put(key: string, value: Uint8Array, opts?: PutOptions): Promise<number> {
    return this.inner.put(key, value, opts);
  }
  compareAndSet(key: string, expected: Expected, value: Uint8Array, opts?: PutOptions): Promise<CasResult> {
    return this.inner.compareAndSet(key, expected, value, opts);
  }
  delete(key: string): Promise<boolean> {
    return this.inner.delete(key);
  }
  grantLease(ttlMs: number): Promise<Lease> {
    return this.inner.grantLease(ttlMs);
  }
  keepAlive(lease: string): Promise<boolean> {
    return this.inner.keepAlive(lease);
  }
  revokeLease(lease: string): Promise<boolean> {
    return this.inner.revokeLease(lease);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
