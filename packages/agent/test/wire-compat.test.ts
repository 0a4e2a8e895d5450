import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import { SimCluster, verifyRecord, type Agent, type RecordKind } from '@overlay/agent';
import { decodeEnvelope } from '../src/wire.js';

const blue = { name: 'blue', vni: 100 };

/** Field 100 (a string no schema of ours has), as a newer agent might add to every record body. */
const unknownField = (() => {
  const w = protobuf.Writer.create();
  w.uint32((100 << 3) | 2).string('added-by-a-newer-agent');
  return w.finish();
})();

const endsWith = (b: Uint8Array, tail: Uint8Array) => Buffer.from(b.subarray(b.length - tail.length)).equals(Buffer.from(tail));

describe('wire compatibility of signed records', () => {
  it('a record with an unknown field from a newer node is accepted, stored and re-gossiped byte-identical by an older one', () => {
    // node-0 is "newer" (appends field 100 to what it signs); node-1 and node-2 are this build.
    const c = new SimCluster({ n: 3, seed: 31, networks: [blue], agent: (i) => (i === 0 ? { recordExtension: unknownField } : undefined) });
    c.bootstrapAll();
    // Record what node-1 (an older node) forwards to node-2.
    const forwarded: Uint8Array[] = [];
    const a2: Agent = c.agents[2];
    const orig = a2.handlePacket.bind(a2);
    a2.handlePacket = (from, bytes) => {
      if (from.ip === c.addrs[1].ip) for (const m of decodeEnvelope(bytes.subarray(1)).msgs) if ('record' in m) forwarded.push(m.record.body);
      orig(from, bytes);
    };
    const signed = c.agents[0].publish(blue, { id: 'new-ep', mac: Uint8Array.of(2, 0, 0, 0, 0, 0x10), ipv4: Uint8Array.of(198, 19, 0, 16) });
    expect(endsWith(signed.body, unknownField)).toBe(true);
    const t = c.clock.runUntilTrue(() => c.agents.every((a) => a.endpoint('blue', 'new-ep') !== undefined), 10_000);
    expect(t).toBeGreaterThanOrEqual(0);
    for (const a of c.agents.slice(1)) {
      const stored = a.endpoint('blue', 'new-ep')!;
      expect(Buffer.from(stored.body).equals(Buffer.from(signed.body))).toBe(true); // byte for byte, unknown field kept
      expect(stored.data!.ipv4).toEqual(Uint8Array.of(198, 19, 0, 16)); // the fields it knows are read
      expect(verifyRecord(stored, c.agents[0].membership.metaOf('node-0')!.signKey)).toBe(true);
      expect(a.drops.get('record_bad_signature')).toBe(0);
    }
    c.run(2000);
    expect(forwarded.some((b) => Buffer.from(b).equals(Buffer.from(signed.body)))).toBe(true);
    expect(new Set(c.agents.map((a) => a.table.digest())).size).toBe(1);
  });

  it('a record of a kind this build does not know is verified, stored and forwarded, not interpreted', async () => {
    const c = new SimCluster({ n: 3, seed: 32, networks: [blue] });
    c.bootstrapAll();
    const kind9: RecordKind<undefined> = { code: 9, field: '', decode: () => null };
    // node-0 publishes a kind-9 record (its body carries no data field this build knows).
    const r = c.agents[0].publishRecord(kind9, 'blue', 'svc-1', undefined);
    const t = c.clock.runUntilTrue(() => c.agents.every((a) => a.table.get(9, 'blue', 'svc-1') !== undefined), 10_000);
    expect(t).toBeGreaterThanOrEqual(0);
    for (const a of c.agents) expect(Buffer.from(a.table.get(9, 'blue', 'svc-1')!.rec.body).equals(Buffer.from(r.body))).toBe(true);
  });
});
