import { CounterSet } from '@overlay/dataplane';

/**
 * DNS counters (append-only, stable names), one set on `overlay.services.dns`: queries seen,
 * answers by rcode, UDP answers truncated (TC), queries forwarded upstream and their outcomes,
 * negative-cache hits, and drops by reason (a drop sends nothing back). `tcp_reassembl*`: the
 * responder stage's TCP queries split over segments (responder-tcp.ts): completed, and those
 * dropped because every flow was busy, over the byte bound, timed out, or out of order.
 * `forward_client_retries`: a client's retry joined its pending forwarded query (forward.ts).
 */
export const DNS_COUNTERS = [
  'queries',
  'answered_noerror',
  'answered_nodata',
  'answered_nxdomain',
  'answered_formerr',
  'answered_servfail',
  'answered_notimp',
  'answered_refused',
  'answered_badvers',
  'truncated',
  'forwarded',
  'forward_answered',
  'forward_timeouts',
  'forward_over_share',
  'forward_over_capacity',
  'negative_cache_hits',
  'drop_short',
  'drop_not_query',
  'drop_no_room',
  'drop_bad_upstream_reply',
  'tcp_connections',
  'tcp_refused',
  'tcp_idle_closed',
  'tcp_bad_length',
  'responder_held',
  'tcp_reassembled',
  'tcp_reassembly_full',
  'tcp_reassembly_oversize',
  'tcp_reassembly_expired',
  'tcp_reassembly_out_of_order',
  'forward_client_retries',
] as const;
export type DnsCounter = (typeof DNS_COUNTERS)[number];

export const DNS_CHANNEL = 'overlay.services.dns';

export function createDnsCounters(): CounterSet<DnsCounter> {
  return new CounterSet(DNS_COUNTERS, DNS_CHANNEL);
}
