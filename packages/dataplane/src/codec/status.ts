import { DecodeError, MalformedHeaderError, TruncatedHeaderError, UnsupportedHeaderError } from '../errors.js';

/**
 * Result codes of the hot-path decoders.
 *
 * Design choice: a decoder never allocates. It returns a number — `OK` (0) or, for VXLAN, the
 * VNI (≥ 0) — or a negative status below, and writes the decoded fields into a result object
 * the caller created once and reuses (`new EthernetHeader()` etc.). A status is a small integer,
 * so the pipeline indexes its drop counters with it and never builds an Error per bad packet.
 * For slow paths and embedders, `parse*` wrappers return a fresh header object or a typed
 * `DecodeError` (via `decodeError`). No decoder throws, and none reads outside
 * `buf[off .. off+len)`: a range that does not fit in `buf` is reported as `bad_range`.
 */
export const Status = {
  OK: 0,
  bad_range: -1,
  vxlan_too_short: -2,
  vxlan_no_i_flag: -3,
  ethernet_too_short: -4,
  arp_too_short: -5,
  arp_unsupported: -6,
  ipv4_too_short: -7,
  ipv4_bad_version: -8,
  ipv4_bad_ihl: -9,
  ipv4_bad_total_length: -10,
  ipv4_bad_checksum: -11,
  ipv6_too_short: -12,
  ipv6_bad_version: -13,
  ipv4_truncated: -14,
  ipv6_truncated: -15,
} as const;

export type StatusName = keyof typeof Status;

const names: string[] = [];
for (const [name, code] of Object.entries(Status)) names[-code] = name;

/** Stable snake_case name of a status (e.g. 'vxlan_no_i_flag'); 'ok' for 0 and values ≥ 0. */
export function statusName(status: number): string {
  if (status >= 0) return 'ok';
  return names[-status] ?? 'unknown_status';
}

/** All error statuses (negative codes), for tests and counters. */
export const ERROR_STATUSES: readonly number[] = Object.values(Status).filter((s) => s < 0);

/** The typed error for a negative status. Allocates: call only off the hot path. */
export function decodeError(status: number): DecodeError {
  const reason = statusName(status);
  if (reason.endsWith('_too_short') || reason.endsWith('_truncated') || reason === 'bad_range') {
    return new TruncatedHeaderError(reason, status);
  }
  if (reason.endsWith('_unsupported')) return new UnsupportedHeaderError(reason, status);
  return new MalformedHeaderError(reason, status);
}

/** True when `buf[off .. off+len)` is a valid range of `buf`. */
export function rangeOk(buf: Uint8Array, off: number, len: number): boolean {
  return off >= 0 && len >= 0 && off + len <= buf.length && (off | 0) === off && (len | 0) === len;
}

/**
 * Counts decode failures by status, for embedders that run the decoders outside the pipeline
 * (which counts its own drops by reason). `record` passes the status through, so it wraps a
 * call: `if (counts.record(decodeIpv4(buf, off, len, h)) < 0) return;`. Never allocates.
 */
export class StatusCounts {
  private readonly counts = new Float64Array(names.length + 1);

  record(status: number): number {
    if (status < 0) this.counts[-status < this.counts.length ? -status : 0]++;
    return status;
  }

  /** Failures so far, by status name (only non-zero ones). Allocates. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    this.counts.forEach((n, i) => {
      if (n > 0) out[i === 0 ? 'unknown_status' : names[i]] = n;
    });
    return out;
  }
}
