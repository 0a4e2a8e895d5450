import { internetChecksum, onesComplementSum, PacketBatch, type BatchSink, type BufferPool } from '@overlay/dataplane';
import { ChecksumBatch, resolveChecksum, type ChecksumImpl, type NativeChecksum } from './checksum.js';
import { ETH, VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_HDR_LEN } from './headers.js';


/**
 * Send-side segmentation for a TAP opened with offloads (inside direction: frames the kernel
 * sends out of the TAP, on their way to encapsulation). With TSO the kernel hands over TCP
 * segments of up to 64 KiB in one read, and packets whose checksum it left to the device; this
 * turns each into ordinary MTU-sized frames with complete checksums, copied into slots of the
 * dataplane's pool, exactly as a NIC's TSO would put them on the wire. The kernel's TCP stack
 * then runs once per 64 KiB instead of once per segment.
 *
 * Reads land in a private pool of large slots (`jumbo`); each is released once segmented.
 * Allocates nothing per packet. Single-threaded, owned by one TapDevice.
 */
export class TcpSegmenter {
  /** Large frames cut into segments, segments made, frames completed from a partial checksum. */
  superFrames = 0;
  segments = 0;
  checksummed = 0;
  /** Frames dropped: no free slot in the dataplane pool, or a shape this does not handle. */
  poolDrops = 0;
  malformed = 0;
  /** Which code cuts and checksums: 'native' (csrc/csum.c, one call per batch of segments) or 'js'. */
  readonly impl: ChecksumImpl;
  private readonly out: PacketBatch;
  private readonly addon: NativeChecksum | undefined;
  /** Native path: the slots for one tsoSegment call (at most one output batch), -1 for a pool miss. */
  private readonly slots: Int32Array;
  /** Native path: the partial checksums of ordinary frames in the current jumbo batch. */
  private readonly partial: ChecksumBatch;
  private readonly partialAt: Int32Array;
  private readonly csumField: Int32Array;

  /** `impl`: default native where the addon loads, else js; 'native' throws if it does not load. */
  constructor(
    private readonly pool: BufferPool,
    private readonly sink: BatchSink,
    batchSize: number,
    impl?: ChecksumImpl,
  ) {
    this.out = new PacketBatch(batchSize);
    this.addon = resolveChecksum(impl);
    this.impl = this.addon ? 'native' : 'js';
    this.slots = new Int32Array(batchSize);
    this.partial = new ChecksumBatch(this.addon, batchSize);
    this.partialAt = new Int32Array(batchSize);
    this.csumField = new Int32Array(batchSize);
  }

  /** Sink for the jumbo pool's batches: segment, hand on in batches, release the jumbo slots. */
  consume(jumbo: BufferPool, batch: PacketBatch): void {
    for (let i = 0; i < batch.count; i++) {
      const j = batch.slots[i];
      this.frame(jumbo, j);
      jumbo.release(j);
    }
    this.flushPartial();
    this.flush();
  }

  /** Native path: finish the queued partial checksums in one call and pass those frames on. */
  private flushPartial(): void {
    const p = this.partial;
    if (p.count === 0) return;
    p.run(this.pool.data);
    const d = this.pool.data;
    for (let i = 0; i < p.count; i++) {
      const s = this.partialAt[i];
      const so = this.pool.off[s];
      const v = this.csumField[i];
      const c = ~p.sum(i) & 0xffff;
      d[so + v] = c >>> 8;
      d[so + v + 1] = c & 0xff;
      this.checksummed++;
      this.push(s);
    }
    p.clear();
  }

  private flush(): void {
    if (this.out.count > 0) {
      this.sink(this.out);
      this.out.clear();
    }
  }

  private push(slot: number): void {
    this.out.push(slot);
    if (this.out.count === this.out.capacity) this.flush();
  }

  private frame(jumbo: BufferPool, j: number): void {
    const jd = jumbo.data;
    const o = jumbo.off[j];
    const len = jumbo.len[j];
    const v = o - VNET_HDR_LEN;
    const flags = jd[v];
    const gso = jd[v + 1] & ~VNET_GSO_ECN;
    const csumStart = jd.readUInt16LE(v + 6);
    const csumOffset = jd.readUInt16LE(v + 8);
    if (gso === VNET_GSO_NONE) {
      const s = this.copy(jd, o, len);
      if (s < 0) return;
      if (flags & VNET_F_NEEDS_CSUM) {
        const d = this.pool.data;
        const so = this.pool.off[s];
        if (csumStart + csumOffset + 2 > len) {
          this.pool.release(s);
          this.malformed++;
          return;
        }
        // The field holds the pseudo-header sum: summing from csum_start over it finishes it.
        if (this.addon) {
          // Queued: summed with the rest of the batch's in one native call, then pushed (flushPartial).
          const i = this.partial.add(so + csumStart, len - csumStart, 0);
          this.partialAt[i] = s;
          this.csumField[i] = csumStart + csumOffset;
          if (this.partial.count === this.partialAt.length) this.flushPartial();
          return;
        }
        const c = internetChecksum(d, so + csumStart, len - csumStart, 0);
        d[so + csumStart + csumOffset] = c >>> 8;
        d[so + csumStart + csumOffset + 1] = c & 0xff;
        this.checksummed++;
      }
      this.flushPartial(); // frames leave in the order they came
      this.push(s);
      return;
    }
    if (gso !== VNET_GSO_TCPV4) {
      this.malformed++;
      return;
    }
    this.flushPartial();
    this.segment(jd, o, len, jd.readUInt16LE(v + 4));
  }

  /** Copy a whole frame into a fresh dataplane slot; -1 (counted) when none is free or it does not fit. */
  private copy(src: Buffer, o: number, len: number): number {
    const pool = this.pool;
    if (len > pool.frameCapacity) {
      this.malformed++;
      return -1;
    }
    const s = pool.acquire();
    if (s < 0) {
      this.poolDrops++;
      return -1;
    }
    src.copy(pool.data, pool.off[s], o, o + len);
    pool.len[s] = len;
    return s;
  }

  /** Cut one IPv4 TCP super-segment at `mss`, fixing lengths, IDs, sequence numbers, flags, checksums. */
  private segment(jd: Buffer, o: number, len: number, mss: number): void {
    const ip = o + ETH;
    if (len < ETH + 40 || jd[o + 12] !== 0x08 || jd[o + 13] !== 0x00 || jd[ip] >> 4 !== 4 || jd[ip + 9] !== 6 || mss < 1) {
      this.malformed++;
      return;
    }
    const ihl = (jd[ip] & 0x0f) * 4;
    const tcp = ip + ihl;
    const thl = (jd[tcp + 12] >>> 4) * 4;
    const hdr = ETH + ihl + thl;
    const total = len - hdr;
    // Every segment but the last is hdr + mss long: it must fit a dataplane slot as copy() requires.
    if (ihl < 20 || thl < 20 || total <= 0 || hdr + Math.min(mss, total) > this.pool.frameCapacity) {
      this.malformed++;
      return;
    }
    this.superFrames++;
    if (this.addon) return this.segmentNative(this.addon, jd, o, len, mss, Math.ceil(total / mss));
    const seq0 = jd.readUInt32BE(tcp + 4);
    const id0 = (jd[ip + 4] << 8) | jd[ip + 5];
    const flags0 = jd[tcp + 13];
    const pool = this.pool;
    const d = pool.data;
    for (let at = 0, k = 0; at < total; at += mss, k++) {
      const plen = Math.min(mss, total - at);
      const s = pool.acquire();
      if (s < 0) {
        this.poolDrops++;
        continue;
      }
      const so = pool.off[s];
      jd.copy(d, so, o, o + hdr);
      jd.copy(d, so + hdr, o + hdr + at, o + hdr + at + plen);
      pool.len[s] = hdr + plen;
      const sip = so + ETH;
      const stcp = sip + ihl;
      const l4 = thl + plen;
      d[sip + 2] = (ihl + l4) >>> 8;
      d[sip + 3] = (ihl + l4) & 0xff;
      const id = (id0 + k) & 0xffff;
      d[sip + 4] = id >>> 8;
      d[sip + 5] = id & 0xff;
      d[sip + 10] = 0;
      d[sip + 11] = 0;
      const ipsum = internetChecksum(d, sip, ihl, 0);
      d[sip + 10] = ipsum >>> 8;
      d[sip + 11] = ipsum & 0xff;
      const seq = (seq0 + at) >>> 0;
      d.writeUInt32BE(seq, stcp + 4);
      let f = flags0;
      if (at + plen < total) f &= ~0x09; // FIN and PSH only on the last segment
      if (k > 0) f &= ~0x80; // CWR only on the first
      d[stcp + 13] = f;
      d[stcp + 16] = 0;
      d[stcp + 17] = 0;
      const c = internetChecksum(d, stcp, l4, onesComplementSum(d, sip + 12, 8, 6 + l4));
      d[stcp + 16] = c >>> 8;
      d[stcp + 17] = c & 0xff;
      this.segments++;
      this.push(s);
    }
  }

  /**
   * The same cut in C: per output batch, acquire the slots (a miss is a counted pool drop, as in
   * the JS loop), then one tsoSegment call writes every segment's header, payload and checksums.
   */
  private segmentNative(addon: NativeChecksum, jd: Buffer, o: number, len: number, mss: number, nseg: number): void {
    const pool = this.pool;
    const slots = this.slots;
    for (let first = 0; first < nseg; ) {
      const n = Math.min(nseg - first, this.out.capacity - this.out.count);
      for (let i = 0; i < n; i++) {
        const s = pool.acquire();
        if (s < 0) this.poolDrops++;
        slots[i] = s;
      }
      const w = addon.tsoSegment(jd, o, len, mss, pool.data, pool.off, pool.len, pool.frameCapacity, slots, first, n);
      if (w < 0) {
        // segment() checked the shape already; the C side checks it again and refused it.
        for (let i = 0; i < n; i++) if (slots[i] >= 0) pool.release(slots[i]);
        this.malformed++;
        return;
      }
      this.segments += w;
      for (let i = 0; i < n; i++) if (slots[i] >= 0) this.push(slots[i]);
      first += n;
    }
  }
}
