/**
 * The service table's public shapes (services, instances, ports, options), its two errors and the
 * checks that turn caller input into them. ServiceDirectory (directory.ts) re-exports all of it.
 */
import { OverlayError, parseIpAddress, type CounterSet } from '@overlay/dataplane';
import type { HealthCounter } from './health/counters.js';

export type EndpointMode = 'vip' | 'dnsrr';
export type PortProto = 'tcp' | 'udp';

export interface ServicePort {
  /** Port name for SRV (`_<name>._<proto>.<svc>`); a DNS label. */
  name?: string;
  port: number;
  proto: PortProto;
}

export interface ServiceInstance {
  /** Unique within the service; a DNS label (names `<id>.tasks.<svc>`). */
  id: string;
  /** IPv4 and/or IPv6 addresses on the service's network. */
  addresses: string[];
  ports?: ServicePort[];
  healthy: boolean;
}

export interface ServiceSpec {
  /** A DNS label: letters, digits, '-', '_' (1..63). */
  name: string;
  network: string;
  /** Virtual addresses (at most one per family); with endpointMode 'vip' the service name answers them. */
  vip?: string[];
  /** 'vip' (default when a VIP is given) or 'dnsrr' (the name answers the instances). */
  endpointMode?: EndpointMode;
  /** Seconds, 0..600; default the directory's (5). */
  ttl?: number;
}

export interface ServiceDirectoryOptions {
  /** Default TTL in seconds (0..600), default 5. */
  ttl?: number;
  /** Health counters for panic-mode selections (`selections`, `panic_answers`). */
  healthCounters?: CounterSet<HealthCounter>;
}

export const DEFAULT_TTL = 5;
export const MAX_TTL = 600;

/** A service, instance or option is malformed; `field` names it. */
export class InvalidServiceError extends OverlayError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('OVL_ERR_INVALID_SERVICE', `${field}: ${message}`);
    this.field = field;
  }
}

/** No such service (or instance) in that network. */
export class UnknownServiceError extends OverlayError {
  constructor(readonly network: string, readonly service: string) {
    super('OVL_ERR_UNKNOWN_SERVICE', `no service ${service} in network ${network}`);
  }
}

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
export function checkLabel(field: string, v: unknown): void {
  if (typeof v !== 'string' || !LABEL.test(v)) throw new InvalidServiceError(field, `must be a DNS label (letters, digits, '-', '_'; 1..63), not ${JSON.stringify(v)?.slice(0, 80)}`);
}

export function checkTtl(field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_TTL) throw new InvalidServiceError(field, `must be an integer 0..${MAX_TTL} seconds, not ${String(v)}`);
  return v as number;
}

export function parseAddress(field: string, v: unknown): Uint8Array {
  try {
    return parseIpAddress(v as string).bytes;
  } catch {
    throw new InvalidServiceError(field, `not an IP address: ${JSON.stringify(v)?.slice(0, 80)}`);
  }
}

export function u32(b: Uint8Array): number {
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}
