import { OverlayError, macHi, macLo, parseIpAddress, parseMac } from '@overlay/dataplane';
import { MAGLEV_SIZE, maglevTable } from './maglev.js';
import { addressKey6, read32 } from './packet.js';

/** What the control plane says about one instance behind a VIP. */
export interface VipBackend {
  /** Stable instance id: the Maglev table is a function of the healthy ids. */
  id: string;
  /** The instance's overlay address, of the VIP's family. */
  ip: string;
  /** The instance's MAC on the overlay (the FDB forwards to it). */
  mac: string;
  /** healthy: gets new flows; draining: keeps its flows until the drain timeout, no new ones; down: its flows are reset now. */
  state: 'healthy' | 'draining' | 'down';
  /**
   * The instance runs on this host (its address is local to the client's kernel). Flows to it are
   * hairpinned: the source is rewritten to the VIP too and the frame goes back to the device, so
   * the backend's reply comes back through the translator. Default false.
   */
  local?: boolean;
}

export interface VipSpec {
  /** The virtual IPv4 or IPv6 address on the network. */
  vip: string;
  /** TCP/UDP ports the VIP serves; other ports are dropped (`port_closed`). Absent or empty: every port. */
  ports?: readonly number[];
  backends: readonly VipBackend[];
  /** The MAC the VIP answers ARP (ND) with and sends replies from. Default 0e:00 + the IPv4 VIP's 4 bytes, 0e:06 + an IPv6 VIP's last 4 (locally administered). */
  mac?: string;
  /** dnsrr: no VIP (clients get the instances from DNS); setVip then removes any VIP at this address. Default vip. */
  endpointMode?: 'vip' | 'dnsrr';
}

/** A VIP spec refused by `setVip`; `field` names what is wrong. */
export class VipConfigError extends OverlayError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('OVL_ERR_VIP_CONFIG', `${field}: ${message}`);
    this.field = field;
  }
}

export const BACKEND_HEALTHY = 0;
export const BACKEND_DRAINING = 1;
export const BACKEND_DOWN = 2;
const STATES = { healthy: BACKEND_HEALTHY, draining: BACKEND_DRAINING, down: BACKEND_DOWN } as const;

/** One backend as the translator keeps it. */
export interface Backend {
  id: string;
  /** IPv4: the address; IPv6: its key (addressKey6). */
  ip: number;
  /** IPv6: the address. */
  ip6: Uint8Array | undefined;
  macHi: number;
  macLo: number;
  state: number;
  local: boolean;
  /** Clock value (ms) at which a draining backend's remaining flows are reset; -1 otherwise. */
  drainUntil: number;
}

/** A VIP compiled for the hot path: the Maglev table maps straight to backend address and MAC. */
export class VipService {
  readonly family: 4 | 6;
  /** IPv4: the address; IPv6: its key (addressKey6). */
  readonly vip: number;
  /** The address's bytes (4 or 16). */
  readonly vipBytes: Uint8Array;
  readonly macHi: number;
  readonly macLo: number;
  /** Bit per port, or null for every port. */
  readonly ports: Uint8Array | null;
  readonly backends: Backend[];
  /** Maglev entry → index into the healthy arrays below; all -1 when none is healthy. */
  readonly table: Int32Array;
  readonly healthyIp: Int32Array;
  readonly healthyMacHi: Int32Array;
  readonly healthyMacLo: Int32Array;
  /** IPv6: 16 bytes per healthy backend. */
  readonly healthyIp6: Uint8Array;
  /** 1 where the healthy backend is local (hairpin). */
  readonly healthyLocal: Uint8Array;

  /** The healthy ids as the table was built for them (sorted, joined): equal sets reuse the table. */
  readonly healthyKey: string;

  constructor(spec: VipSpec, backends: Backend[], previous?: VipService) {
    const a = parseIpAddress(spec.vip);
    this.family = a.family;
    this.vipBytes = a.bytes;
    this.vip = a.family === 4 ? read32(a.bytes, 0) : addressKey6(a.bytes, 0);
    const mac = spec.mac !== undefined ? parseMac(spec.mac) : (a.family === 4 ? 0x0e00_0000_0000 : 0x0e06_0000_0000) + (read32(a.bytes, a.bytes.length - 4) >>> 0);
    this.macHi = macHi(mac);
    this.macLo = macLo(mac);
    if (spec.ports === undefined || spec.ports.length === 0) this.ports = null;
    else {
      this.ports = new Uint8Array(8192);
      for (const p of spec.ports) this.ports[p >>> 3] |= 1 << (p & 7);
    }
    this.backends = backends;
    const healthy = backends.filter((b) => b.state === BACKEND_HEALTHY).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.healthyKey = JSON.stringify(healthy.map((b) => b.id));
    // Built once per change of the healthy set; a record that changes nothing else reuses it.
    this.table = previous !== undefined && previous.healthyKey === this.healthyKey ? previous.table : maglevTable(healthy.map((b) => b.id), MAGLEV_SIZE);
    this.healthyIp = Int32Array.from(healthy, (b) => b.ip);
    this.healthyMacHi = Int32Array.from(healthy, (b) => b.macHi);
    this.healthyMacLo = Int32Array.from(healthy, (b) => b.macLo);
    this.healthyIp6 = new Uint8Array(this.family === 6 ? healthy.length * 16 : 0);
    if (this.family === 6) healthy.forEach((b, i) => this.healthyIp6.set(b.ip6!, i * 16));
    this.healthyLocal = Uint8Array.from(healthy, (b) => (b.local ? 1 : 0));
  }

  portOpen(port: number): boolean {
    const p = this.ports;
    return p === null || (p[port >>> 3] & (1 << (port & 7))) !== 0;
  }

  backendByIp(ip: number): Backend | undefined {
    return this.backends.find((b) => b.ip === ip);
  }
}

/** Validate a spec into backends (typed errors naming the field); `now` and `drainMs` start drain timers. */
export function compileBackends(spec: VipSpec, previous: VipService | undefined, now: number, drainMs: number): Backend[] {
  if (typeof spec !== 'object' || spec === null) throw new VipConfigError('spec', 'must be an object');
  let family: 4 | 6;
  try {
    family = parseIpAddress(spec.vip).family;
  } catch {
    throw new VipConfigError('vip', `not an IPv4 or IPv6 address: ${JSON.stringify(String(spec.vip).slice(0, 64))}`);
  }
  if (spec.mac !== undefined) {
    try {
      parseMac(spec.mac);
    } catch {
      throw new VipConfigError('mac', `not a MAC address: ${JSON.stringify(String(spec.mac).slice(0, 64))}`);
    }
  }
  for (const p of spec.ports ?? []) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new VipConfigError('ports', `a port must be an integer in 1..65535, got ${p}`);
  if (!Array.isArray(spec.backends)) throw new VipConfigError('backends', 'must be an array');
  if (spec.backends.length > 65535) throw new VipConfigError('backends', `at most 65535, got ${spec.backends.length}`);
  const ids = new Set<string>();
  const ips = new Set<number>();
  return spec.backends.map((b, i) => {
    if (typeof b?.id !== 'string' || b.id.length === 0 || b.id.length > 256) throw new VipConfigError(`backends[${i}].id`, 'must be a string of 1..256 characters');
    if (ids.has(b.id)) throw new VipConfigError(`backends[${i}].id`, `duplicate id ${JSON.stringify(b.id)}`);
    ids.add(b.id);
    let ip: number;
    let ip6: Uint8Array | undefined;
    let mac: number;
    try {
      const a = parseIpAddress(b.ip);
      if (a.family !== family) throw new Error('family');
      ip = family === 4 ? read32(a.bytes, 0) : addressKey6(a.bytes, 0);
      if (family === 6) ip6 = a.bytes;
    } catch {
      throw new VipConfigError(`backends[${i}].ip`, `not an IPv${family} address (the VIP's family): ${JSON.stringify(String(b.ip).slice(0, 64))}`);
    }
    if (ips.has(ip)) throw new VipConfigError(`backends[${i}].ip`, `duplicate address ${b.ip}`);
    ips.add(ip);
    try {
      mac = parseMac(b.mac);
    } catch {
      throw new VipConfigError(`backends[${i}].mac`, `not a MAC address: ${JSON.stringify(String(b.mac).slice(0, 64))}`);
    }
    const state: number | undefined = Object.hasOwn(STATES, b?.state) ? (STATES as Record<string, number>)[b.state] : undefined;
    if (state === undefined) throw new VipConfigError(`backends[${i}].state`, `must be healthy, draining or down, got ${JSON.stringify(b.state)}`);
    if (b.local !== undefined && typeof b.local !== 'boolean') throw new VipConfigError(`backends[${i}].local`, 'must be a boolean');
    // A drain timer runs from the first record that said draining; a repeated draining record keeps it.
    const before = previous?.backendByIp(ip);
    const drainUntil = state !== BACKEND_DRAINING ? -1 : before?.state === BACKEND_DRAINING && before.id === b.id ? before.drainUntil : now + drainMs;
    return { id: b.id, ip, ip6, macHi: macHi(mac), macLo: macLo(mac), state, local: b.local === true, drainUntil };
  });
}
