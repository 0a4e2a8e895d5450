import { internetChecksum, onesComplementSum, type BufferPool, type PacketBatch } from '@overlay/dataplane';
import { ChecksumBatch, resolveChecksum, type ChecksumImpl } from './checksum.js';
import { ETH, IPV4, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_HDR_LEN } from './headers.js';

/** Most segments merged into one write: 64 × 1400 bytes stays under the 64 KiB IP limit. */
const MAX_SEGMENTS = 64;
const IP = IPV4;

/**
 * Receive-side coalescing for a TAP opened with a virtio-net header (outside direction: frames
 * decapsulated from the underlay, on their way into the kernel). Consecutive IPv4 TCP segments
 * of one flow in a batch — contiguous sequence numbers, equal headers and options, full-sized
 * except the last, only ACK (and PSH on the last) — are written as one GSO segment: the kernel's
 * TCP then takes one packet instead of up to 64. Each merged segment's TCP checksum is verified
 * here first (the kernel trusts a segment marked for checksum offload), and anything else passes
 * through unchanged. The same rules as the kernel's own GRO, so what a NIC with GRO would merge.
 *
 * plan() rewrites the first frame of each group in place (IP length and checksum, TCP pseudo
 * checksum, the virtio-net header in its headroom) and fills `groups` for the native writev.
 * Allocates nothing per packet. Single-threaded, owned by one TapDevice.
 */
export class TcpCoalescer {
  /** Pairs [slots in group, header bytes] for the native side. */
  groups = new Int32Array(128);
  /** Frames that went out as part of a merged segment, and merged segments written. */
  merged = 0;
  segments = 0;
  /** TCP segments not merged because their checksum was wrong (the kernel then drops them). */
  badChecksum = 0;
  /**
   * Frames without VNET_HDR_LEN bytes of free headroom in front (a pool made with less, or a
   * frame moved to the slot's start): nothing may be written before them, so they lead no
   * merged segment, and the native write counts them as tx errors (txErrorsOther) and skips them.
   */
  noHeadroom = 0;
  /** Which code verifies the TCP checksums: 'native' (one call per batch) or 'js'. */
  readonly impl: ChecksumImpl;
  /** Per frame of the batch: its mergeable header length (checksum verified), or 0. */
  private hdrs = new Int32Array(128);
  private readonly sums: ChecksumBatch;

  /** `impl`: default native where the addon loads, else js; 'native' throws if it does not load. */
  constructor(impl?: ChecksumImpl) {
    const addon = resolveChecksum(impl);
    this.impl = addon ? 'native' : 'js';
    this.sums = new ChecksumBatch(addon, 128);
  }

  /** Returns the number of groups; `groups[0 .. 2*n)` describe batch.slots[0 .. batch.count). */
  plan(pool: BufferPool, batch: PacketBatch): number {
    if (this.groups.length < batch.count * 2) this.groups = new Int32Array(batch.count * 2);
    if (this.hdrs.length < batch.count) this.hdrs = new Int32Array(batch.count);
    const d = pool.data;
    const g = this.groups;
    const hdrs = this.verify(pool, batch);
    let ng = 0;
    let lead = -1; // slot of the current group's first frame, or -1
    let count = 0; // frames in the current group
    let hdr = 0;
    let gso = 0; // payload size of the first segment: every merged one but the last has it
    let nextSeq = 0;
    let payload = 0; // payload bytes in the group
    let lastPsh = false; // the group's last segment had PSH (it goes on the merged one)
    let ended = false; // the group cannot take more (PSH or a short segment)
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      const o = pool.off[s];
      const h = hdrs[i];
      if (h > 0 && lead >= 0 && count < MAX_SEGMENTS && !ended) {
        const lo = pool.off[lead];
        const plen = pool.len[s] - h;
        if (
          h === hdr &&
          plen <= gso &&
          payload + plen + h - ETH <= 65535 &&
          d.readUInt32BE(o + ETH + IP + 4) === nextSeq &&
          sameFlow(d, lo, o, h)
        ) {
          count++;
          payload += plen;
          nextSeq = (nextSeq + plen) >>> 0;
          lastPsh = (d[o + ETH + IP + 13] & 0x08) !== 0;
          // PSH or a short segment ends the group: nothing may follow it.
          ended = lastPsh || plen < gso;
          continue;
        }
      }
      if (lead >= 0) ng = this.close(pool, g, ng, lead, count, hdr, gso, payload, lastPsh);
      // The virtio-net header goes in front of the frame: without room it would overwrite the
      // previous slot's bytes.
      const room = o - pool.base(s) >= VNET_HDR_LEN;
      if (!room) this.noHeadroom++;
      if (h > 0 && room) {
        lead = s;
        count = 1;
        hdr = h;
        gso = pool.len[s] - h;
        payload = gso;
        nextSeq = (d.readUInt32BE(o + ETH + IP + 4) + gso) >>> 0;
        lastPsh = (d[o + ETH + IP + 13] & 0x08) !== 0;
        ended = lastPsh;
      } else {
        lead = -1;
        g[ng * 2] = 1;
        g[ng * 2 + 1] = 0;
        ng++;
      }
    }
    if (lead >= 0) ng = this.close(pool, g, ng, lead, count, hdr, gso, payload, lastPsh);
    return ng;
  }

  /** Emit the current group; rewrite its first frame when it merges more than one segment. */
  private close(pool: BufferPool, g: Int32Array, ng: number, lead: number, count: number, hdr: number, gso: number, payload: number, psh: boolean): number {
    g[ng * 2] = count;
    g[ng * 2 + 1] = hdr;
    if (count > 1) {
      const d = pool.data;
      const o = pool.off[lead];
      const ip = o + ETH;
      const tcp = ip + IP;
      const l4 = hdr - ETH - IP + payload;
      d[ip + 2] = (IP + l4) >>> 8;
      d[ip + 3] = (IP + l4) & 0xff;
      d[ip + 10] = 0;
      d[ip + 11] = 0;
      const ipsum = internetChecksum(d, ip, IP, 0);
      d[ip + 10] = ipsum >>> 8;
      d[ip + 11] = ipsum & 0xff;
      if (psh) d[tcp + 13] |= 0x08;
      // Checksum offload: the field holds the pseudo-header sum; the kernel adds the rest.
      const pseudo = onesComplementSum(d, ip + 12, 8, 6 + l4);
      d[tcp + 16] = pseudo >>> 8;
      d[tcp + 17] = pseudo & 0xff;
      const v = o - VNET_HDR_LEN;
      d.fill(0, v, o);
      d[v] = VNET_F_NEEDS_CSUM;
      d[v + 1] = VNET_GSO_TCPV4;
      d.writeUInt16LE(hdr, v + 2);
      d.writeUInt16LE(gso, v + 4);
      d.writeUInt16LE(ETH + IP, v + 6);
      d.writeUInt16LE(16, v + 8);
      this.merged += count;
      this.segments++;
    }
    return ng + 1;
  }

  /**
   * hdrs[i] for each frame of the batch: segmentHeader's length when the TCP checksum is also
   * right, else 0. The checksums of all candidates are summed in one batch (one native call).
   */
  private verify(pool: BufferPool, batch: PacketBatch): Int32Array {
    const d = pool.data;
    const hdrs = this.hdrs;
    const sums = this.sums;
    sums.clear();
    for (let i = 0; i < batch.count; i++) {
      const s = batch.slots[i];
      const h = this.segmentHeader(pool, s);
      hdrs[i] = h;
      if (h > 0) {
        const ip = pool.off[s] + ETH;
        const l4 = pool.len[s] - ETH - IP;
        sums.add(ip + IP, l4, onesComplementSum(d, ip + 12, 8, 6 + l4));
      }
    }
    sums.run(d);
    for (let i = 0, k = 0; i < batch.count; i++) {
      if (hdrs[i] === 0) continue;
      if (sums.sum(k++) !== 0xffff) {
        hdrs[i] = 0;
        this.badChecksum++;
      }
    }
    return hdrs;
  }

  /**
   * Header length (Ethernet + IPv4 + TCP) of a frame that may be merged, else 0: IPv4 without
   * options or fragmentation, TCP with payload, only ACK/PSH set, length consistent. The TCP
   * checksum is verify()'s.
   */
  private segmentHeader(pool: BufferPool, s: number): number {
    const d = pool.data;
    const o = pool.off[s];
    const len = pool.len[s];
    if (len < ETH + IP + 20 || d[o + 12] !== 0x08 || d[o + 13] !== 0x00) return 0;
    const ip = o + ETH;
    if (d[ip] !== 0x45 || d[ip + 9] !== 6 || (d[ip + 6] & 0x3f) !== 0 || d[ip + 7] !== 0) return 0;
    if (((d[ip + 2] << 8) | d[ip + 3]) !== len - ETH) return 0;
    const tcp = ip + IP;
    const thl = (d[tcp + 12] >>> 4) * 4;
    const flags = d[tcp + 13];
    if (thl < 20 || len - ETH - IP - thl <= 0 || (flags !== 0x10 && flags !== 0x18)) return 0;
    return ETH + IP + thl;
  }
}

/** Same addresses, ports, ack, window, TOS, TTL, DF and TCP options as the group's first frame. */
function sameFlow(d: Buffer, a: number, b: number, hdr: number): boolean {
  const ipA = a + ETH;
  const ipB = b + ETH;
  if (d[ipA + 1] !== d[ipB + 1] || d[ipA + 8] !== d[ipB + 8] || (d[ipA + 6] & 0x40) !== (d[ipB + 6] & 0x40)) return false;
  for (let k = 12; k < 20; k++) if (d[ipA + k] !== d[ipB + k]) return false; // addresses
  const ta = ipA + IP;
  const tb = ipB + IP;
  for (let k = 0; k < 4; k++) if (d[ta + k] !== d[tb + k]) return false; // ports
  for (let k = 8; k < 12; k++) if (d[ta + k] !== d[tb + k]) return false; // ack
  for (let k = 14; k < 16; k++) if (d[ta + k] !== d[tb + k]) return false; // window
  for (let k = 20; k < hdr - ETH - IP; k++) if (d[ta + k] !== d[tb + k]) return false; // options
  return true;
}
