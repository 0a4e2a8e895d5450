import { describe, expect, it } from 'vitest';
import { Keys, MemoryStore, VerifyingStore, openSealed, sealRecord, sealSigned, verifySealed } from '../src/index.js';
import { ENDPOINTS } from '../../agent/src/endpoints.js';
import { generateSigningKey, signRecord } from '../../agent/src/records.js';
import { agentRecordCodec } from '../../agent/src/store-gossip.js';
import { readUntil } from './conformance.js';

const keys = new Keys('sig');
const kA = generateSigningKey();
const kB = generateSigningKey();
const pubs = new Map([
  ['node-a', kA.subarray(32)],
  ['node-b', kB.subarray(32)],
]);
const rec = (owner: string, id: string, sk: Uint8Array) => signRecord(ENDPOINTS, { network: 'net-a', id, owner, version: 5, deleted: false }, { vni: 7, mac: Uint8Array.of(2, 0, 0, 0, 0, 1), ipv4: new Uint8Array(0), ipv6: new Uint8Array(0), vtep: '' }, sk);

describe('signed values', () => {
  it('sealRecord (Node Ed25519) signs as the agent (tweetnacl) does, and verifies', () => {
    const r = rec('node-a', 'e', kA);
    const sealed = sealRecord(r.body, kA);
    expect(Buffer.from(sealed).equals(Buffer.from(sealSigned(r)))).toBe(true);
    const o = openSealed(sealed)!;
    expect(verifySealed(o, pubs.get('node-a')!)).toBe(true);
    expect(verifySealed(o, pubs.get('node-b')!)).toBe(false);
    expect(openSealed(new Uint8Array(65))).toBeUndefined();
  });

  it('the verifying reader passes the key owner’s records and drops the rest by reason', async () => {
    const raw = new MemoryStore({ sweepMs: 0 });
    const v = new VerifyingStore(raw, { codec: agentRecordCodec, keyOf: (o) => pubs.get(o) });
    const w = v.watch(keys.prefix('endpoints'), { fromRevision: 0 });
    const good = keys.endpoint('net-a', 'node-a', 'e1');
    await raw.put(good, sealSigned(rec('node-a', 'e1', kA)));
    await raw.put(keys.endpoint('net-a', 'node-a', 'e2'), sealSigned(rec('node-a', 'e2', kB))); // signed by the wrong node
    await raw.put(keys.endpoint('net-a', 'node-a', 'e3'), sealSigned(rec('node-b', 'e3', kB))); // node-b's record under node-a's key
    await raw.put(keys.endpoint('net-a', 'node-c', 'e4'), sealSigned(rec('node-c', 'e4', kB))); // an owner nobody knows
    await raw.put(keys.endpoint('net-a', 'node-a', 'e5'), new Uint8Array([1, 2, 3])); // not a sealed record
    const tampered = sealSigned(rec('node-a', 'e6', kA));
    tampered[tampered.length - 1] ^= 1;
    await raw.put(keys.endpoint('net-a', 'node-a', 'e6'), tampered);
    await raw.delete(good);
    const evs = await readUntil(w, (e) => e.length >= 2, 2000);
    expect(evs.map((e) => [e.type, e.key])).toEqual([
      ['put', good],
      ['delete', good],
    ]);
    expect(v.drops).toEqual({ malformed: 1, owner_mismatch: 1, unknown_owner: 1, bad_signature: 2 });
    expect((await v.list(keys.root)).entries).toEqual([]);
    expect(v.drops.bad_signature).toBe(4);
    expect(await v.get(keys.endpoint('net-a', 'node-a', 'e2'))).toBeUndefined();
    // Closing a watch whose reader waits ends that wait (no hang).
    const w2 = v.watch(keys.root);
    const pending = w2.next();
    await w2.return!();
    expect((await pending).done).toBe(true);
    await v.close();
  });
});
