/**
 * The record path of one node, both directions: our own records out (sign, store, gossip; re-issue
 * when the cluster holds an older copy after a restart), everyone's records in (open, verify,
 * store, count, re-gossip the exact bytes). The table (records.ts) decides LWW and verifies; this
 * file decides what a record means for us as its owner or receiver.
 *
 * Single-threaded; owned by one agent.
 */
import type { AgentCounters, AgentDrops } from './counters.js';
import { type RecordKind, type RecordTable, type SignedRecord, recordKey, signRecord, verifyRecord } from './records.js';
import type { Clock } from './env.js';
import type { RecordBytes } from './wire.js';

export interface RecordSyncOptions {
  name: string;
  signingKey: Uint8Array;
  signPublic: Uint8Array;
  /** Appended to every body we sign (wire-compatibility tests only; see AgentOptions). */
  recordExtension?: Uint8Array;
  clock: Clock;
  table: RecordTable;
  kinds: ReadonlyMap<number, RecordKind<unknown>>;
  drops: AgentDrops;
  counters: AgentCounters;
  /** Queue a record's exact signed bytes for gossip. */
  gossip(r: SignedRecord): void;
  /** A record was stored (ours or applied). */
  stored?(r: SignedRecord): void;
}

type Head = Omit<SignedRecord, 'kind' | 'data' | 'body' | 'sig'>;

export class RecordSync {
  /** Our own live records by table key: what we re-issue when the cluster holds an older copy. */
  private readonly local = new Map<string, SignedRecord>();

  constructor(private readonly o: RecordSyncOptions) {}

  /** Create or update one of our records: a new signed version, gossiped to everyone. */
  publish<D>(kind: RecordKind<D>, network: string, id: string, data: D): SignedRecord<D> {
    const rec = this.sign(kind, { network, id, owner: this.o.name, version: this.nextVersion(), deleted: false }, data);
    this.local.set(recordKey(kind.code, network, id), rec);
    this.storeOwn(rec);
    return rec;
  }

  /** Delete one of our records: a signed tombstone. Returns false if it is not ours. */
  unpublish(kind: number, network: string, id: string): boolean {
    const key = recordKey(kind, network, id);
    const cur = this.local.get(key);
    if (!cur) return false;
    this.local.delete(key);
    this.storeOwn(this.sign(this.kindOf(kind), { ...cur, version: this.nextVersion(), deleted: true }, cur.data));
    return true;
  }

  /**
   * Apply a received record (gossip or push-pull); keeps our own records authoritative. Returns
   * the record when it was stored (the caller re-gossips it), else null (stale or counted drop).
   */
  receive(raw: RecordBytes): SignedRecord | null {
    const { drops: d, table } = this.o;
    const r = table.open(raw);
    if (!r) return (d.add(d.at.record_malformed), null);
    if (r.owner === this.o.name) {
      // Only a record we once signed (before a restart) may make us re-issue or keep a tombstone;
      // anything else naming us as owner is a forgery and must not be signed over or stored.
      if (!verifyRecord(r, this.o.signPublic)) return (d.add(d.at.record_bad_signature), null);
      this.reassertOwn(r);
      return null;
    }
    const res = table.apply(r);
    if (res === 'applied') {
      this.o.counters.add(this.o.counters.at.records_applied);
      this.o.stored?.(r);
      return r;
    }
    if (res !== 'stale') d.add(d.at[`record_${res}`]);
    return null;
  }

  /**
   * Versions are a hybrid logical clock: above every version seen (Lamport) and never below the
   * clock in ms, so a node restarted without state never reissues a version it used before.
   */
  private nextVersion(): number {
    const t = this.o.table;
    t.lamport = Math.max(t.lamport + 1, Math.floor(this.o.clock.now()));
    return t.lamport;
  }

  kindOf(code: number): RecordKind<unknown> {
    // A kind we do not know can only be tombstoned (no data field).
    return this.o.kinds.get(code) ?? { code, field: '', decode: () => null };
  }

  private sign<D>(kind: RecordKind<D>, head: Head, data: D | undefined): SignedRecord<D> {
    return signRecord(kind, head, data, this.o.signingKey, this.o.recordExtension);
  }

  private storeOwn(rec: SignedRecord): void {
    this.o.table.putOwn(rec);
    this.o.gossip(rec);
    this.o.stored?.(rec);
  }

  /**
   * Someone holds a version of one of our records (we restarted and lost state, or it is old).
   * If theirs is not older than ours, re-issue ours above it: the live record again, or a
   * tombstone for a record we no longer have. This is how a returning node's records win.
   */
  private reassertOwn(r: SignedRecord): void {
    const table = this.o.table;
    if (r.version > table.lamport) table.lamport = r.version;
    const key = recordKey(r.kind, r.network, r.id);
    const mine = this.local.get(key);
    const stored = table.get(r.kind, r.network, r.id)?.rec;
    const same = (x: SignedRecord) => x.version === r.version && Buffer.compare(x.sig, r.sig) === 0;
    if (stored && stored.owner === this.o.name && (stored.version > r.version || same(stored))) return;
    const kind = this.kindOf(r.kind);
    if (mine) {
      if (mine.version > r.version || same(mine)) return;
      const rec = this.sign(kind, { ...mine, version: this.nextVersion() }, mine.data);
      this.local.set(key, rec);
      this.storeOwn(rec);
    } else if (!r.deleted) {
      const keep = kind.keepOwn?.(r) === true;
      const rec = this.sign(kind, { ...r, version: this.nextVersion(), deleted: !keep }, r.data);
      if (keep) this.local.set(key, rec);
      this.storeOwn(rec);
    } else if (!stored) {
      table.putOwn(r); // keep the tombstone so the digest matches the cluster's
    }
  }
}
