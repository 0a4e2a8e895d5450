/**
 * The signed record table: every record kind (endpoints now, service instances next) rides the
 * same table, signatures, last-writer-wins and gossip. A record is the owner's exact body bytes,
 * the owner's Ed25519 signature over them, and the few fields the table indexes decoded from the
 * body (RecordHead). Signatures are verified over the bytes received and the bytes are forwarded
 * unchanged, so fields a newer node adds survive older nodes; kinds this node does not know are
 * verified, stored and forwarded without being interpreted.
 *
 * Keys: (kind, network, id). LWW by (version, owner). Verification happens only for records that
 * would win LWW, so anti-entropy over a large table costs one comparison per known record. The
 * table also owns the owner index (owner → its record keys), which membership changes and reaping
 * walk. Adding a kind is one file: a RecordKind (see endpoints.ts) passed to the table.
 *
 * Single-threaded; owned by one agent.
 */
import nacl from 'tweetnacl';
import { type KeyObject, createHash, createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import type { Member, MemberState } from './membership.js';
import { type Chunk, RecordSlab } from './record-slab.js';
import { type NodeMeta, type RecordBytes, type RecordHead, MAX_NAME_LEN, WireDecodeError, decodeRecordBody, encodeRecordBody } from './wire.js';

export type { RecordHead, RecordBytes };

/** A record as stored: the decoded head, the kind's data (undefined for an unknown kind), the signed bytes. */
export interface SignedRecord<D = unknown> extends RecordHead {
  readonly data: D | undefined;
  readonly body: Uint8Array;
  readonly sig: Uint8Array;
}

/** What a kind may consult when it makes a record take effect locally. */
export interface KindContext {
  readonly self: string;
  stateOf(owner: string): MemberState | undefined;
  metaOf(owner: string): NodeMeta | undefined;
}

/** One kind of record: its wire field, validation, and local effect. */
export interface RecordKind<D> {
  /** RecordBody.kind. */
  readonly code: number;
  /** RecordBody field that carries D (e.g. 'endpoint'). */
  readonly field: string;
  /** Normalise and validate the decoded data message; null when malformed (a counted drop). */
  decode(fields: Record<string, unknown>): D | null;
  /**
   * Make the record (null: nothing any more) take effect locally under `key`: called for every
   * stored change, every membership change of the owner, and removal. Must not throw.
   */
  reconcile?(key: string, rec: SignedRecord<D> | null, ctx: KindContext): void;
  /**
   * A live record of ours that we no longer hold came back (we restarted): true keeps it (re-signed
   * with the same data) instead of tombstoning it. For records whose meaning does not depend on
   * their owner (a CA-signed revocation, pki-admission.ts). Default: tombstone.
   */
  keepOwn?(rec: SignedRecord<D>): boolean;
}

/** not_admitted, claim_refused, revocation_invalid: refused by the admission check (pki-admission.ts). */
export type ApplyResult = 'applied' | 'stale' | 'bad_signature' | 'unknown_owner' | 'not_admitted' | 'claim_refused' | 'revocation_invalid';

export interface TableEntry<D = unknown> {
  rec: SignedRecord<D>;
  /** Local clock when this version arrived (tombstone reaping). */
  at: number;
}

/** LWW order: positive when `a` beats `b`. */
export function compareRecords(a: { version: number; owner: string }, b: { version: number; owner: string }): number {
  if (a.version !== b.version) return a.version - b.version;
  return a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0;
}

const name = (s: string) => s.length > 0 && s.length <= MAX_NAME_LEN;
function headOk(h: RecordHead): boolean {
  return name(h.network) && name(h.id) && name(h.owner) && Number.isSafeInteger(h.version) && h.version > 0;
}

export const recordKey = (kind: number, network: string, id: string): string => `${kind}\u0000${network}\u0000${id}`;

/**
 * Sign a new record: body = RecordBody(head, data under the kind's field) [+ `extra` encoded
 * fields, as a newer node would add; wire-compatibility tests only]. Tombstones may omit data.
 */
export function signRecord<D>(kind: RecordKind<D>, head: Omit<RecordHead, 'kind'>, data: D | undefined, secretKey: Uint8Array, extra?: Uint8Array): SignedRecord<D> {
  const full: RecordHead = { kind: kind.code, network: head.network, id: head.id, owner: head.owner, version: head.version, deleted: head.deleted };
  const body = encodeRecordBody(full, kind.field, (data ?? {}) as object, extra);
  return new StoredRecord(full.kind, full.network, full.id, full.owner, full.version, full.deleted, data, body, signBytes(body, secretKey), false);
}

/**
 * Sign with Node's native Ed25519: the same deterministic signature as tweetnacl's (RFC 8032),
 * ~0.3 ms instead of ~50 ms on a loaded CI machine (a unit test cross-checks both).
 */
export function signBytes(body: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const hex = Buffer.from(secretKey.subarray(0, 32)).toString('hex');
  let k = signKeyCache.get(hex);
  if (!k) {
    if (signKeyCache.size >= 1024) signKeyCache.clear();
    k = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, secretKey.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
    signKeyCache.set(hex, k);
  }
  return new Uint8Array(nodeSign(null, body, k));
}
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const signKeyCache = new Map<string, KeyObject>();

/**
 * Verify with Node's native Ed25519 (OpenSSL): the same algorithm as tweetnacl (which signs and
 * generates keys), ~100× faster to verify (0.2 ms vs 21 ms measured on the CI machine), which
 * matters when a 1 000-node cluster verifies every new record. A unit test cross-checks both.
 */
export function verifyRecord(r: RecordBytes, publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32 || r.sig.length !== 64) return false;
  try {
    return nodeVerify(null, r.body, keyObject(publicKey), r.sig);
  } catch {
    return false;
  }
}

/** The tweetnacl verifier, kept for the cross-check test. */
export function verifyRecordNacl(r: RecordBytes, publicKey: Uint8Array): boolean {
  return publicKey.length === 32 && r.sig.length === 64 && nacl.sign.detached.verify(r.body, r.sig, publicKey);
}

const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const keyCache = new Map<string, KeyObject>();
function keyObject(pub: Uint8Array): KeyObject {
  const hex = Buffer.from(pub).toString('hex');
  let k = keyCache.get(hex);
  if (!k) {
    if (keyCache.size >= 8192) keyCache.clear();
    k = createPublicKey({ key: Buffer.concat([SPKI_ED25519, pub]), format: 'der', type: 'spki' });
    keyCache.set(hex, k);
  }
  return k;
}

/**
 * A record as the table keeps it, and its own table entry: the head, the kind's data, and the
 * signed bytes, which are the caller's (`b`, `s`) until the table stores the record and then a
 * place in the table's slab (record-slab.ts). `body` and `sig` are views made on each read
 * (two typed arrays held per record cost ~200 bytes; they are read to gossip and verify only).
 */
class StoredRecord<D = unknown> implements SignedRecord<D>, TableEntry<D> {
  chunk: Chunk | null = null;
  off = 0;
  /** The bytes at `chunk`/`off` count as live in the slab (the record is in the table). */
  live = false;
  readonly n: number;
  /** Local clock when this version was stored (tombstone reaping). */
  at = 0;
  constructor(
    readonly kind: number,
    readonly network: string,
    readonly id: string,
    readonly owner: string,
    readonly version: number,
    readonly deleted: boolean,
    public data: D | undefined,
    public b: Uint8Array | null,
    public s: Uint8Array | null,
    /** `data` was decoded from the bytes (its byte fields may be views of them). */
    readonly viewsOfBytes: boolean,
  ) {
    this.n = b!.length;
  }
  get body(): Uint8Array {
    return this.b ?? new Uint8Array(this.chunk!.buf, this.off, this.n);
  }
  get sig(): Uint8Array {
    return this.s ?? new Uint8Array(this.chunk!.buf, this.off + this.n, 64);
  }
  /** The record is its own table entry. */
  get rec(): this {
    return this;
  }
  static from<D>(r: SignedRecord<D>): StoredRecord<D> {
    return r instanceof StoredRecord ? r : new StoredRecord(r.kind, r.network, r.id, r.owner, r.version, r.deleted, r.data, r.body, r.sig, false);
  }
}

export class RecordTable {
  private readonly entries = new Map<string, StoredRecord>();
  private readonly slab = new RecordSlab();
  private readonly byOwner = new Map<string, Set<string>>();
  private readonly kinds = new Map<number, RecordKind<unknown>>();
  /** Highest version seen anywhere: the Lamport clock our own records count from. */
  lamport = 0;
  /** Keys taken out by `withdraw`: the version removed (that or older is stale) and when. */
  private readonly withdrawn = new Map<string, { version: number; at: number }>();

  constructor(
    kinds: readonly RecordKind<unknown>[],
    private readonly keyOf: (owner: string) => Uint8Array | undefined,
    private readonly now: () => number,
    private readonly ctx: KindContext,
    /** Admission by certificate (pki): may refuse a record whose signature verified; null accepts. */
    private readonly check?: (r: SignedRecord) => 'not_admitted' | 'claim_refused' | 'revocation_invalid' | null,
  ) {
    for (const k of kinds) this.kinds.set(k.code, k);
  }

  /**
   * Decode and validate received bytes (no signature check yet): null when malformed. The record
   * reads the bytes as given until the table stores it; then they are copied into the table's
   * slab and the kind's data decoded again from that copy (byte fields the kind keeps are views
   * of the slab), so a stored record never pins the packet or chunk it arrived in. A record that
   * is stale or rejected costs no slab space.
   */
  open(raw: RecordBytes): SignedRecord | null {
    if (raw.sig.length !== 64) return null;
    const d = this.decodeBytes(raw.body);
    if (d === null) return null;
    const h = d.head;
    return new StoredRecord(h.kind, h.network, h.id, h.owner, h.version, h.deleted, d.data, raw.body, raw.sig, true);
  }

  private decodeBytes(body: Uint8Array): { head: RecordHead; data: unknown } | null {
    let d;
    try {
      d = decodeRecordBody(body);
    } catch (e) {
      if (e instanceof WireDecodeError) return null;
      throw e;
    }
    if (!headOk(d.head)) return null;
    const kind = this.kinds.get(d.head.kind);
    let data: unknown;
    const sub = kind && (d.fields[kind.field] as Record<string, unknown> | undefined);
    if (kind && sub) {
      data = kind.decode(sub);
      if (data === null) return null;
    } else if (kind && !d.head.deleted) return null; // a live record of a known kind has data
    return { head: d.head, data };
  }

  /**
   * Copy a record's bytes into the slab (first store, or compaction of its chunk). Data decoded
   * from its bytes is decoded again from the copy, so no byte field points at the old place.
   */
  private place(r: StoredRecord): void {
    const { chunk, off } = this.slab.put(r.body, r.sig);
    const old = r.live ? r.chunk : null;
    r.chunk = chunk;
    r.off = off;
    r.live = true;
    r.b = null;
    r.s = null;
    if (old !== null) this.slab.free(old, r.n + 64);
    if (r.viewsOfBytes && r.data !== undefined) {
      const d = this.decodeBytes(r.body);
      if (d !== null) r.data = d.data;
    }
  }

  /** Move the live records out of chunks that fell under half live (each pass empties them). */
  private compact(): void {
    for (let chunks = this.slab.takeSparse(); chunks.length > 0; chunks = this.slab.takeSparse()) {
      const set = new Set(chunks);
      for (const r of this.entries.values()) if (r.live && set.has(r.chunk!)) this.place(r);
    }
  }

  /** Chunks of the record slab holding live bytes (tests). */
  get slabChunks(): number {
    return this.slab.chunks;
  }

  get<D = unknown>(kind: RecordKind<D> | number, network: string, id: string): TableEntry<D> | undefined {
    return this.entries.get(recordKey(typeof kind === 'number' ? kind : kind.code, network, id)) as StoredRecord<D> | undefined;
  }

  /** Compare, verify, store, reconcile. Returns what happened (the caller counts non-applied). */
  apply(r: SignedRecord): ApplyResult {
    if (r.version > this.lamport) this.lamport = r.version;
    const key = recordKey(r.kind, r.network, r.id);
    const cur = this.entries.get(key);
    if (cur && compareRecords(r, cur) <= 0) return 'stale';
    if (!cur && this.withdrawn.size > 0 && r.version <= (this.withdrawn.get(key)?.version ?? 0)) return 'stale';
    const pub = this.keyOf(r.owner);
    if (!pub) return 'unknown_owner';
    if (!verifyRecord(r, pub)) return 'bad_signature';
    const refused = this.check?.(r);
    if (refused) return refused;
    this.store(key, r, cur);
    return 'applied';
  }

  /** Store a record we created and signed ourselves (no verification needed). */
  putOwn(r: SignedRecord): void {
    if (r.version > this.lamport) this.lamport = r.version;
    const key = recordKey(r.kind, r.network, r.id);
    this.store(key, r, this.entries.get(key));
  }

  private store(key: string, rec: SignedRecord, cur: StoredRecord | undefined): void {
    const r = StoredRecord.from(rec);
    if (cur && cur !== r) {
      if (cur.owner !== r.owner) this.unindex(cur.owner, key);
      this.release(cur);
    }
    r.at = this.now();
    if (!r.live) this.place(r);
    this.entries.set(key, r);
    let s = this.byOwner.get(r.owner);
    if (!s) this.byOwner.set(r.owner, (s = new Set()));
    s.add(key);
    this.effect(key, r);
    this.compact();
  }

  /** A record leaves the table: its slab bytes are no longer live (views handed out stay valid). */
  private release(r: StoredRecord): void {
    if (r.live) this.slab.free(r.chunk!, r.n + 64);
    r.live = false;
  }

  private unindex(owner: string, key: string): void {
    const s = this.byOwner.get(owner);
    if (!s) return;
    s.delete(key);
    if (s.size === 0) this.byOwner.delete(owner);
  }

  private effect(key: string, r: SignedRecord | null, kindCode = r?.kind): void {
    const kind = kindCode === undefined ? undefined : this.kinds.get(kindCode);
    kind?.reconcile?.(key, r, this.ctx);
  }

  /**
   * Take `owner`'s live record out without a tombstone (an external store says it is gone:
   * store-bridge.ts): its effect is undone, and that version or an older one arriving again (gossip,
   * push-pull) is stale until `readmit` or the tombstone reap interval. Returns the record removed.
   */
  withdraw(kind: number, network: string, id: string, owner: string): SignedRecord | undefined {
    const key = recordKey(kind, network, id);
    const r = this.entries.get(key);
    if (!r || r.owner !== owner || r.deleted) return undefined;
    this.entries.delete(key);
    this.unindex(owner, key);
    this.release(r);
    this.effect(key, null, r.kind);
    this.withdrawn.set(key, { version: r.version, at: this.now() });
    this.compact();
    return r;
  }

  /** The store holds the key again: a withdrawn version may be applied. */
  readmit(kind: number, network: string, id: string): void {
    this.withdrawn.delete(recordKey(kind, network, id));
  }

  /** Re-evaluate every record of `m` (its state or meta changed). */
  ownerChanged(m: Member): void {
    const keys = this.byOwner.get(m.name);
    if (!keys) return;
    for (const k of keys) {
      const e = this.entries.get(k);
      if (e) this.effect(k, e);
    }
  }

  *records(): IterableIterator<SignedRecord> {
    yield* this.entries.values();
  }
  /** Records of one kind (optionally one network), in no particular order. */
  *ofKind<D>(kind: RecordKind<D>, network?: string): IterableIterator<SignedRecord<D>> {
    for (const r of this.entries.values()) if (r.kind === kind.code && (network === undefined || r.network === network)) yield r as SignedRecord<D>;
  }
  count(): number {
    return this.entries.size;
  }

  /**
   * Remove tombstones older than `tombstoneMs`, and every record of an owner for which
   * `ownerGone(owner)` says it has been dead longer than the owner reap interval; undoes their
   * effect. Returns the removed records.
   */
  reap(tombstoneMs: number, ownerGone: (owner: string) => boolean): SignedRecord[] {
    const now = this.now();
    const out: SignedRecord[] = [];
    for (const [key, r] of this.entries) {
      if ((r.deleted && now - r.at > tombstoneMs) || ownerGone(r.owner)) {
        this.entries.delete(key);
        this.unindex(r.owner, key);
        this.release(r);
        this.effect(key, null, r.kind);
        out.push(r);
      }
    }
    for (const [key, w] of this.withdrawn) if (now - w.at > tombstoneMs) this.withdrawn.delete(key);
    this.compact();
    return out;
  }

  /** SHA-256 over the sorted (kind, network, id, owner, version, deleted) of every record. */
  digest(): string {
    const rows: string[] = [];
    for (const r of this.records()) rows.push(`${r.kind}\u0000${r.network}\u0000${r.id}\u0000${r.owner}\u0000${r.version}\u0000${r.deleted ? 1 : 0}`);
    rows.sort();
    const h = createHash('sha256');
    for (const row of rows) h.update(row).update('\n');
    return h.digest('hex');
  }
}

/** A new Ed25519 node identity (64-byte tweetnacl secret key). */
export function generateSigningKey(): Uint8Array {
  return nacl.sign.keyPair().secretKey;
}
