import { channel, type Channel } from 'node:diagnostics_channel';

/**
 * The one counter discipline of every package (dataplane, crypto, agent, services):
 *
 * - a counter set is declared once from an **append-only list of stable snake_case names**
 *   (`as const`), never renumbered: the list is the public contract (status output, metrics);
 * - values live in one `Float64Array` indexed by the name's position, so the hot path increments
 *   without allocating (`set.add(set.at.name)`), exact to 2^53;
 * - a set may publish every increment on a `node:diagnostics_channel` channel named
 *   `overlay.<package>.<what>` (`{ reason, scope, count }`, scope = VNI, peer index or -1) — one
 *   property read while nobody subscribes, so it stays on in production;
 * - `snapshot()` copies the values into a plain object keyed by name, for status and tests.
 *
 * Drops use a set with a channel (every drop has a reason); plain event counters use one without.
 */
export class CounterSet<N extends string> {
  readonly values: Float64Array;
  /** Index of each name in `values`. */
  readonly at: { readonly [K in N]: number };
  readonly channel: Channel | undefined;

  constructor(
    readonly names: readonly N[],
    channelName?: string,
  ) {
    if (new Set(names).size !== names.length) throw new TypeError('CounterSet: names must be unique');
    this.values = new Float64Array(names.length);
    this.at = Object.freeze(Object.fromEntries(names.map((n, i) => [n, i]))) as { readonly [K in N]: number };
    this.channel = channelName === undefined ? undefined : channel(channelName);
  }

  /** Add `count` to the counter at index `i` (from `at`); publish if someone listens. Never allocates unless subscribed. */
  add(i: number, count = 1, scope = -1): void {
    this.values[i] += count;
    const ch = this.channel;
    if (ch !== undefined && ch.hasSubscribers) ch.publish({ reason: this.names[i], scope, count } satisfies CountEvent);
  }

  /** Add by name (control paths; the hot path uses `add(at.x)`). */
  count(name: N, count = 1, scope = -1): void {
    this.add(this.at[name], count, scope);
  }

  get(name: N): number {
    return this.values[this.at[name]];
  }

  /** Sum of every counter. */
  total(): number {
    let s = 0;
    for (let i = 0; i < this.values.length; i++) s += this.values[i];
    return s;
  }

  /** A copy keyed by name. Allocates. */
  snapshot(): Record<N, number> {
    const out = {} as Record<N, number>;
    for (let i = 0; i < this.names.length; i++) out[this.names[i]] = this.values[i];
    return out;
  }
}

/** What a counter set's channel publishes: one event per increment site hit. */
export interface CountEvent {
  reason: string;
  /** What the count concerns: the VNI in the dataplane, else a package-defined index, or -1. */
  scope: number;
  count: number;
}
