/**
 * Which instances to answer with: the healthy ones, or all of them when fewer than half are healthy
 * (panic mode: an empty or tiny answer would send every client to the few survivors or nowhere;
 * better to let clients' own retries find the live ones). Every panic is counted.
 */
import type { CounterSet } from '@overlay/dataplane';
import type { HealthCounter } from './counters.js';

export interface Selection<T> {
  answer: T[];
  /** True when fewer than half were healthy and `answer` is all of them. */
  panic: boolean;
  healthy: number;
}

export function selectForAnswer<T>(instances: readonly T[], isHealthy: (instance: T) => boolean, counters?: CounterSet<HealthCounter>): Selection<T> {
  const healthy: T[] = [];
  for (const i of instances) if (isHealthy(i)) healthy.push(i);
  const panic = healthy.length * 2 < instances.length;
  if (counters !== undefined) {
    counters.add(counters.at.selections);
    if (panic) counters.add(counters.at.panic_answers);
  }
  return { answer: panic ? [...instances] : healthy, panic, healthy: healthy.length };
}
