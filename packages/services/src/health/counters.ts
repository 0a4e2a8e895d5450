import { CounterSet } from '@overlay/dataplane';

/**
 * Health-check counters (append-only, stable names): probes run and their outcomes, probes that had
 * to wait for a concurrency slot, probes that never returned (the checker's watchdog gave up on
 * them), published and damped state changes, ICMP probes answered by the TCP fallback, onChange
 * listeners that threw, and answers selected (with the panics among them).
 */
export const HEALTH_COUNTERS = [
  'probes_run',
  'probe_ok',
  'probe_timeout',
  'probe_refused',
  'probe_unreachable',
  'probe_status',
  'probe_exit',
  'probe_error',
  'probe_aborted',
  'probe_stuck',
  'probes_waited',
  'changes_published',
  'changes_damped',
  'icmp_fallbacks',
  'listener_errors',
  'selections',
  'panic_answers',
] as const;
export type HealthCounter = (typeof HEALTH_COUNTERS)[number];

export const HEALTH_CHANNEL = 'overlay.services.health';

export function createHealthCounters(): CounterSet<HealthCounter> {
  return new CounterSet(HEALTH_COUNTERS, HEALTH_CHANNEL);
}
