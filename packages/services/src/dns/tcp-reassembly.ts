/**
 * The responder stage's only TCP state: a small, bounded table of DNS-over-TCP queries that came
 * split over several segments (a length prefix sent apart from its message, or a message cut
 * in two). Fixed arrays allocated once: `maxFlows` flows of at most `maxBytes` bytes each
 * (length prefix included); a flow lives `timeoutMs` from its first segment, then its slot may
 * be reused. A flow is keyed by the client's address and port and checked against our ISN for
 * the connection (a flow left by an earlier connection on the same port is replaced).
 *
 * After the answer the flow keeps the whole query until the client's FIN, an RST or its
 * timeout, so a retransmitted last segment (our answer was lost) is answered again.
 */

export interface TcpReassemblyOptions {
  /** Flows held at once. Default 32. */
  maxFlows?: number;
  /** Bytes per flow: the 2-byte length and the query. Default 1024. */
  maxBytes?: number;
  /** A flow's life from its first segment. Default 3000 ms. */
  timeoutMs?: number;
  /** Clock in ms (tests pass a fake one). Default performance.now. */
  now?: () => number;
}

export class TcpReassembly {
  readonly maxFlows: number;
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly now: () => number;
  /** The flows' bytes: flow f at [f * maxBytes, (f + 1) * maxBytes). */
  readonly bytes: Uint8Array;
  /** Bytes held per flow; -1: the slot is free. */
  readonly have: Int32Array;
  /** The client sequence number of the next byte expected. */
  readonly next: Uint32Array;
  /** Our ISN + 1 for the connection (what the client ACKs before our answer). */
  readonly key: Uint32Array;
  /** The flow's query was answered (it stays for a retransmitted last segment). */
  readonly done: Uint8Array;
  private readonly port: Uint16Array;
  private readonly addr: Uint8Array;
  private readonly family: Uint8Array;
  private readonly deadline: Float64Array;
  private used = 0;

  constructor(o: TcpReassemblyOptions = {}) {
    this.maxFlows = o.maxFlows ?? 32;
    this.maxBytes = o.maxBytes ?? 1024;
    this.timeoutMs = o.timeoutMs ?? 3000;
    if (!Number.isInteger(this.maxFlows) || this.maxFlows < 0 || this.maxFlows > 4096) throw new RangeError(`maxFlows must be 0..4096, got ${this.maxFlows}`);
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 14 || this.maxBytes > 65537) throw new RangeError(`maxBytes must be 14..65537, got ${this.maxBytes}`);
    this.now = o.now ?? (() => performance.now());
    this.bytes = new Uint8Array(this.maxFlows * this.maxBytes);
    this.have = new Int32Array(this.maxFlows).fill(-1);
    this.next = new Uint32Array(this.maxFlows);
    this.key = new Uint32Array(this.maxFlows);
    this.done = new Uint8Array(this.maxFlows);
    this.port = new Uint16Array(this.maxFlows);
    this.addr = new Uint8Array(this.maxFlows * 16);
    this.family = new Uint8Array(this.maxFlows);
    this.deadline = new Float64Array(this.maxFlows);
  }

  /** Flows held now. */
  get size(): number {
    return this.used;
  }

  /**
   * The flow of the client at d[a .. a + (v4 ? 4 : 16)) and `port`, or -1. A flow past its
   * deadline is freed here and reported as -2 (the caller counts it).
   */
  find(d: Uint8Array, a: number, v4: boolean, port: number): number {
    if (this.used === 0) return -1;
    const n = v4 ? 4 : 16;
    const fam = v4 ? 4 : 6;
    for (let f = 0; f < this.maxFlows; f++) {
      if (this.have[f] < 0 || this.port[f] !== port || this.family[f] !== fam) continue;
      let same = true;
      for (let i = 0; i < n && same; i++) same = this.addr[f * 16 + i] === d[a + i];
      if (!same) continue;
      if (this.deadline[f] <= this.now()) {
        this.free(f);
        return -2;
      }
      return f;
    }
    return -1;
  }

  /**
   * A new flow for the client, its bytes empty. Returns the flow, or -1 when every flow is busy;
   * `expired` (out) counts flows past their deadline that were freed to make room.
   */
  open(d: Uint8Array, a: number, v4: boolean, port: number, key: number, next: number): number {
    let f = -1;
    if (this.used >= this.maxFlows) {
      const now = this.now();
      for (let i = 0; i < this.maxFlows; i++) {
        if (this.deadline[i] <= now) {
          this.free(i);
          this.expired++;
          if (f < 0) f = i;
        }
      }
      if (f < 0) return -1;
    } else {
      for (let i = 0; i < this.maxFlows; i++) {
        if (this.have[i] < 0) {
          f = i;
          break;
        }
      }
    }
    const n = v4 ? 4 : 16;
    for (let i = 0; i < n; i++) this.addr[f * 16 + i] = d[a + i];
    this.family[f] = v4 ? 4 : 6;
    this.port[f] = port;
    this.key[f] = key;
    this.next[f] = next;
    this.have[f] = 0;
    this.done[f] = 0;
    this.deadline[f] = this.now() + this.timeoutMs;
    this.used++;
    return f;
  }

  /** Flows freed by open() because their time was up, since the caller last reset it. */
  expired = 0;

  free(f: number): void {
    if (this.have[f] < 0) return;
    this.have[f] = -1;
    this.used--;
  }
}
