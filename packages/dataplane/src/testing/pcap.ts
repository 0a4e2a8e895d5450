import { parseIpAddress } from '../codec/address.js';
import { internetChecksum, udpChecksumIpv4, udpChecksumIpv6 } from '../codec/checksum.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../codec/ethernet.js';
import { IPPROTO_UDP } from '../codec/ip.js';
import { parseMac, writeMac } from '../codec/mac.js';
import type { WireDatagram } from './testnet.js';

/**
 * Classic libpcap file format (microsecond timestamps, little-endian, link type Ethernet):
 * a 24-byte global header, then per packet a 16-byte record header and the bytes.
 */
export const LINKTYPE_ETHERNET = 1;

export interface PcapRecord {
  data: Uint8Array;
  /** Milliseconds since the epoch. Default 0. */
  timeMs?: number;
}

export function encodePcap(records: readonly PcapRecord[], linkType = LINKTYPE_ETHERNET): Buffer {
  const size = 24 + records.reduce((n, r) => n + 16 + r.data.length, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(0xa1b2c3d4, 0);
  out.writeUInt16LE(2, 4);
  out.writeUInt16LE(4, 6);
  out.writeInt32LE(0, 8); // thiszone
  out.writeUInt32LE(0, 12); // sigfigs
  out.writeUInt32LE(262144, 16); // snaplen
  out.writeUInt32LE(linkType, 20);
  let p = 24;
  for (const r of records) {
    const t = r.timeMs ?? 0;
    out.writeUInt32LE(Math.floor(t / 1000), p);
    out.writeUInt32LE(Math.floor((t % 1000) * 1000), p + 4);
    out.writeUInt32LE(r.data.length, p + 8);
    out.writeUInt32LE(r.data.length, p + 12);
    out.set(r.data, p + 16);
    p += 16 + r.data.length;
  }
  return out;
}

export interface UdpFrameOptions {
  srcMac?: string;
  dstMac?: string;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  ttl?: number;
}

/**
 * An outer Ethernet + IPv4/IPv6 + UDP frame around `payload`, with valid IP and UDP
 * checksums: what the kernel would put on the underlay wire for a datagram the dataplane
 * sent through a UDP socket. For captures; allocates.
 */
export function buildUdpFrame(o: UdpFrameOptions): Buffer {
  const src = parseIpAddress(o.src);
  const dst = parseIpAddress(o.dst);
  if (src.family !== dst.family) throw new TypeError('src and dst must be the same address family');
  const v6 = src.family === 6;
  const ipLen = v6 ? 40 : 20;
  const udpLen = 8 + o.payload.length;
  const f = Buffer.alloc(14 + ipLen + udpLen);
  writeMac(f, 0, parseMac(o.dstMac ?? '02:00:00:00:00:02'));
  writeMac(f, 6, parseMac(o.srcMac ?? '02:00:00:00:00:01'));
  f.writeUInt16BE(v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4, 12);
  const ip = 14;
  const udp = ip + ipLen;
  if (v6) {
    f[ip] = 0x60;
    f.writeUInt16BE(udpLen, ip + 4);
    f[ip + 6] = IPPROTO_UDP;
    f[ip + 7] = o.ttl ?? 64;
    f.set(src.bytes, ip + 8);
    f.set(dst.bytes, ip + 24);
  } else {
    f[ip] = 0x45;
    f.writeUInt16BE(ipLen + udpLen, ip + 2);
    f.writeUInt16BE(0x4000, ip + 6); // DF: VXLAN over IPv4 should not be fragmented
    f[ip + 8] = o.ttl ?? 64;
    f[ip + 9] = IPPROTO_UDP;
    f.set(src.bytes, ip + 12);
    f.set(dst.bytes, ip + 16);
    f.writeUInt16BE(internetChecksum(f, ip, 20), ip + 10);
  }
  f.writeUInt16BE(o.srcPort, udp);
  f.writeUInt16BE(o.dstPort, udp + 2);
  f.writeUInt16BE(udpLen, udp + 4);
  f.set(o.payload, udp + 8);
  const c = v6 ? udpChecksumIpv6(f, udp, udpLen, ip + 8, ip + 24) : udpChecksumIpv4(f, udp, udpLen, f.readUInt32BE(ip + 12), f.readUInt32BE(ip + 16));
  f.writeUInt16BE(c, udp + 6);
  return f;
}

/** A pcap file of datagrams captured on a Testnet, each wrapped in outer Ethernet/IP/UDP. */
export function pcapFromWire(datagrams: readonly WireDatagram[]): Buffer {
  return encodePcap(
    datagrams.map((d) => ({
      timeMs: d.time,
      data: buildUdpFrame({ src: d.from.address, dst: d.to.address, srcPort: d.from.port, dstPort: d.to.port, payload: d.payload }),
    })),
  );
}
