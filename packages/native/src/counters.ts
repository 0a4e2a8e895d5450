/** Index of each counter in the shared Float64Array (order fixed by csrc/io.h). */
export const COUNTER_NAMES = [
  'rxPackets',
  'rxBytes',
  'rxBatches',
  'rxSyscalls',
  'rxNoBufferDrops',
  'rxTooBigDrops',
  'rxErrors',
  'txPackets',
  'txBytes',
  'txSyscalls',
  'txEagain',
  'txErrors',
  'txUnsent',
  'txGsoFallbacks',
  'rxGroMessages',
  'rxGroDatagrams',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];
export type IoCounterSnapshot = Record<CounterName, number>;

/**
 * Counters of one device or socket, written by the native side into memory JS owns, so reading
 * them costs no native call. rxNoBufferDrops: packets read and dropped because the pool had no
 * free slot; rxTooBigDrops: larger than a slot; txEagain: times the kernel queue was full on send;
 * txUnsent: packets handed to write/send that did not go out; txGsoFallbacks: UDP GSO refused by
 * the route (then turned off for the socket); rxGroMessages/rxGroDatagrams: UDP GRO messages that
 * carried more than one datagram, and how many they carried (rxPackets counts every datagram).
 */
export class IoCounters {
  /** The raw array; index with COUNTER_NAMES.indexOf(name). */
  readonly values: Float64Array;
  constructor(count: number) {
    this.values = new Float64Array(Math.max(count, COUNTER_NAMES.length));
  }
  get(name: CounterName): number {
    return this.values[COUNTER_NAMES.indexOf(name)];
  }
  /** Plain object copy. */
  snapshot(): IoCounterSnapshot {
    const out = {} as IoCounterSnapshot;
    COUNTER_NAMES.forEach((n, i) => (out[n] = this.values[i]));
    return out;
  }
}
