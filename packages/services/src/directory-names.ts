/**
 * Names of single addresses and instances for the DNS directory: the shapes it builds on demand
 * (a query's wire name checked without allocating), reverse names to addresses and back.
 */

export function hex(a: Uint8Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}

const IN_ADDR = Uint8Array.of(7, 105, 110, 45, 97, 100, 100, 114, 4, 97, 114, 112, 97, 0); // in-addr.arpa
const IP6 = Uint8Array.of(3, 105, 112, 54, 4, 97, 114, 112, 97, 0); // ip6.arpa

/**
 * A lowercased wire name (`len` bytes with the root label) that may name something built on
 * demand: three labels with `tasks` in the middle, or a reverse name. Allocates nothing.
 */
export function lazyShape(n: Uint8Array, len: number): boolean {
  if (endsWith(n, len, IN_ADDR) || endsWith(n, len, IP6)) return true;
  const l1 = n[0];
  if (l1 === 0 || n[l1 + 1] !== 5) return false;
  const p = l1 + 2;
  if (n[p] !== 116 || n[p + 1] !== 97 || n[p + 2] !== 115 || n[p + 3] !== 107 || n[p + 4] !== 115) return false; // tasks
  const l3 = n[p + 5];
  return l3 > 0 && n[p + 6 + l3] === 0;
}

function endsWith(n: Uint8Array, len: number, suffix: Uint8Array): boolean {
  const off = len - suffix.length;
  if (off < 0) return false;
  for (let i = 0; i < suffix.length; i++) if (n[off + i] !== suffix[i]) return false;
  return true;
}

/**
 * The address a reverse name stands for, in the address map's form: IPv4 as a number from its
 * canonical `d.c.b.a.in-addr.arpa` (decimal without leading zeros), IPv6 as 32 hex digits from 32
 * one-digit labels; undefined for anything else.
 */
export function reverseAddress(key: string): number | string | undefined {
  if (key.endsWith('.in-addr.arpa')) {
    const parts = key.slice(0, -13).split('.');
    if (parts.length !== 4) return undefined;
    let v = 0;
    for (let i = 3; i >= 0; i--) {
      const t = parts[i];
      if (!/^(0|[1-9][0-9]{0,2})$/.test(t) || Number(t) > 255) return undefined;
      v = v * 256 + Number(t);
    }
    return v;
  }
  if (key.endsWith('.ip6.arpa')) {
    const parts = key.slice(0, -9).split('.');
    if (parts.length !== 32 || !parts.every((p) => /^[0-9a-f]$/.test(p))) return undefined;
    let out = '';
    for (let i = 31; i > 0; i -= 2) out += parts[i] + parts[i - 1];
    return out;
  }
  return undefined;
}

/** The reverse-lookup name of 4 or 16 address bytes (in-addr.arpa / ip6.arpa). */
export function reverseName(a: Uint8Array): string {
  if (a.length === 4) return `${a[3]}.${a[2]}.${a[1]}.${a[0]}.in-addr.arpa`;
  const parts: string[] = [];
  for (let i = 15; i >= 0; i--) parts.push((a[i] & 15).toString(16), (a[i] >> 4).toString(16));
  return `${parts.join('.')}.ip6.arpa`;
}
