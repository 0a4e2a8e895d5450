import { describe, expect, it } from 'vitest';
import {
  ArpPacket, DecodeError, EthernetHeader, Ipv4Header, Ipv6Header, MalformedHeaderError, Status, TruncatedHeaderError, UnsupportedHeaderError,
  decodeArp, decodeEthernet, decodeIpv4, decodeIpv6, decodeVxlan, encodeArp, encodeEthernet, encodeIpv4, encodeIpv6, encodeVxlan, encodeVxlanChecked,
  formatIpAddress, formatIpv4Address, formatMac, internetChecksum, onesComplementSum, parseArp, parseEthernet, parseIpAddress, parseIpv4,
  parseIpv4Address, parseIpv6, parseMac, parseVxlan, rewriteArpRequestAsReply, statusName, StatusCounts, udpChecksumIpv4, udpChecksumIpv6, InvalidAddressError, VXLAN_PORT,
} from '@overlay/dataplane';

/** Hex string (spaces ignored) to bytes: byte layouts below are written out from the RFCs. */
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('VXLAN header (RFC 7348 §5)', () => {
  // |R|R|R|R|I|R|R|R| Reserved(24) | VNI(24) | Reserved(8) |
  const vni123456 = hex('08 000000 123456 00');

  it('encodes flags 0x08, zero reserved fields and the 24-bit VNI in network order', () => {
    const b = Buffer.alloc(8, 0xee);
    encodeVxlan(b, 0, 0x123456);
    expect(b).toEqual(vni123456);
    expect(VXLAN_PORT).toBe(4789);
  });

  it('encodes in place at an offset without touching neighbouring bytes', () => {
    const b = Buffer.alloc(20, 0xaa);
    expect(encodeVxlanChecked(b, 6, 0xffffff)).toBe(8);
    expect(b).toEqual(hex('aaaaaaaaaaaa 08000000ffffff00 aaaaaaaaaaaa'));
    expect(encodeVxlanChecked(b, 13, 1)).toBe(Status.bad_range);
    expect(encodeVxlanChecked(b, 0, 1 << 24)).toBe(Status.bad_range);
  });

  it('decodes the VNI and ignores reserved bits on receive', () => {
    expect(decodeVxlan(vni123456, 0, 8)).toBe(0x123456);
    expect(decodeVxlan(hex('ff ffffff abcdef ff'), 0, 8)).toBe(0xabcdef);
    expect(decodeVxlan(hex('08 000000 000000 00'), 0, 8)).toBe(0);
    // Followed by an inner frame: only the first 8 bytes matter.
    expect(decodeVxlan(hex('0800000000002a00 ffffffffffff'), 0, 14)).toBe(42);
  });

  it('rejects a header without the I flag and a short datagram', () => {
    expect(decodeVxlan(hex('00 000000 123456 00'), 0, 8)).toBe(Status.vxlan_no_i_flag);
    expect(decodeVxlan(hex('f7 ffffff 123456 ff'), 0, 8)).toBe(Status.vxlan_no_i_flag);
    expect(decodeVxlan(hex('08 000000 123456'), 0, 7)).toBe(Status.vxlan_too_short);
    expect(decodeVxlan(vni123456, 4, 8)).toBe(Status.bad_range);
    expect(statusName(Status.vxlan_no_i_flag)).toBe('vxlan_no_i_flag');
    const e = parseVxlan(hex('00000000'));
    expect(e).toBeInstanceOf(TruncatedHeaderError);
    expect((e as DecodeError).reason).toBe('vxlan_too_short');
    expect(parseVxlan(hex('00 000000 000001 00'))).toBeInstanceOf(MalformedHeaderError);
    expect(parseVxlan(vni123456)).toEqual({ vni: 0x123456 });
  });
});

describe('Ethernet II and 802.1Q', () => {
  const untagged = hex('ffffffffffff 020000000001 0806');
  // TPID 0x8100, TCI: PCP 5, DEI 1, VID 0x00a = 1011 0000 0000 1010 = b00a
  const tagged = hex('0200000000aa 020000000001 8100 b00a 0800');

  it('decodes destination, source, etherType', () => {
    const h = new EthernetHeader();
    expect(decodeEthernet(untagged, 0, 14, h)).toBe(Status.OK);
    expect(formatMac(h.dst)).toBe('ff:ff:ff:ff:ff:ff');
    expect(formatMac(h.src)).toBe('02:00:00:00:00:01');
    expect(h.etherType).toBe(0x0806);
    expect(h.vlan).toBe(-1);
    expect(h.headerLength).toBe(14);
  });

  it('decodes an 802.1Q tag (PCP, DEI, VID) and the inner etherType', () => {
    const h = new EthernetHeader();
    expect(decodeEthernet(tagged, 0, 18, h)).toBe(Status.OK);
    expect([h.pcp, h.dei, h.vlan, h.etherType, h.headerLength]).toEqual([5, 1, 10, 0x0800, 18]);
    expect(formatMac(h.dst)).toBe('02:00:00:00:00:aa');
  });

  it('encodes the same bytes', () => {
    const h = new EthernetHeader();
    decodeEthernet(tagged, 0, 18, h);
    const b = Buffer.alloc(18);
    expect(encodeEthernet(b, 0, h)).toBe(18);
    expect(b).toEqual(tagged);
    expect(encodeEthernet(Buffer.alloc(17), 0, h)).toBe(Status.bad_range);
  });

  it('rejects truncated headers, including a tag without its etherType', () => {
    const h = new EthernetHeader();
    expect(decodeEthernet(untagged, 0, 13, h)).toBe(Status.ethernet_too_short);
    expect(decodeEthernet(tagged, 0, 17, h)).toBe(Status.ethernet_too_short);
    expect(parseEthernet(tagged.subarray(0, 16))).toBeInstanceOf(TruncatedHeaderError);
  });
});

describe('ARP (RFC 826) for Ethernet/IPv4', () => {
  // htype 1, ptype 0800, hlen 6, plen 4, op 1, sha, spa 198.19.0.1, tha 0, tpa 198.19.0.3
  const request = hex('0001 0800 06 04 0001 020000000001 c6130001 000000000000 c6130003');

  it('decodes a request', () => {
    const p = new ArpPacket();
    expect(decodeArp(request, 0, 28, p)).toBe(Status.OK);
    expect(p.op).toBe(1);
    expect(formatMac(p.sha)).toBe('02:00:00:00:00:01');
    expect(formatIpv4Address(p.spa)).toBe('198.19.0.1');
    expect(p.tha).toBe(0);
    expect(formatIpv4Address(p.tpa)).toBe('198.19.0.3');
  });

  it('encodes the same bytes and accepts trailing Ethernet padding', () => {
    const p = new ArpPacket();
    decodeArp(request, 0, 28, p);
    const b = Buffer.alloc(28);
    expect(encodeArp(b, 0, p)).toBe(28);
    expect(b).toEqual(request);
    const padded = Buffer.concat([request, Buffer.alloc(18)]);
    expect(decodeArp(padded, 0, padded.length, new ArpPacket())).toBe(Status.OK);
  });

  it('rejects short packets and non-Ethernet/IPv4 variants with distinct errors', () => {
    expect(decodeArp(request, 0, 27, new ArpPacket())).toBe(Status.arp_too_short);
    const ipv6ish = Buffer.from(request);
    ipv6ish[2] = 0x86;
    ipv6ish[3] = 0xdd;
    expect(decodeArp(ipv6ish, 0, 28, new ArpPacket())).toBe(Status.arp_unsupported);
    expect(parseArp(ipv6ish)).toBeInstanceOf(UnsupportedHeaderError);
    expect((parseArp(ipv6ish) as DecodeError).code).toBe('OVL_ERR_UNSUPPORTED');
  });

  it('rewrites a request frame into the reply in place', () => {
    const frame = Buffer.concat([hex('ffffffffffff 020000000001 0806'), request]);
    const n = rewriteArpRequestAsReply(frame, 0, 14, 0x0200, 0x00000003);
    expect(n).toBe(42);
    expect(frame).toEqual(
      Buffer.concat([hex('020000000001 020000000003 0806'), hex('0001 0800 06 04 0002 020000000003 c6130003 020000000001 c6130001')]),
    );
  });
});

describe('IPv4 header (RFC 791) and checksums (RFC 1071)', () => {
  // Version 4, IHL 5, TOS 0, total 0x0073, id 0, DF, TTL 64, UDP, 198.18.0.1 → 198.18.0.199:
  // the widely used worked example of the header checksum (its private-range addresses) moved
  // to our test range; checksum ad8d computed independently (Python, RFC 1071 sum).
  const header = hex('4500 0073 0000 4000 4011 ad8d c6120001 c61200c7');

  it('RFC 1071 §3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2, checksum 220d', () => {
    const b = hex('0001 f203 f4f5 f6f7');
    expect(onesComplementSum(b, 0, 8)).toBe(0xddf2);
    expect(internetChecksum(b, 0, 8)).toBe(0x220d);
    // Odd length: the last byte is padded with zero on the right.
    expect(onesComplementSum(hex('0102 03'), 0, 3)).toBe(0x0402);
  });

  it('decodes the fields and verifies the checksum', () => {
    const h = new Ipv4Header();
    const packet = Buffer.concat([header, Buffer.alloc(0x73 - 20)]);
    expect(decodeIpv4(packet, 0, packet.length, h, true)).toBe(Status.OK);
    expect([h.ihl, h.totalLength, h.flags, h.fragmentOffset, h.ttl, h.protocol, h.checksum]).toEqual([5, 0x73, 2, 0, 64, 17, 0xad8d]);
    expect(formatIpv4Address(h.src)).toBe('198.18.0.1');
    expect(formatIpv4Address(h.dst)).toBe('198.18.0.199');
    expect(internetChecksum(header, 0, 20)).toBe(0);
  });

  it('encodes the same bytes, computing the checksum', () => {
    const h = new Ipv4Header();
    decodeIpv4(Buffer.concat([header, Buffer.alloc(0x73 - 20)]), 0, 0x73, h);
    const b = Buffer.alloc(20);
    expect(encodeIpv4(b, 0, h)).toBe(20);
    expect(b).toEqual(header);
  });

  it('rejects bad version, IHL, total length, truncation and checksum', () => {
    const h = new Ipv4Header();
    const packet = Buffer.concat([header, Buffer.alloc(0x73 - 20)]);
    const mut = (i: number, v: number) => {
      const p = Buffer.from(packet);
      p[i] = v;
      return p;
    };
    expect(decodeIpv4(packet, 0, 19, h)).toBe(Status.ipv4_too_short);
    expect(decodeIpv4(mut(0, 0x65), 0, packet.length, h)).toBe(Status.ipv4_bad_version);
    expect(decodeIpv4(mut(0, 0x44), 0, packet.length, h)).toBe(Status.ipv4_bad_ihl);
    expect(decodeIpv4(mut(3, 0x10), 0, packet.length, h)).toBe(Status.ipv4_bad_total_length);
    expect(decodeIpv4(packet, 0, 0x72, h)).toBe(Status.ipv4_truncated);
    expect(decodeIpv4(mut(8, 63), 0, packet.length, h, true)).toBe(Status.ipv4_bad_checksum);
    expect(decodeIpv4(mut(8, 63), 0, packet.length, h, false)).toBe(Status.OK);
    expect(parseIpv4(mut(8, 63), true)).toBeInstanceOf(MalformedHeaderError);
  });

  it('computes the UDP checksum with the pseudo-header (valid packets sum to zero)', () => {
    const src = parseIpv4Address('198.18.0.1');
    const dst = parseIpv4Address('198.18.0.2');
    const udp = hex('c000 12b5 000c 0000 deadbeef');
    const c = udpChecksumIpv4(udp, 0, 12, src, dst);
    udp.writeUInt16BE(c, 6);
    // Receiver check: sum over pseudo-header + segment including the checksum = 0xffff.
    const pseudo = hex('c6120001 c6120002 0011 000c');
    expect(onesComplementSum(udp, 0, 12, onesComplementSum(pseudo, 0, 12))).toBe(0xffff);
  });

  it('computes the UDP checksum over IPv6 with the RFC 8200 pseudo-header', () => {
    // Addresses 2001:db8::1 and 2001:db8::2 at 0 and 16, the UDP segment at 32.
    const buf = hex('20010db8000000000000000000000001 20010db8000000000000000000000002 c000 12b5 000c 0000 deadbeef');
    const c = udpChecksumIpv6(buf, 32, 12, 0, 16);
    buf.writeUInt16BE(c, 38);
    // Receiver check: pseudo-header (src, dst, 32-bit length, 3 zero bytes, next header 17).
    const pseudo = Buffer.concat([buf.subarray(0, 32), hex('0000000c 00000011')]);
    expect(onesComplementSum(buf, 32, 12, onesComplementSum(pseudo, 0, 40))).toBe(0xffff);
    expect(c).toBe(0x10000 - 1 - ((0x2001 + 0x0db8 + 0x0001 + 0x2001 + 0x0db8 + 0x0002 + 0x000c + 0x0011 + 0xc000 + 0x12b5 + 0x000c + 0xdead + 0xbeef) % 0xffff));
  });
});

describe('IPv6 header (RFC 8200 §3)', () => {
  // version 6, traffic class 0xa5, flow label 0x12345, payload 8, next header UDP, hop limit 64,
  // 2001:db8::1 → 2001:db8::2
  const header = hex('6a51 2345 0008 11 40 20010db8000000000000000000000001 20010db8000000000000000000000002');

  it('decodes and encodes the same bytes', () => {
    const h = new Ipv6Header();
    const packet = Buffer.concat([header, Buffer.alloc(8)]);
    expect(decodeIpv6(packet, 0, 48, h)).toBe(Status.OK);
    expect([h.trafficClass, h.flowLabel, h.payloadLength, h.nextHeader, h.hopLimit]).toEqual([0xa5, 0x12345, 8, 17, 64]);
    expect(formatIpAddress(6, h.src)).toBe('2001:db8::1');
    expect(formatIpAddress(6, h.dst)).toBe('2001:db8::2');
    const b = Buffer.alloc(40);
    expect(encodeIpv6(b, 0, h)).toBe(40);
    expect(b).toEqual(header);
  });

  it('rejects short, wrong-version and truncated packets', () => {
    const h = new Ipv6Header();
    expect(decodeIpv6(header, 0, 39, h)).toBe(Status.ipv6_too_short);
    const v4 = Buffer.from(header);
    v4[0] = 0x4a;
    expect(decodeIpv6(v4, 0, 40, h)).toBe(Status.ipv6_bad_version);
    expect(decodeIpv6(header, 0, 40, h)).toBe(Status.ipv6_truncated);
    expect(parseIpv6(header)).toBeInstanceOf(TruncatedHeaderError);
  });
});

describe('StatusCounts', () => {
  it('counts failures by reason and passes statuses through', () => {
    const counts = new StatusCounts();
    const b = hex('00 000000 000001 00');
    expect(counts.record(decodeVxlan(b, 0, 8))).toBe(Status.vxlan_no_i_flag);
    counts.record(decodeVxlan(b, 0, 3));
    counts.record(decodeVxlan(b, 0, 2));
    expect(counts.record(decodeVxlan(hex('08 000000 000001 00'), 0, 8))).toBe(1);
    expect(counts.snapshot()).toEqual({ vxlan_no_i_flag: 1, vxlan_too_short: 2 });
  });
});

describe('textual addresses', () => {
  it('parses and formats MACs, IPv4 and IPv6 (RFC 5952 form)', () => {
    expect(parseMac('02:00:5E:10:00:01')).toBe(0x02005e100001);
    expect(parseMac('02-00-5e-10-00-01')).toBe(0x02005e100001);
    expect(formatMac(0x02005e100001)).toBe('02:00:5e:10:00:01');
    expect(parseIpv4Address('198.18.0.1')).toBe(0xc6120001);
    const v6 = parseIpAddress('2001:DB8:0:0:1::1');
    expect(v6.family).toBe(6);
    expect(formatIpAddress(6, v6.bytes)).toBe('2001:db8::1:0:0:1');
    expect(formatIpAddress(6, parseIpAddress('::').bytes)).toBe('::');
    expect(formatIpAddress(6, parseIpAddress('::ffff:198.18.0.1').bytes)).toBe('::ffff:c612:1');
    expect(formatIpAddress(6, parseIpAddress('2001:db8:1:2:3:4:5:6').bytes)).toBe('2001:db8:1:2:3:4:5:6');
  });

  it('throws InvalidAddressError for malformed input', () => {
    for (const bad of ['02:00:5e:10:00', '02:00:5e:10:00:0g', '', '0200.5e10.0001']) expect(() => parseMac(bad)).toThrow(InvalidAddressError);
    for (const bad of ['198.18.0', '198.18.0.256', 'fe80::1%eth0', '2001:db8:::1', 'x']) expect(() => parseIpAddress(bad)).toThrow(InvalidAddressError);
  });
});
