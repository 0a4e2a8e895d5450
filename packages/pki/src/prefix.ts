/**
 * Overlay prefixes (CIDRs) as certificates carry them: the network address in 4 or 16 bytes with
 * the host bits zero, and its length. Text in, canonical text out; `covers` answers whether a
 * certificate's prefixes hold an address.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { fail } from './errors.js';

export interface Prefix {
  addr: Uint8Array;
  bits: number;
}

export function parseAddress(text: string): Uint8Array | null {
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  if (!isIPv6(text) || text.includes('%')) return null;
  let t = text;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    t = t.slice(0, v4.index) + ((b[0] << 8) | b[1]).toString(16) + ':' + ((b[2] << 8) | b[3]).toString(16);
  }
  const [head, tail] = t.includes('::') ? t.split('::') : [t, undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = tail === undefined ? hs : [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

export function formatAddress(a: Uint8Array): string {
  if (a.length === 4) return a.join('.');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((a[i] << 8) | a[i + 1]);
  // Longest run of ≥ 2 zero groups becomes '::' (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hexes = g.map((x) => x.toString(16));
  if (best < 0) return hexes.join(':');
  return hexes.slice(0, best).join(':') + '::' + hexes.slice(best + bestLen).join(':');
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
