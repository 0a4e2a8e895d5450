/**
 * RecordTable.withdraw (an external store deleted a key, store-bridge.ts): the record and its
 * effect go without a tombstone; the same or an older version arriving again (gossip, push-pull)
 * is stale; a newer version, or the same one after `readmit`, applies; the floor is reaped with
 * tombstones.
 */
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { ENDPOINTS, ENDPOINT_KIND, RecordTable, signRecord, type EndpointData, type KindContext, type RecordKind, type SignedRecord } from '@overlay/agent';

const alice = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
const ctx: KindContext = { self: 'me', stateOf: () => 'alive', metaOf: () => undefined };
const data: EndpointData = { vni: 100, mac: Uint8Array.of(2, 0, 0, 0, 0, 1), ipv4: Uint8Array.of(198, 19, 0, 1), ipv6: new Uint8Array(0), vtep: '198.18.0.1' };
const rec = (version: number, deleted = false) => signRecord(ENDPOINTS, { network: 'blue', id: 'e1', owner: 'alice', version, deleted }, data, alice.secretKey);

function setup() {
  let now = 0;
  const effects: (number | null)[] = [];
  const kind: RecordKind<EndpointData> = { ...ENDPOINTS, reconcile: (_k, r) => effects.push(r ? r.version : null) };
  const t = new RecordTable([kind], (o) => (o === 'alice' ? alice.publicKey : undefined), () => now, ctx);
  const arrive = (r: SignedRecord) => t.apply(t.open(r)!);
  return { t, effects, arrive, at: (ms: number) => (now = ms) };
}

describe('record table withdraw', () => {
  it('removes the live record and its effect; the same or an older version is stale until readmit; a newer one applies', () => {
    const { t, effects, arrive } = setup();
    expect(arrive(rec(5))).toBe('applied');
    expect(t.withdraw(ENDPOINT_KIND, 'blue', 'e1', 'mallory')).toBeUndefined(); // not the owner the key names
    expect(t.withdraw(ENDPOINT_KIND, 'blue', 'e1', 'alice')?.version).toBe(5);
    expect(t.get(ENDPOINT_KIND, 'blue', 'e1')).toBeUndefined();
    expect(t.count()).toBe(0);
    expect(effects).toEqual([5, null]);
    expect(arrive(rec(5))).toBe('stale');
    expect(arrive(rec(4))).toBe('stale');
    expect(t.count()).toBe(0);
    t.readmit(ENDPOINT_KIND, 'blue', 'e1');
    expect(arrive(rec(5))).toBe('applied');
    expect(t.withdraw(ENDPOINT_KIND, 'blue', 'e1', 'alice')?.version).toBe(5);
    expect(arrive(rec(6))).toBe('applied');
    expect(effects).toEqual([5, null, 5, null, 6]);
  });

  it('leaves tombstones alone, and forgets the floor after the tombstone reap interval', () => {
    const { t, arrive, at } = setup();
    expect(arrive(rec(3, true))).toBe('applied');
    expect(t.withdraw(ENDPOINT_KIND, 'blue', 'e1', 'alice')).toBeUndefined();
    expect(t.get(ENDPOINT_KIND, 'blue', 'e1')?.rec.deleted).toBe(true);
    t.reap(1000, () => false);
    at(2000);
    t.reap(1000, () => false);
    expect(arrive(rec(3))).toBe('applied'); // tombstone reaped: the old live version is news again (as before this change)
    expect(t.withdraw(ENDPOINT_KIND, 'blue', 'e1', 'alice')?.version).toBe(3);
    expect(arrive(rec(3))).toBe('stale');
    at(3500);
    t.reap(1000, () => false);
    expect(arrive(rec(3))).toBe('applied');
  });
});
