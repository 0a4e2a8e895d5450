import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { ENDPOINTS, RecordTable, compareRecords, signRecord, verifyRecord, verifyRecordNacl, type EndpointData, type KindContext } from '@overlay/agent';

const alice = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1));
const mallory = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(2));
const keys: Record<string, Uint8Array> = { alice: alice.publicKey, mallory: mallory.publicKey };
const ctx: KindContext = { self: 'me', stateOf: () => 'alive', metaOf: () => undefined };
const data: EndpointData = { vni: 100, mac: Uint8Array.of(2, 0, 0, 0, 0, 1), ipv4: Uint8Array.of(198, 19, 0, 1), ipv6: new Uint8Array(0), vtep: '198.18.0.1' };

function rec(over: { id?: string; owner?: string; version?: number; deleted?: boolean } = {}, key = alice.secretKey, d: Partial<EndpointData> = {}) {
  return signRecord(ENDPOINTS, { network: 'blue', id: 'e1', owner: 'alice', version: 1, deleted: false, ...over }, { ...data, ...d }, key);
}
const table = (now: () => number = () => 0) => new RecordTable([ENDPOINTS], (o) => keys[o], now, ctx);
/** As a receiver sees it: decoded from the bytes. */
const received = (t: RecordTable, r: { body: Uint8Array; sig: Uint8Array }) => t.open(r)!;

describe('record table (endpoint kind)', () => {
  it('last writer wins by (version, owner)', () => {
    expect(compareRecords({ version: 2, owner: 'a' }, { version: 1, owner: 'z' })).toBeGreaterThan(0);
    expect(compareRecords({ version: 1, owner: 'b' }, { version: 1, owner: 'a' })).toBeGreaterThan(0);
    const t = table();
    expect(t.apply(received(t, rec({ version: 2 })))).toBe('applied');
    expect(t.apply(received(t, rec({ version: 1 })))).toBe('stale');
    expect(t.apply(received(t, rec({ version: 2 })))).toBe('stale');
    expect(t.apply(received(t, rec({ version: 3, deleted: true })))).toBe('applied');
    expect(t.get(ENDPOINTS, 'blue', 'e1')!.rec.deleted).toBe(true);
    expect(t.lamport).toBe(3);
  });

  it('rejects a record signed by the wrong node (forged update or tombstone) and tampered bytes', () => {
    const t = table();
    expect(t.apply(received(t, rec({ version: 1 })))).toBe('applied');
    const forged = rec({ version: 9, deleted: true }, mallory.secretKey); // claims owner alice
    expect(t.apply(received(t, forged))).toBe('bad_signature');
    expect(t.get(ENDPOINTS, 'blue', 'e1')!.rec.version).toBe(1);
    const good = rec({ version: 5 });
    const tampered = Uint8Array.from(good.body);
    tampered[tampered.indexOf(19) + 2] ^= 1; // 198.19.0.1 → 198.19.1.1
    expect(t.apply(received(t, { body: tampered, sig: good.sig }))).toBe('bad_signature');
    expect(t.apply(received(t, rec({ version: 5, owner: 'nobody' })))).toBe('unknown_owner');
    expect(t.open(rec({ version: 6 }, alice.secretKey, { mac: Uint8Array.of(1) }))).toBeNull();
    expect(t.open({ body: Uint8Array.of(0xff, 0xff), sig: good.sig })).toBeNull();
    expect(t.open({ body: good.body, sig: good.sig.subarray(1) })).toBeNull();
  });

  it('native and tweetnacl verification agree', () => {
    const good = rec({ version: 4 });
    // body and sig of a table record are getters: a spread would copy the head only.
    const bad = { body: rec({ version: 5 }).body, sig: good.sig };
    expect(verifyRecord(good, alice.publicKey)).toBe(true);
    expect(verifyRecordNacl(good, alice.publicKey)).toBe(true);
    expect(verifyRecord(bad, alice.publicKey)).toBe(false);
    expect(verifyRecordNacl(bad, alice.publicKey)).toBe(false);
    expect(verifyRecord(good, mallory.publicKey)).toBe(false);
  });

  it('reaps tombstones after the interval and records of long-dead owners', () => {
    let now = 0;
    const t = table(() => now);
    t.apply(received(t, rec({ id: 'a', version: 1, deleted: true })));
    t.apply(received(t, rec({ id: 'b', version: 2 })));
    now = 500;
    expect(t.reap(1000, () => false)).toHaveLength(0);
    now = 1500;
    expect(t.reap(1000, () => false).map((r) => r.id)).toEqual(['a']);
    expect(t.reap(1000, (o) => o === 'alice').map((r) => r.id)).toEqual(['b']);
    expect(t.count()).toBe(0);
  });
});
