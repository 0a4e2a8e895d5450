import { describe, expect, it } from 'vitest';
import { decodeEnvelope, decodeStateChunk, encodeHeader, encodeMessageField, encodeStateChunk, WireDecodeError, PROTOCOL_MAX, PROTOCOL_MIN, type Message } from '@overlay/agent';

const meta = { signKey: new Uint8Array(32).fill(1), vtep: '198.18.0.1', vtepPort: 4789, wgKey: '', wgPort: 0, pmin: 1, pmax: 1 };

describe('wire codec', () => {
  it('round-trips an envelope built by concatenating pre-encoded message fields', () => {
    const head = encodeHeader({ pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: 'a', session: 1_700_000_000_123, seq: 7, ts: 1_700_000_000_456 });
    const msgs: Message[] = [
      { ping: { seqNo: 5, target: 'b', replyIp: '', replyPort: 0 } },
      { alive: { name: 'c', incarnation: 3, ip: '198.18.0.3', port: 7946, meta } },
      { endpoint: { network: 'blue', vni: 100, id: 'e1', mac: Uint8Array.from([2, 0, 0, 0, 0, 1]), ipv4: Uint8Array.from([198, 19, 0, 1]), ipv6: new Uint8Array(0), owner: 'c', vtep: '198.18.0.3', version: 2 ** 40, deleted: true, sig: new Uint8Array(64).fill(9) } },
    ];
    const parts = [head, ...msgs.map(encodeMessageField)];
    const buf = Buffer.concat(parts);
    const env = decodeEnvelope(buf);
    expect(env.from).toBe('a');
    expect(env.session).toBe(1_700_000_000_123);
    expect(env.seq).toBe(7);
    expect(env.msgs).toHaveLength(3);
    expect(env.msgs[0]).toEqual(msgs[0]);
    const a = (env.msgs[1] as { alive: { meta: { signKey: Uint8Array } } }).alive;
    expect(Buffer.from(a.meta.signKey)).toEqual(Buffer.from(meta.signKey));
    const r = (env.msgs[2] as { endpoint: { version: number; deleted: boolean; mac: Uint8Array } }).endpoint;
    expect(r.version).toBe(2 ** 40);
    expect(r.deleted).toBe(true);
    expect([...r.mac]).toEqual([2, 0, 0, 0, 0, 1]);
  });

  it('round-trips a state chunk', () => {
    const c = { pmin: 1, pmax: 1, from: 'a', join: true, nodes: [{ alive: { name: 'a', incarnation: 1, ip: '198.18.0.1', port: 7946, meta }, state: 2 }], endpoints: [], last: true, ping: false, target: '' };
    const d = decodeStateChunk(encodeStateChunk(c));
    expect(d.join).toBe(true);
    expect(d.nodes[0].state).toBe(2);
    expect(d.nodes[0].alive.name).toBe('a');
  });

  it('throws WireDecodeError on invalid wire types and truncation', () => {
    const head = encodeHeader({ pmin: 1, pmax: 1, from: 'abcdef', session: 1, seq: 1, ts: 1 });
    expect(() => decodeEnvelope(Uint8Array.from([...head, 0x7f, 0x01]))).toThrow(WireDecodeError);
    expect(() => decodeStateChunk(Uint8Array.from([0x2a, 0xff]))).toThrow(WireDecodeError);
    expect(() => decodeStateChunk(Uint8Array.from([0x2a, 0xff]))).toThrow(expect.objectContaining({ code: 'OVL_ERR_AGENT_WIRE_DECODE' }));
  });
});
