/**
 * Overlay prefixes (CIDRs) as certificates carry them: the network address in 4 or 16 bytes with
 * the host bits zero, and its length. Text in, canonical text out; `covers` answers whether a
 * certificate's prefixes hold an address.
 */
import { formatIpAddress, parseIpAddress } from '@overlay/dataplane';
import { fail } from './errors.js';

export interface Prefix {
  addr: Uint8Array;
  bits: number;
}

/** The 4 or 16 bytes of an address (@overlay/dataplane's parser), or null when `text` is not one. */
export function parseAddress(text: string): Uint8Array | null {
  try {
    return parseIpAddress(text).bytes;
  } catch {
    return null;
  }
}

/** Canonical text of 4 or 16 address bytes (IPv6 compressed per RFC 5952). */
export function formatAddress(a: Uint8Array): string {
  return formatIpAddress(a.length === 4 ? 4 : 6, a);
}

/** Parse `addr/bits` (or a bare address: a host prefix). Host bits set → `invalid_argument`. */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  const addr = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!addr) return fail('invalid_argument', `not an IP prefix: ${JSON.stringify(text.slice(0, 64))}`);
  const max = addr.length * 8;
  const bitsText = slash < 0 ? String(max) : text.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : -1;
  if (bits < 0 || bits > max) return fail('invalid_argument', `prefix length of ${JSON.stringify(text.slice(0, 64))} is not 0..${max}`);
  const p = { addr, bits };
  if (!hostBitsZero(p)) return fail('invalid_argument', `${JSON.stringify(text.slice(0, 64))} has host bits set (use ${formatPrefix(masked(p))})`);
  return p;
}

export const formatPrefix = (p: Prefix) => `${formatAddress(p.addr)}/${p.bits}`;

function masked(p: Prefix): Prefix {
  const a = p.addr.slice();
  for (let i = 0; i < a.length; i++) {
    const keep = Math.max(0, Math.min(8, p.bits - 8 * i));
    a[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return { addr: a, bits: p.bits };
}

/** A decoded prefix is canonical: 4 or 16 bytes, length in range, host bits zero. */
export function validPrefix(p: Prefix): boolean {
  return (p.addr.length === 4 || p.addr.length === 16) && Number.isInteger(p.bits) && p.bits >= 0 && p.bits <= p.addr.length * 8 && hostBitsZero(p);
}

function hostBitsZero(p: Prefix): boolean {
  const m = masked(p).addr;
  return m.every((b, i) => b === p.addr[i]);
}

/** Whether `inner` (a prefix or an address) lies inside `outer`. */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.addr.length !== inner.addr.length || inner.bits < outer.bits) return false;
  const full = outer.bits >> 3;
  for (let i = 0; i < full; i++) if (outer.addr[i] !== inner.addr[i]) return false;
  const rest = outer.bits & 7;
  if (rest === 0) return true;
  const m = (0xff << (8 - rest)) & 0xff;
  return (outer.addr[full] & m) === (inner.addr[full] & m);
}

/** Whether any of `prefixes` holds the address `addr` (text or bytes). */
export function covers(prefixes: readonly Prefix[], addr: string | Uint8Array): boolean {
  const a = typeof addr === 'string' ? parseAddress(addr) : addr;
  if (!a) return false;
  const host = { addr: a, bits: a.length * 8 };
  return prefixes.some((p) => prefixContains(p, host));
}
