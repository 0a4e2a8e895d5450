/**
 * Where the record table keeps the bytes of its records: a slab of 64 KiB chunks, each record's
 * body and signature packed next to each other in one chunk. One ArrayBuffer per record costs
 * ~500 bytes of RSS beyond its bytes (the backing store's bookkeeping, its JSArrayBuffer and the
 * allocator's slack); in a chunk a record costs its bytes only (bench/services-memory).
 *
 * Bytes in a chunk are written once and never overwritten: a record replaced or removed leaves a
 * hole, and a chunk whose live bytes fall under half its size is compacted (its live records are
 * copied to the current chunk, see RecordTable) and dropped. So the slab holds at most about
 * twice the live bytes, and a view handed out earlier (a record's `body`) stays valid: it keeps
 * its old chunk alive until it is garbage itself.
 *
 * Single-threaded; owned by one RecordTable.
 */

/** One chunk: its buffer, how much of it is written, how much of that is still live. */
export interface Chunk {
  readonly buf: ArrayBuffer;
  used: number;
  live: number;
}

export const CHUNK_BYTES = 64 * 1024;
/** A record larger than this gets a chunk of its own (never compacted). */
const OWN_CHUNK_ABOVE = CHUNK_BYTES / 8;

export class RecordSlab {
  private cur: Chunk = newChunk(CHUNK_BYTES);
  /** Chunks that fell under half live and wait for compaction (run by the table). */
  private readonly sparse = new Set<Chunk>();
  /** Chunks holding live bytes, the current one included (tests). */
  chunks = 1;

  /** Copy `body` and `sig` next to each other into the slab; returns the chunk and offset. */
  put(body: Uint8Array, sig: Uint8Array): { chunk: Chunk; off: number } {
    const size = body.length + sig.length;
    let c: Chunk;
    if (size > OWN_CHUNK_ABOVE) {
      c = newChunk(size);
      this.chunks++;
    } else {
      if (this.cur.used + size > CHUNK_BYTES) {
        const old = this.cur;
        this.cur = newChunk(CHUNK_BYTES);
        this.chunks++;
        this.check(old);
      }
      c = this.cur;
    }
    const off = c.used;
    const u = new Uint8Array(c.buf, off, size);
    u.set(body);
    u.set(sig, body.length);
    c.used += size;
    c.live += size;
    return { chunk: c, off };
  }

  /** `size` bytes of `c` are no longer live. */
  free(c: Chunk, size: number): void {
    c.live -= size;
    if (c.live === 0 && c !== this.cur) {
      this.sparse.delete(c);
      this.chunks--;
    } else this.check(c);
  }

  /** The chunks to compact now (emptied; the table moves their live records and frees them). */
  takeSparse(): Chunk[] {
    if (this.sparse.size === 0) return NONE;
    const out = [...this.sparse];
    this.sparse.clear();
    return out;
  }

  private check(c: Chunk): void {
    if (c !== this.cur && c.buf.byteLength === CHUNK_BYTES && c.live > 0 && c.live * 2 < c.used) this.sparse.add(c);
  }
}

const NONE: Chunk[] = [];

function newChunk(size: number): Chunk {
  return { buf: new ArrayBuffer(size), used: 0, live: 0 };
}
