import { createDataplane, formatIpAddress, internetChecksum, ipv4PseudoHeaderSum, ipv6PseudoHeaderSum, parseIpAddress, parseIpv4Address, parseMac, writeMac, type Dataplane } from '@overlay/dataplane';
import { createMemoryDevice, createTestnet } from '@overlay/dataplane/testing';
import { ServiceVips } from '../src/vip/index.js';

/** Test frames for the VIP: IPv4 TCP/UDP/ICMP echo with every checksum complete (allocates). */
export interface Ipv4FrameOptions {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  /** TCP flags byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16). */
  flags?: number;
  seq?: number;
  ack?: number;
  /** ICMP type (8 echo request, 0 echo reply) and identifier. */
  icmpType?: number;
  id?: number;
  payload?: Uint8Array;
  /** UDP without a checksum (0). */
  noUdpChecksum?: boolean;
}

export function ipv4Frame(o: Ipv4FrameOptions): Buffer {
  const payload = o.payload ?? new Uint8Array(0);
  const l4len = (o.proto === 'tcp' ? 20 : 8) + payload.length;
  const f = Buffer.alloc(14 + 20 + l4len);
  writeMac(f, 0, parseMac(o.dstMac));
  writeMac(f, 6, parseMac(o.srcMac));
  f.writeUInt16BE(0x0800, 12);
  const ip = 14;
  f[ip] = 0x45;
  f.writeUInt16BE(20 + l4len, ip + 2);
  f.writeUInt16BE(0x1234, ip + 4);
  f[ip + 6] = 0x40;
  f[ip + 8] = 64;
  f[ip + 9] = o.proto === 'tcp' ? 6 : o.proto === 'udp' ? 17 : 1;
  const src = parseIpv4Address(o.src);
  const dst = parseIpv4Address(o.dst);
  f.writeUInt32BE(src >>> 0, ip + 12);
  f.writeUInt32BE(dst >>> 0, ip + 16);
  f.writeUInt16BE(internetChecksum(f, ip, 20), ip + 10);
  const l4 = ip + 20;
  if (o.proto === 'icmp') {
    f[l4] = o.icmpType ?? 8;
    f.writeUInt16BE(o.id ?? 1, l4 + 4);
    f.writeUInt16BE(1, l4 + 6);
    f.set(payload, l4 + 8);
    f.writeUInt16BE(internetChecksum(f, l4, l4len), l4 + 2);
    return f;
  }
  f.writeUInt16BE(o.sport ?? 40000, l4);
  f.writeUInt16BE(o.dport ?? 80, l4 + 2);
  const pseudo = ipv4PseudoHeaderSum(src >>> 0, dst >>> 0, f[ip + 9], l4len);
  if (o.proto === 'tcp') {
    f.writeUInt32BE((o.seq ?? 1000) >>> 0, l4 + 4);
    f.writeUInt32BE((o.ack ?? 0) >>> 0, l4 + 8);
    f[l4 + 12] = 0x50;
    f[l4 + 13] = o.flags ?? 0x02;
    f.writeUInt16BE(65535, l4 + 14);
    f.set(payload, l4 + 20);
    f.writeUInt16BE(internetChecksum(f, l4, l4len, pseudo), l4 + 16);
  } else {
    f.writeUInt16BE(l4len, l4 + 4);
    f.set(payload, l4 + 8);
    if (!o.noUdpChecksum) f.writeUInt16BE(internetChecksum(f, l4, l4len, pseudo) || 0xffff, l4 + 6);
  }
  return f;
}

/** What a test reads back from an (untagged) IPv4 frame. */
export function parseIpv4Frame(f: Uint8Array) {
  const b = Buffer.from(f.buffer, f.byteOffset, f.length);
  const ip = 14;
  const ihl = (b[ip] & 15) * 4;
  const total = b.readUInt16BE(ip + 2);
  const l4 = ip + ihl;
  const proto = b[ip + 9];
  const ipStr = (at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
  const mac = (at: number) => [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
  return {
    dstMac: mac(0), srcMac: mac(6), src: ipStr(ip + 12), dst: ipStr(ip + 16), proto,
    sport: proto === 1 ? -1 : b.readUInt16BE(l4), dport: proto === 1 ? -1 : b.readUInt16BE(l4 + 2),
    flags: proto === 6 ? b[l4 + 13] : -1, seq: proto === 6 ? b.readUInt32BE(l4 + 4) : -1, ack: proto === 6 ? b.readUInt32BE(l4 + 8) : -1,
    id: proto === 1 ? b.readUInt16BE(l4 + 4) : -1, icmpType: proto === 1 ? b[l4] : -1,
    payload: b.subarray(l4 + (proto === 6 ? (b[l4 + 12] >> 4) * 4 : 8), ip + total),
  };
}

/**
 * Verifies every checksum of an IPv4 frame twice: the sum over the field must come out right,
 * and the field must equal a full recomputation (ones'-complement ±0 aside). Returns problems.
 */
export function checksumProblems(f: Uint8Array): string[] {
  const b = Buffer.from(f);
  const out: string[] = [];
  const ip = 14;
  const ihl = (b[ip] & 15) * 4;
  const total = b.readUInt16BE(ip + 2);
  if (internetChecksum(b, ip, ihl) !== 0) out.push('ip header sum');
  const old = b.readUInt16BE(ip + 10);
  b.writeUInt16BE(0, ip + 10);
  if (internetChecksum(b, ip, ihl) !== old) out.push(`ip field ${old} vs ${internetChecksum(b, ip, ihl)}`);
  b.writeUInt16BE(old, ip + 10);
  const l4 = ip + ihl;
  const l4len = total - ihl;
  const proto = b[ip + 9];
  const at = proto === 6 ? l4 + 16 : proto === 17 ? l4 + 6 : l4 + 2;
  if (proto === 17 && b.readUInt16BE(at) === 0) return out;
  const pseudo = proto === 1 ? 0 : ipv4PseudoHeaderSum(b.readUInt32BE(ip + 12), b.readUInt32BE(ip + 16), proto, l4len);
  if (internetChecksum(b, l4, l4len, pseudo) !== 0) out.push(`l4 sum (proto ${proto})`);
  const field = b.readUInt16BE(at);
  b.writeUInt16BE(0, at);
  const full = internetChecksum(b, l4, l4len, pseudo);
  if (full !== field && !(full === 0 && field === 0xffff) && !(full === 0xffff && field === 0)) out.push(`l4 field ${field} vs full ${full}`);
  return out;
}

/** An IPv4 frame's IP payload cut into fragments of `size` bytes (a multiple of 8), each a whole frame with its own header checksum. */
export function fragmentIpv4(f: Uint8Array, size: number): Buffer[] {
  const b = Buffer.from(f);
  const ip = 14;
  const ihl = (b[ip] & 15) * 4;
  const payload = b.subarray(ip + ihl, ip + b.readUInt16BE(ip + 2));
  const out: Buffer[] = [];
  for (let at = 0; at < payload.length; at += size) {
    const part = payload.subarray(at, Math.min(payload.length, at + size));
    const g = Buffer.concat([b.subarray(0, ip + ihl), part]);
    g.writeUInt16BE(ihl + part.length, ip + 2);
    g.writeUInt16BE((at + size < payload.length ? 0x2000 : 0) | (at >> 3), ip + 6);
    g.writeUInt16BE(0, ip + 10);
    g.writeUInt16BE(internetChecksum(g, ip, ihl), ip + 10);
    out.push(g);
  }
  return out;
}

/** Fragments (any order) put back into one frame: the first's Ethernet and IP header, flags and offset cleared. */
export function reassembleIpv4(frags: readonly Uint8Array[]): Buffer {
  const ip = 14;
  const parts = frags.map((x) => Buffer.from(x)).sort((x, y) => (x.readUInt16BE(ip + 6) & 0x1fff) - (y.readUInt16BE(ip + 6) & 0x1fff));
  const ihl = (parts[0][ip] & 15) * 4;
  const body = Buffer.concat(parts.map((x) => x.subarray(ip + ihl, ip + x.readUInt16BE(ip + 2))));
  const g = Buffer.concat([parts[0].subarray(0, ip + ihl), body]);
  g.writeUInt16BE(ihl + body.length, ip + 2);
  g.writeUInt16BE(0, ip + 6);
  g.writeUInt16BE(0, ip + 10);
  g.writeUInt16BE(internetChecksum(g, ip, ihl), ip + 10);
  return g;
}

/** Options of an IPv6 test frame: next header 6/17/58 (`nextHeader` overrides the byte written). */
export interface F6 { dstMac: string; srcMac: string; src: string; dst: string; nh: 6 | 17 | 58; sport?: number; dport?: number; flags?: number; seq?: number; ack?: number; type?: number; id?: number; payload?: Uint8Array; nextHeader?: number }

/** An IPv6 frame with a valid L4 checksum (test setup, allocates). */
export function frame6(o: F6): Buffer {
  const payload = o.payload ?? new Uint8Array(0);
  const l4len = (o.nh === 6 ? 20 : 8) + payload.length;
  const f = Buffer.alloc(14 + 40 + l4len);
  writeMac(f, 0, parseMac(o.dstMac));
  writeMac(f, 6, parseMac(o.srcMac));
  f.writeUInt16BE(0x86dd, 12);
  const ip = 14;
  f[ip] = 0x60;
  f.writeUInt16BE(l4len, ip + 4);
  f[ip + 6] = o.nextHeader ?? o.nh;
  f[ip + 7] = 64;
  f.set(parseIpAddress(o.src).bytes, ip + 8);
  f.set(parseIpAddress(o.dst).bytes, ip + 24);
  const l4 = ip + 40;
  let at: number;
  if (o.nh === 58) {
    f[l4] = o.type ?? 128;
    f.writeUInt16BE(o.id ?? 1, l4 + 4);
    at = l4 + 2;
  } else {
    f.writeUInt16BE(o.sport ?? 40000, l4);
    f.writeUInt16BE(o.dport ?? 80, l4 + 2);
    if (o.nh === 6) {
      f.writeUInt32BE(o.seq ?? 1, l4 + 4);
      f.writeUInt32BE(o.ack ?? 0, l4 + 8);
      f[l4 + 12] = 0x50;
      f[l4 + 13] = o.flags ?? 0x02;
      f.writeUInt16BE(65535, l4 + 14);
      at = l4 + 16;
    } else {
      f.writeUInt16BE(l4len, l4 + 4);
      at = l4 + 6;
    }
  }
  f.set(payload, l4 + (o.nh === 6 ? 20 : 8));
  f.writeUInt16BE(internetChecksum(f, l4, l4len, ipv6PseudoHeaderSum(f, ip + 8, ip + 24, o.nh, l4len)), at);
  return f;
}

/** Fields of an IPv6 frame, and whether its L4 checksum equals a full recomputation. */
export function parse6(f: Uint8Array) {
  const b = Buffer.from(f);
  const mac = (at: number) => [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
  const nh = b[20];
  const l4 = 54;
  const l4len = b.readUInt16BE(18);
  const at = nh === 6 ? l4 + 16 : nh === 17 ? l4 + 6 : l4 + 2;
  const field = b.readUInt16BE(at);
  b.writeUInt16BE(0, at);
  const full = internetChecksum(b, l4, l4len, ipv6PseudoHeaderSum(b, 22, 38, nh, l4len));
  return {
    dstMac: mac(0), srcMac: mac(6), src: formatIpAddress(6, b, 22), dst: formatIpAddress(6, b, 38), nh,
    sport: nh === 58 ? -1 : b.readUInt16BE(l4), dport: nh === 58 ? -1 : b.readUInt16BE(l4 + 2), flags: nh === 6 ? b[l4 + 13] : -1, type: nh === 58 ? b[l4] : -1,
    /** The L4 checksum equals a full recomputation (±0 for UDP's 0xffff). */
    checksumOk: field === full || (nh === 17 && field === 0xffff && full === 0),
  };
}

/**
 * Two dataplanes on an in-memory underlay: a client host (198.18.0.1) whose network `vni` has a
 * VIP with one healthy backend, and the backend's host (198.18.0.2); FDB entries both ways.
 * The caller closes `dataplanes` (afterEach).
 */
export function clientBackendBed(o: { vni: number; vip: string; client: { mac: string }; backend: { ip: string; mac: string }; names: [string, string] }) {
  const net = createTestnet();
  const cdev = createMemoryDevice({ name: o.names[0] });
  const bdev = createMemoryDevice({ name: o.names[1] });
  const cdp = createDataplane({ transport: net.transport('198.18.0.1'), networks: [{ vni: o.vni, device: cdev, unknownUnicast: 'drop' }] });
  const bdp = createDataplane({ transport: net.transport('198.18.0.2'), networks: [{ vni: o.vni, device: bdev, unknownUnicast: 'drop' }] });
  for (const dp of [cdp, bdp]) dp.start();
  cdp.setFdb(o.vni, o.backend.mac, { address: '198.18.0.2' });
  bdp.setFdb(o.vni, o.client.mac, { address: '198.18.0.1' });
  const vips = new ServiceVips(cdp, { timers: false });
  vips.setVip(o.vni, { vip: o.vip, backends: [{ id: 'b', ip: o.backend.ip, mac: o.backend.mac, state: 'healthy' }] });
  return { net, cdev, bdev, dataplanes: [cdp, bdp] as Dataplane[], t: vips.translator(o.vni)! };
}
