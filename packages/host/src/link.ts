/**
 * Link setup of the overlay's TAP devices, in one place: MAC, addresses and link state through
 * iproute2's `ip` (TAP creation, MTU and transmit queue go through the addon in TapDevice.open),
 * and the lookup of the underlay link that holds an address. Everything runs in the calling
 * process's network namespace.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { formatIpAddress, parseIpAddress } from '@overlay/dataplane';
import { LinkSetupError, UnderlayNotFoundError } from './errors.js';

function ip(link: string, args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message?: string };
    throw new LinkSetupError(link, args, (e.stderr?.toString().trim() || e.message || String(err)).slice(0, 300), err);
  }
}

/** Set the link's MAC (the link should be down, as TapDevice.open({ up: false }) leaves it). */
export function setLinkMac(link: string, mac: string): void {
  ip(link, ['link', 'set', 'dev', link, 'address', mac]);
}

/** Add `address/prefix`; IPv6 addresses skip duplicate address detection (nodad): the overlay assigns them. */
export function addLinkAddress(link: string, cidr: string): void {
  ip(link, ['addr', 'add', cidr, 'dev', link, ...(cidr.includes(':') ? ['nodad'] : [])]);
}

/** Remove an address added by addLinkAddress; a link or address already gone is not an error. */
export function removeLinkAddress(link: string, cidr: string): void {
  try {
    ip(link, ['addr', 'del', cidr, 'dev', link]);
  } catch {
    // the link went away with its addresses (a non-persistent TAP closes with its descriptor)
  }
}

export function setLinkUp(link: string): void {
  ip(link, ['link', 'set', 'dev', link, 'up']);
}

/** The link's MAC as the kernel reports it (lower case, colon-separated). */
export function linkMac(link: string): string {
  return readFileSync(`/sys/class/net/${link}/address`, 'utf8').trim();
}

/** Whether a link of that name exists in this namespace. */
export function linkExists(link: string): boolean {
  try {
    readFileSync(`/sys/class/net/${link}/ifindex`);
    return true;
  } catch {
    return false;
  }
}

/** Canonical text of an address (RFC 5952 for IPv6), so '2001:DB8:0::1' finds '2001:db8::1'. */
function canonical(address: string): string {
  const p = parseIpAddress(address);
  return formatIpAddress(p.family, p.bytes);
}

/**
 * The link that holds `address`. Throws UnderlayNotFoundError when none does (a wildcard
 * address included: name the link then).
 */
export function linkHolding(address: string): string {
  if (isIP(address) === 0) throw new UnderlayNotFoundError(address);
  const want = canonical(address);
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.address.includes('%')) continue; // scoped link-local: never a VTEP address here
      if (isIP(a.address) !== 0 && canonical(a.address) === want) return name;
    }
  }
  throw new UnderlayNotFoundError(address);
}
