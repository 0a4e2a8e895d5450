import { CounterSet } from '@overlay/dataplane';

/**
 * Names of the native counters, in the order of csrc/io.h's enum (the native side writes them by
 * index). Append-only: a new counter goes at the end here and there, never renumbered.
 */
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
  'txErrorsNoRoute',
  'txErrorsFiltered',
  'txErrorsTooBig',
  'txErrorsOther',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];
export type IoCounterSnapshot = Record<CounterName, number>;

/** The counters that lose packets, published on 'overlay.native.drop' by flush(). txUnsent covers every tx error. */
const DROP_COUNTERS = ['rxNoBufferDrops', 'rxTooBigDrops', 'rxErrors', 'txUnsent'] as const satisfies readonly CounterName[];

/**
 * Counters of one device or socket (a CounterSet, see @overlay/dataplane reasons.ts), written by
 * the native side into `values`, memory JS owns, so reading them costs no native call.
 * rxNoBufferDrops: packets read and dropped because the pool had no free slot; rxTooBigDrops:
 * larger than a slot; txEagain: times the kernel queue was full on send; txUnsent: packets handed
 * to write/send that did not go out; txErrors: sends or writes the kernel refused (or slots
 * described wrongly), also counted by class: txErrorsNoRoute (unreachable, blackhole route),
 * txErrorsFiltered (EPERM/EACCES: a firewall drop), txErrorsTooBig (EMSGSIZE), txErrorsOther;
 * txGsoFallbacks: UDP GSO refused by the route (then turned off for the socket);
 * rxGroMessages/rxGroDatagrams: UDP GRO messages that carried more than one datagram, and how
 * many they carried (rxPackets counts every datagram).
 *
 * The native side cannot publish, so NativeIo calls flush() after each native call: while someone
 * subscribes to 'overlay.native.drop', the drops counted since the last flush are published
 * ({ reason, scope: -1, count }); otherwise it is one property read. The first flush after a
 * subscriber arrives also reports what was dropped before it.
 */
export class IoCounters extends CounterSet<CounterName> {
  /** Drop counters as last published. */
  private readonly published = new Float64Array(DROP_COUNTERS.length);
  private readonly dropIndex = DROP_COUNTERS.map((n) => COUNTER_NAMES.indexOf(n));

  /** `count`: the addon's counter count; it must not exceed the names known here. */
  constructor(count: number = COUNTER_NAMES.length) {
    super(COUNTER_NAMES, 'overlay.native.drop');
    if (count > COUNTER_NAMES.length) throw new RangeError(`the native addon counts ${count} counters, this module names ${COUNTER_NAMES.length}: rebuild`);
  }

  /** Publish what the native side dropped since the last flush, if anyone listens. */
  flush(): void {
    const ch = this.channel!;
    if (!ch.hasSubscribers) return;
    const v = this.values;
    for (let k = 0; k < this.dropIndex.length; k++) {
      const now = v[this.dropIndex[k]];
      const d = now - this.published[k];
      if (d > 0) {
        this.published[k] = now;
        ch.publish({ reason: DROP_COUNTERS[k], scope: -1, count: d });
      }
    }
  }
}
