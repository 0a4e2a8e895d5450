import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { EndpointTable, compareRecords, signRecord, verifyRecord, verifyRecordNacl, type EndpointRecord } from '@overlay/agent';

const alice = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1));
const mallory = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(2));
const keys: Record<string, Uint8Array> = { alice: alice.publicKey, mallory: mallory.publicKey };

function rec(over: Partial<EndpointRecord>, key = alice.secretKey): EndpointRecord {
  return signRecord({ network: 'blue', vni: 100, id: 'e1', mac: Uint8Array.of(2, 0, 0, 0, 0, 1), ipv4: Uint8Array.of(198, 19, 0, 1), ipv6: new Uint8Array(0), owner: 'alice', vtep: '198.18.0.1', version: 1, deleted: false, ...over }, key);
}

describe('endpoint table', () => {
  it('last writer wins by (version, owner)', () => {
    expect(compareRecords({ version: 2, owner: 'a' }, { version: 1, owner: 'z' })).toBeGreaterThan(0);
    expect(compareRecords({ version: 1, owner: 'b' }, { version: 1, owner: 'a' })).toBeGreaterThan(0);
    const t = new EndpointTable((o) => keys[o], () => 0);
    expect(t.apply(rec({ version: 2 }))).toBe('applied');
    expect(t.apply(rec({ version: 1 }))).toBe('stale');
    expect(t.apply(rec({ version: 2 }))).toBe('stale');
    expect(t.apply(rec({ version: 3, deleted: true }))).toBe('applied');
    expect(t.get('blue', 'e1')!.rec.deleted).toBe(true);
    expect(t.lamport).toBe(3);
  });

  it('rejects a record signed by the wrong node (forged update or tombstone)', () => {
    const t = new EndpointTable((o) => keys[o], () => 0);
    expect(t.apply(rec({ version: 1 }))).toBe('applied');
    const forged = rec({ version: 9, deleted: true }, mallory.secretKey); // claims owner alice
    expect(t.apply(forged)).toBe('bad_signature');
    expect(t.get('blue', 'e1')!.rec.version).toBe(1);
    const tampered = { ...rec({ version: 5 }), ipv4: Uint8Array.of(198, 19, 9, 9) };
    expect(t.apply(tampered)).toBe('bad_signature');
    expect(t.apply(rec({ version: 5, owner: 'nobody' }))).toBe('unknown_owner');
    expect(t.apply({ ...rec({ version: 6 }), mac: Uint8Array.of(1) })).toBe('malformed');
  });

  it('native and tweetnacl verification agree', () => {
    const good = rec({ version: 4 });
    const bad = { ...good, version: 5 };
    expect(verifyRecord(good, alice.publicKey)).toBe(true);
    expect(verifyRecordNacl(good, alice.publicKey)).toBe(true);
    expect(verifyRecord(bad, alice.publicKey)).toBe(false);
    expect(verifyRecordNacl(bad, alice.publicKey)).toBe(false);
    expect(verifyRecord(good, mallory.publicKey)).toBe(false);
  });

  it('reaps tombstones after the interval and records of long-dead owners', () => {
    let now = 0;
    const t = new EndpointTable((o) => keys[o], () => now);
    t.apply(rec({ id: 'a', version: 1, deleted: true }));
    t.apply(rec({ id: 'b', version: 2 }));
    now = 500;
    expect(t.reap(1000, () => false)).toHaveLength(0);
    now = 1500;
    expect(t.reap(1000, () => false).map((r) => r.id)).toEqual(['a']);
    expect(t.reap(1000, (o) => o === 'alice').map((r) => r.id)).toEqual(['b']);
    expect(t.count()).toBe(0);
  });
});
