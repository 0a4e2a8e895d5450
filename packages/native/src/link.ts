import { networkInterfaces } from 'node:os';
import { InvalidConfigError } from '@overlay/dataplane';
import { native } from './binding.js';

/** VXLAN over IPv4 costs 50 bytes of underlay MTU: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD_IPV4 = 50;
/** The same over IPv6: outer IPv6 is 40 bytes. */
export const VXLAN_OVERHEAD_IPV6 = 70;

/**
 * The overlay MTU rule, the one place it is written: the underlay link's MTU less VXLAN's outer
 * headers (50 over IPv4, 70 over IPv6) less what an encrypting transport adds to each datagram
 * (`tunnelOverhead`, e.g. SECURE_TRANSPORT_OVERHEAD = 32 from @overlay/crypto). No encapsulated
 * frame then exceeds the underlay, so nothing is fragmented (RFC 7348 §4.3) and no inner packet
 * that fits the overlay dies at the underlay with EMSGSIZE.
 */
export function overlayMtu(underlayMtu: number, family: 4 | 6, tunnelOverhead = 0): number {
  if (family !== 4 && family !== 6) throw new InvalidConfigError('family', `must be 4 or 6, got ${String(family)}`);
  if (!Number.isInteger(tunnelOverhead) || tunnelOverhead < 0 || tunnelOverhead > 1024) {
    throw new InvalidConfigError('tunnelOverhead', `must be an integer in 0..1024, got ${tunnelOverhead}`);
  }
  const mtu = underlayMtu - (family === 6 ? VXLAN_OVERHEAD_IPV6 : VXLAN_OVERHEAD_IPV4) - tunnelOverhead;
  if (!Number.isInteger(underlayMtu) || mtu < 68) {
    throw new InvalidConfigError('underlayMtu', `${underlayMtu} leaves ${mtu} for the overlay over IPv${family}, below the IPv4 minimum of 68`);
  }
  return mtu;
}

/**
 * The underlay family to budget for when only a link is named: 6 if the link carries a global
 * IPv6 address (a VTEP on it may send over IPv6, and the larger overhead is the one that never
 * overflows), else 4. Links without addresses count as IPv4.
 */
export function linkFamily(name: string): 4 | 6 {
  const addrs = networkInterfaces()[name] ?? [];
  return addrs.some((a) => a.family === 'IPv6' && !/^fe[89ab]/i.test(a.address)) ? 6 : 4;
}

/** MTU of a link in the calling process's namespace. Throws NativeError ('ENODEV' if absent). */
export function linkMtu(name: string): number {
  return native().linkMtu(name);
}

/** Set a link's MTU (ioctl SIOCSIFMTU). */
export function setLinkMtu(name: string, mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new InvalidConfigError('mtu', `must be an integer in 68..65535, got ${mtu}`);
  native().linkSet(name, mtu, 0, 0);
}
