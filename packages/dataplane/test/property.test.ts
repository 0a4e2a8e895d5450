import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArpPacket, DecodeError, ERROR_STATUSES, EthernetHeader, Ipv4Header, Ipv6Header, Status, StatusCounts,
  decodeArp, decodeEthernet, decodeIpv4, decodeIpv6, decodeVxlan, encodeArp, encodeEthernet, encodeIpv4, encodeIpv6, encodeVxlan,
  parseArp, parseEthernet, parseIpv4, parseIpv6, parseVxlan,
} from '@overlay/dataplane';

/** Runs per decoder for the "any byte string" properties (the issue asks for ≥ 100 000). */
const FUZZ_RUNS = 100_000;
const mac = fc.integer({ min: 0, max: 2 ** 48 - 1 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const addr16 = fc.uint8Array({ minLength: 16, maxLength: 16 });

const ethernetArb = fc.record({
  dst: mac,
  src: mac,
  vlan: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 4095 })),
  pcp: fc.integer({ min: 0, max: 7 }),
  dei: fc.integer({ min: 0, max: 1 }),
  etherType: u16.filter((t) => t !== 0x8100),
});
const arpArb = fc.record({ op: u16, sha: mac, spa: u32, tha: mac, tpa: u32 });
const ipv4Arb = fc.record({
  dscp: fc.integer({ min: 0, max: 63 }),
  ecn: fc.integer({ min: 0, max: 3 }),
  totalLength: fc.integer({ min: 20, max: 200 }),
  identification: u16,
  flags: fc.integer({ min: 0, max: 7 }),
  fragmentOffset: fc.integer({ min: 0, max: 0x1fff }),
  ttl: u8,
  protocol: u8,
  src: u32,
  dst: u32,
});
const ipv6Arb = fc.record({
  trafficClass: u8,
  flowLabel: fc.integer({ min: 0, max: 0xfffff }),
  payloadLength: fc.integer({ min: 0, max: 200 }),
  nextHeader: u8,
  hopLimit: u8,
  src: addr16,
  dst: addr16,
});

function ethernetBytes(x: typeof ethernetArb extends fc.Arbitrary<infer T> ? T : never): Buffer {
  const h = Object.assign(new EthernetHeader(), x);
  const b = Buffer.alloc(18);
  return b.subarray(0, encodeEthernet(b, 0, h));
}
function arpBytes(x: { op: number; sha: number; spa: number; tha: number; tpa: number }): Buffer {
  const b = Buffer.alloc(28);
  encodeArp(b, 0, Object.assign(new ArpPacket(), x));
  return b;
}
function ipv4Bytes(x: { totalLength: number }): Buffer {
  const b = Buffer.alloc(x.totalLength);
  encodeIpv4(b, 0, Object.assign(new Ipv4Header(), x));
  return b;
}
function ipv6Bytes(x: { payloadLength: number; src: Uint8Array; dst: Uint8Array }): Buffer {
  const b = Buffer.alloc(40 + x.payloadLength);
  const h = new Ipv6Header();
  const { src: _s, dst: _d, ...scalars } = x;
  Object.assign(h, scalars);
  h.src.set(x.src);
  h.dst.set(x.dst);
  encodeIpv6(b, 0, h);
  return b;
}

describe('decode(encode(x)) = x', () => {
  it('VXLAN', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffff }), (vni) => {
        const b = Buffer.alloc(8);
        encodeVxlan(b, 0, vni);
        expect(decodeVxlan(b, 0, 8)).toBe(vni);
      }),
      { numRuns: 2000 },
    );
  });

  it('Ethernet with and without 802.1Q', () => {
    fc.assert(
      fc.property(ethernetArb, (x) => {
        const h = new EthernetHeader();
        const b = ethernetBytes(x);
        expect(decodeEthernet(b, 0, b.length, h)).toBe(Status.OK);
        const want = x.vlan < 0 ? { ...x, pcp: 0, dei: 0 } : x;
        expect({ dst: h.dst, src: h.src, vlan: h.vlan, pcp: h.pcp, dei: h.dei, etherType: h.etherType }).toEqual(want);
        expect(h.headerLength).toBe(b.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('ARP', () => {
    fc.assert(
      fc.property(arpArb, (x) => {
        const p = new ArpPacket();
        expect(decodeArp(arpBytes(x), 0, 28, p)).toBe(Status.OK);
        expect({ ...p }).toEqual(x);
      }),
      { numRuns: 2000 },
    );
  });

  it('IPv4 (checksum verified)', () => {
    fc.assert(
      fc.property(ipv4Arb, (x) => {
        const h = new Ipv4Header();
        const b = ipv4Bytes(x);
        expect(decodeIpv4(b, 0, b.length, h, true)).toBe(Status.OK);
        const { ihl, headerLength, checksum, ...fields } = h;
        expect(fields).toEqual(x);
        expect([ihl, headerLength]).toEqual([5, 20]);
        expect(checksum).toBe(b.readUInt16BE(10));
      }),
      { numRuns: 2000 },
    );
  });

  it('IPv6', () => {
    fc.assert(
      fc.property(ipv6Arb, (x) => {
        const h = new Ipv6Header();
        const b = ipv6Bytes(x);
        expect(decodeIpv6(b, 0, b.length, h)).toBe(Status.OK);
        expect({ ...h, src: [...h.src], dst: [...h.dst] }).toEqual({ ...x, src: [...x.src], dst: [...x.dst] });
      }),
      { numRuns: 2000 },
    );
  });
});

/**
 * Random byte strings and mutations of valid encodings (flipped bytes, truncated, extended).
 * For each: the decoder returns OK or one of the defined error statuses, the `parse*` form
 * returns a header or a DecodeError, nothing throws, and decoding the same bytes embedded in
 * a larger buffer full of junk gives the same result (so nothing outside the range is read).
 */
function bytesOrMutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const mutated = fc
    .tuple(valid, fc.array(fc.tuple(fc.nat(), u8), { maxLength: 4 }), fc.integer({ min: -30, max: 10 }))
    .map(([b, flips, resize]) => {
      const out = Buffer.from(b);
      for (const [i, v] of flips) if (out.length) out[i % out.length] = v;
      if (resize < 0) return out.subarray(0, Math.max(0, out.length + resize));
      return Buffer.concat([out, Buffer.alloc(resize, 0xa5)]);
    });
  return fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated, mutated);
}

type Decode = (buf: Uint8Array, off: number, len: number) => { status: number; fields: unknown };

function fuzz(name: string, valid: fc.Arbitrary<Uint8Array>, decode: Decode, parse: (b: Uint8Array) => unknown): void {
  it(`${name}: ${FUZZ_RUNS} random/mutated byte strings yield a value or a typed error`, () => {
    const okStatuses = new Set([...ERROR_STATUSES]);
    const seen = new Set<number>();
    const counts = new StatusCounts();
    fc.assert(
      fc.property(bytesOrMutated(valid), fc.uint8Array({ minLength: 0, maxLength: 8 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), (bytes, before, after) => {
        const r = decode(bytes, 0, bytes.length);
        counts.record(r.status);
        if (!(r.status >= 0 || okStatuses.has(r.status))) throw new Error(`status ${r.status} is not defined`);
        seen.add(r.status >= 0 ? 0 : r.status);
        const big = Buffer.concat([before, bytes, after]);
        const r2 = decode(big, before.length, bytes.length);
        expect(r2).toEqual(r);
        const p = parse(bytes);
        if (r.status < 0) {
          if (!(p instanceof DecodeError) || p.status !== r.status || typeof p.code !== 'string') throw new Error('parse did not return the typed error');
        } else if (p instanceof Error) throw new Error('parse returned an error for a valid header');
      }),
      { numRuns: FUZZ_RUNS, seed: 0x5eed },
    );
    // The generator reached both outcomes: the property is not vacuous.
    expect(seen.has(0)).toBe(true);
    expect(seen.size).toBeGreaterThan(1);
    const byName = counts.snapshot();
    expect(Object.keys(byName).length).toBe(seen.size - 1);
    expect(Object.keys(byName)).not.toContain('unknown_status');
  });
}

describe('decoders never fail on arbitrary input', () => {
  fuzz(
    'VXLAN',
    fc.integer({ min: 0, max: 0xffffff }).map((v) => {
      const b = Buffer.alloc(8);
      encodeVxlan(b, 0, v);
      return b;
    }),
    (b, o, l) => ({ status: decodeVxlan(b, o, l), fields: null }),
    parseVxlan,
  );
  const eth = new EthernetHeader();
  fuzz('Ethernet', ethernetArb.map(ethernetBytes), (b, o, l) => ({ status: decodeEthernet(b, o, l, eth), fields: { ...eth } }), parseEthernet);
  const arp = new ArpPacket();
  fuzz('ARP', arpArb.map(arpBytes), (b, o, l) => ({ status: decodeArp(b, o, l, arp), fields: { ...arp } }), parseArp);
  const v4 = new Ipv4Header();
  fuzz('IPv4', ipv4Arb.map(ipv4Bytes), (b, o, l) => ({ status: decodeIpv4(b, o, l, v4, true), fields: { ...v4 } }), (b) => parseIpv4(b, true));
  const v6 = new Ipv6Header();
  fuzz('IPv6', ipv6Arb.map(ipv6Bytes), (b, o, l) => ({ status: decodeIpv6(b, o, l, v6), fields: { ...v6, src: [...v6.src], dst: [...v6.dst] } }), parseIpv6);

  it('every decoder reports bad_range for a range outside the buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: -100, max: 100 }), fc.integer({ min: -100, max: 200 }), (b, off, len) => {
        fc.pre(off < 0 || len < 0 || off + len > b.length);
        for (const s of [
          decodeVxlan(b, off, len),
          decodeEthernet(b, off, len, eth),
          decodeArp(b, off, len, arp),
          decodeIpv4(b, off, len, v4, true),
          decodeIpv6(b, off, len, v6),
        ]) expect(s).toBe(Status.bad_range);
      }),
      { numRuns: 5000 },
    );
  });
});
