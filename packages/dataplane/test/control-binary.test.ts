import { afterEach, describe, expect, it } from 'vitest';
import { InvalidAddressError, createDataplane, formatMac, parseIpAddress, parseMac, readMac, toIpBytes, toMac, type Dataplane } from '@overlay/dataplane';
import { buildArpRequest, buildFrame, buildNeighborSolicitation, createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';

// The control API takes MACs and IPs in binary as well as text, so an agent holding bytes
// programs the dataplane without a round trip through strings.

const VNI = 7;
const U = (n: number) => `198.18.0.${n}`;
const macBytes = (text: string) => Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function node(net: Testnet, n: number): { dp: Dataplane; dev: MemoryDevice } {
  const dev = createMemoryDevice({ name: `d${n}` });
  const dp = createDataplane({ transport: net.transport(U(n)), networks: [{ vni: VNI, device: dev, unknownUnicast: 'drop' }] });
  dp.start();
  open.push(dp);
  return { dp, dev };
}

describe('toMac / toIpBytes', () => {
  it('accept text, 48-bit numbers and 6 bytes alike', () => {
    expect(toMac('02:00:00:00:00:2a')).toBe(0x02000000002a);
    expect(toMac(0x02000000002a)).toBe(0x02000000002a);
    expect(toMac(macBytes('02:00:00:00:00:2a'))).toBe(0x02000000002a);
    expect(toMac(Buffer.from('ffffffffffff', 'hex'))).toBe(0xffffffffffff);
    expect(toMac(0)).toBe(0);
  });

  it('refuse numbers outside 0..2^48-1, non-integers and byte arrays that are not 6 long', () => {
    for (const bad of [-1, 2 ** 48, 1.5, NaN, Infinity, new Uint8Array(5), new Uint8Array(7), new Uint8Array(0)]) {
      expect(() => toMac(bad), String(bad)).toThrow(InvalidAddressError);
    }
    try {
      toMac(Uint8Array.of(1, 2, 3, 4, 5));
    } catch (e) {
      expect((e as InvalidAddressError).code).toBe('OVL_ERR_INVALID_ADDRESS');
      expect((e as InvalidAddressError).input).toBe('Uint8Array(5) 0102030405');
    }
  });

  it('take the family from the byte length and copy the bytes', () => {
    const v4 = Uint8Array.of(198, 19, 0, 9);
    const a = toIpBytes(v4);
    expect(a).toEqual(parseIpAddress('198.19.0.9'));
    v4[3] = 10;
    expect(a.bytes[3]).toBe(9);
    expect(toIpBytes(parseIpAddress('2001:db8::9').bytes)).toEqual(parseIpAddress('2001:db8::9'));
    expect(toIpBytes('2001:db8::9')).toEqual(parseIpAddress('2001:db8::9'));
    for (const n of [0, 3, 5, 15, 17]) expect(() => toIpBytes(new Uint8Array(n)), String(n)).toThrow(InvalidAddressError);
  });
});

describe('control API with binary keys', () => {
  it('setFdb/deleteFdb with a number or 6 bytes act on the same entry as text', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const b = node(net, 2);
    const m2 = '02:00:00:00:00:02';
    a.dp.setFdb(VNI, parseMac(m2), { address: U(2) });
    expect(a.dp.fdb(VNI)).toEqual([{ mac: m2, vtep: { address: U(2), port: 4789 }, kind: 'static' }]);
    const f = buildFrame({ dst: m2, src: '02:00:00:00:00:01' });
    a.dev.inject(f);
    await net.idle();
    expect(b.dev.received).toEqual([f]);

    // Replaced through bytes, deleted through text: one entry throughout.
    a.dp.setFdb(VNI, macBytes(m2), { address: U(3) });
    expect(a.dp.fdb(VNI)).toEqual([{ mac: m2, vtep: { address: U(3), port: 4789 }, kind: 'static' }]);
    a.dp.deleteFdb(VNI, m2);
    expect(a.dp.fdb(VNI)).toEqual([]);
    a.dp.setFdb(VNI, m2, { address: U(2) });
    a.dp.deleteFdb(VNI, macBytes(m2));
    expect(a.dp.fdb(VNI)).toEqual([]);
    a.dp.setFdb(VNI, macBytes(m2), { address: U(2) });
    a.dp.deleteFdb(VNI, parseMac(m2));
    expect(a.dp.fdb(VNI)).toEqual([]);
  });

  it('setFdb refuses group MACs and malformed binary MACs with InvalidAddressError', () => {
    const net = createTestnet();
    const a = node(net, 1);
    expect(() => a.dp.setFdb(VNI, 0xffffffffffff, { address: U(2) })).toThrow(InvalidAddressError);
    expect(() => a.dp.setFdb(VNI, macBytes('01:00:5e:00:00:01'), { address: U(2) })).toThrow(/group bit/);
    expect(() => a.dp.setFdb(VNI, 2 ** 48, { address: U(2) })).toThrow(InvalidAddressError);
    expect(() => a.dp.setFdb(VNI, new Uint8Array(4), { address: U(2) })).toThrow(InvalidAddressError);
    expect(() => a.dp.deleteFdb(VNI, -5)).toThrow(InvalidAddressError);
    expect(a.dp.fdb(VNI)).toEqual([]);
  });

  it('setNeighbour with 4 bytes and a number answers ARP; 16 bytes and 6 bytes answers ND; delete by bytes', async () => {
    const net = createTestnet();
    const a = node(net, 1);
    const ip4 = Uint8Array.of(198, 19, 0, 9);
    a.dp.setNeighbour(VNI, ip4, 0x020000000009);
    ip4[3] = 99; // the dataplane copied the key
    a.dev.inject(buildArpRequest({ srcMac: '02:00:00:00:00:01', srcIp: '198.19.0.1', targetIp: '198.19.0.9' }));
    const ip6 = parseIpAddress('2001:db8:1::9').bytes;
    a.dp.setNeighbour(VNI, ip6, macBytes('02:00:00:00:00:19'));
    a.dev.inject(buildNeighborSolicitation({ srcMac: '02:00:00:00:00:01', srcIp: '2001:db8:1::1', targetIp: '2001:db8:1::9' }));
    await net.idle();
    expect(a.dev.received).toHaveLength(2);
    expect(formatMac(readMac(a.dev.received[0], 6))).toBe('02:00:00:00:00:09');
    expect(formatMac(readMac(a.dev.received[1], 6))).toBe('02:00:00:00:00:19');
    expect(a.dp.stats().inside.arpSuppressed).toBe(2);

    a.dp.deleteNeighbour(VNI, Uint8Array.of(198, 19, 0, 9));
    a.dp.deleteNeighbour(VNI, ip6);
    a.dev.inject(buildArpRequest({ srcMac: '02:00:00:00:00:01', srcIp: '198.19.0.1', targetIp: '198.19.0.9' }));
    a.dev.inject(buildNeighborSolicitation({ srcMac: '02:00:00:00:00:01', srcIp: '2001:db8:1::1', targetIp: '2001:db8:1::9' }));
    await net.idle();
    expect(a.dev.received).toHaveLength(2);
    expect(a.dp.stats().inside.arpSuppressed).toBe(2);
  });

  it('setNeighbour/deleteNeighbour refuse byte arrays that are not 4 or 16 long', () => {
    const net = createTestnet();
    const a = node(net, 1);
    expect(() => a.dp.setNeighbour(VNI, new Uint8Array(6), 0x020000000009)).toThrow(InvalidAddressError);
    expect(() => a.dp.setNeighbour(VNI, Uint8Array.of(198, 19, 0, 9), new Uint8Array(16))).toThrow(InvalidAddressError);
    expect(() => a.dp.deleteNeighbour(VNI, new Uint8Array(8))).toThrow(InvalidAddressError);
  });
});
