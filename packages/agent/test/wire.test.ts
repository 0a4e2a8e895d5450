import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PROTOCOL_MAX, PROTOCOL_MIN, WireDecodeError } from '@overlay/agent';
import { decodeEnvelope, decodeStateChunk, encodeHeader, encodeMessageField, encodeStateChunk, type Message } from '../src/wire.js';
import { DESCRIPTOR_FILE, descriptorText } from '../proto/descriptor.js';

const meta = { signKey: new Uint8Array(32).fill(1), vtep: '198.18.0.1', vtepPort: 4789, wgKey: '', wgPort: 0, pmin: 2, pmax: 2 };

describe('wire codec', () => {
  it('the checked-in descriptor (agent.json) is what agent.proto compiles to', () => {
    expect(readFileSync(DESCRIPTOR_FILE, 'utf8')).toBe(descriptorText());
    expect(fileURLToPath(new URL('../proto/agent.json', import.meta.url))).toBe(DESCRIPTOR_FILE);
  });

  it('round-trips an envelope built by concatenating pre-encoded message fields', () => {
    const head = encodeHeader({ pmin: PROTOCOL_MIN, pmax: PROTOCOL_MAX, from: 'a', session: 1_700_000_000_123, seq: 7, ts: 1_700_000_000_456 });
    const record = { body: Uint8Array.from([8, 1, 18, 4, 98, 108, 117, 101, 0x98, 0x07, 1]), sig: new Uint8Array(64).fill(9) };
    const msgs: Message[] = [
      { ping: { seqNo: 5, target: 'b', replyIp: '', replyPort: 0 } },
      { alive: { name: 'c', incarnation: 3, ip: '198.18.0.3', port: 7946, meta } },
      { record },
    ];
    const env = decodeEnvelope(Buffer.concat([head, ...msgs.map(encodeMessageField)]));
    expect(env.from).toBe('a');
    expect(env.session).toBe(1_700_000_000_123);
    expect(env.seq).toBe(7);
    expect(env.msgs).toHaveLength(3);
    expect(env.msgs[0]).toEqual(msgs[0]);
    const a = (env.msgs[1] as { alive: { meta: { signKey: Uint8Array } } }).alive;
    expect(Buffer.from(a.meta.signKey)).toEqual(Buffer.from(meta.signKey));
    // A record's body (here with a field no schema knows, 0x98 0x07 = field 115) comes back byte for byte.
    const r = (env.msgs[2] as { record: { body: Uint8Array; sig: Uint8Array } }).record;
    expect(Buffer.from(r.body)).toEqual(Buffer.from(record.body));
    expect(Buffer.from(r.sig)).toEqual(Buffer.from(record.sig));
  });

  it('round-trips a state chunk with its session binding', () => {
    const c = { pmin: 2, pmax: 2, from: 'a', join: true, nodes: [{ alive: { name: 'a', incarnation: 1, ip: '198.18.0.1', port: 7946, meta }, state: 2 }], records: [], last: true, ping: false, target: '', session: 2 ** 41, seq: 3, ts: 1_700_000_000_000, replySession: 5, replySeq: 6 };
    const d = decodeStateChunk(encodeStateChunk(c));
    expect(d.join).toBe(true);
    expect(d.nodes[0].state).toBe(2);
    expect(d.nodes[0].alive.name).toBe('a');
    expect([d.session, d.seq, d.ts, d.replySession, d.replySeq]).toEqual([2 ** 41, 3, 1_700_000_000_000, 5, 6]);
  });

  it('throws WireDecodeError on invalid wire types and truncation', () => {
    const head = encodeHeader({ pmin: 1, pmax: 1, from: 'abcdef', session: 1, seq: 1, ts: 1 });
    expect(() => decodeEnvelope(Uint8Array.from([...head, 0x7f, 0x01]))).toThrow(WireDecodeError);
    expect(() => decodeStateChunk(Uint8Array.from([0x2a, 0xff]))).toThrow(WireDecodeError);
    expect(() => decodeStateChunk(Uint8Array.from([0x2a, 0xff]))).toThrow(expect.objectContaining({ code: 'OVL_ERR_AGENT_WIRE_DECODE' }));
  });
});
