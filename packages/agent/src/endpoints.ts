/**
 * Gossiped endpoint tables: per network, endpoint id → record, last writer wins by
 * (version, owner). Records are signed by their owner (Ed25519, tweetnacl) and verified against
 * the signing key the owner advertises in membership, so a member cannot forge another member's
 * endpoints or tombstones (moby#52661). Verification happens only for records that would win
 * LWW, so anti-entropy over a large table costs one comparison per known record.
 *
 * Single-threaded; owned by one agent.
 */
import nacl from 'tweetnacl';
import { type KeyObject, createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { type EndpointRecord, signedBytes } from './wire.js';

export type ApplyResult = 'applied' | 'stale' | 'bad_signature' | 'unknown_owner' | 'malformed';

export interface TableEntry {
  rec: EndpointRecord;
  /** Local clock when this version arrived (tombstone reaping). */
  at: number;
}

export const MAX_NAME_LEN = 64;

/** LWW order: positive when `a` beats `b`. */
export function compareRecords(a: { version: number; owner: string }, b: { version: number; owner: string }): number {
  if (a.version !== b.version) return a.version - b.version;
  return a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0;
}

export function wellFormed(r: EndpointRecord): boolean {
  return (
    r.network.length > 0 && r.network.length <= MAX_NAME_LEN &&
    r.id.length > 0 && r.id.length <= MAX_NAME_LEN &&
    r.owner.length > 0 && r.owner.length <= MAX_NAME_LEN &&
    r.vtep.length <= 64 &&
    r.vni >= 0 && r.vni < 1 << 24 &&
    r.mac.length === 6 &&
    (r.ipv4.length === 0 || r.ipv4.length === 4) &&
    (r.ipv6.length === 0 || r.ipv6.length === 16) &&
    Number.isSafeInteger(r.version) && r.version > 0 &&
    r.sig.length === 64
  );
}

export function signRecord(r: Omit<EndpointRecord, 'sig'>, secretKey: Uint8Array): EndpointRecord {
  const unsigned = { ...r, sig: new Uint8Array(0) };
  return { ...unsigned, sig: nacl.sign.detached(signedBytes(unsigned), secretKey) };
}

/**
 * Verify with Node's native Ed25519 (OpenSSL): the same algorithm as tweetnacl (which signs and
 * generates keys), ~100× faster to verify (0.2 ms vs 21 ms measured on the CI machine), which
 * matters when a 1 000-node cluster verifies every new record. A unit test cross-checks both.
 */
export function verifyRecord(r: EndpointRecord, publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32 || r.sig.length !== 64) return false;
  try {
    return nodeVerify(null, signedBytes(r), keyObject(publicKey), r.sig);
  } catch {
    return false;
  }
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

/** The tweetnacl verifier, kept for the cross-check test. */
export function verifyRecordNacl(r: EndpointRecord, publicKey: Uint8Array): boolean {
  return publicKey.length === 32 && r.sig.length === 64 && nacl.sign.detached.verify(signedBytes(r), r.sig, publicKey);
}

export class EndpointTable {
  /** network name → endpoint id → entry. */
  private readonly nets = new Map<string, Map<string, TableEntry>>();
  /** Highest version seen anywhere: the Lamport clock our own records count from. */
  lamport = 0;

  constructor(
    private readonly keyOf: (owner: string) => Uint8Array | undefined,
    private readonly now: () => number,
  ) {}

  get(network: string, id: string): TableEntry | undefined {
    return this.nets.get(network)?.get(id);
  }

  /** Validate, compare, verify, store. Returns what happened (the caller counts non-applied). */
  apply(r: EndpointRecord): ApplyResult {
    if (!wellFormed(r)) return 'malformed';
    if (r.version > this.lamport) this.lamport = r.version;
    const cur = this.get(r.network, r.id);
    if (cur && compareRecords(r, cur.rec) <= 0) return 'stale';
    const key = this.keyOf(r.owner);
    if (!key) return 'unknown_owner';
    if (!verifyRecord(r, key)) return 'bad_signature';
    let net = this.nets.get(r.network);
    if (!net) this.nets.set(r.network, (net = new Map()));
    net.set(r.id, { rec: r, at: this.now() });
    return 'applied';
  }

  /** Store a record we created and signed ourselves (no verification needed). */
  putOwn(r: EndpointRecord): void {
    if (r.version > this.lamport) this.lamport = r.version;
    let net = this.nets.get(r.network);
    if (!net) this.nets.set(r.network, (net = new Map()));
    net.set(r.id, { rec: r, at: this.now() });
  }

  *records(): IterableIterator<EndpointRecord> {
    for (const net of this.nets.values()) for (const e of net.values()) yield e.rec;
  }
  *entries(network?: string): IterableIterator<TableEntry> {
    if (network !== undefined) {
      const net = this.nets.get(network);
      if (net) yield* net.values();
      return;
    }
    for (const net of this.nets.values()) yield* net.values();
  }
  networks(): string[] {
    return [...this.nets.keys()];
  }
  count(): number {
    let n = 0;
    for (const net of this.nets.values()) n += net.size;
    return n;
  }

  /**
   * Remove tombstones older than `tombstoneMs`, and every record of an owner for which
   * `ownerGone(owner)` says it has been dead longer than the owner reap interval.
   * Returns the removed records.
   */
  reap(tombstoneMs: number, ownerGone: (owner: string) => boolean): EndpointRecord[] {
    const now = this.now();
    const out: EndpointRecord[] = [];
    for (const [name, net] of this.nets) {
      for (const [id, e] of net) {
        if ((e.rec.deleted && now - e.at > tombstoneMs) || ownerGone(e.rec.owner)) {
          net.delete(id);
          out.push(e.rec);
        }
      }
      if (net.size === 0) this.nets.delete(name);
    }
    return out;
  }

  /** SHA-256 over the sorted (network, id, owner, version, deleted) of every record. */
  digest(): string {
    const rows: string[] = [];
    for (const r of this.records()) rows.push(`${r.network}\u0000${r.id}\u0000${r.owner}\u0000${r.version}\u0000${r.deleted ? 1 : 0}`);
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
