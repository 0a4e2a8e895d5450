/**
 * Longest-prefix-match table from IP prefixes to a value (a peer), one binary trie per address
 * family. Built at configuration time; lookups read the address straight out of a packet buffer
 * and allocate nothing.
 */
import { formatIpAddress, InvalidAddressError, parseIpAddress } from '@overlay/dataplane';

interface Node<T> {
  zero: Node<T> | null;
  one: Node<T> | null;
  value: T | null;
}

const newNode = <T>(): Node<T> => ({ zero: null, one: null, value: null });

export interface Prefix {
  family: 4 | 6;
  bytes: Buffer;
  bits: number;
}

/** An IP address from configuration as bytes; a malformed one throws naming `field`. */
export function parseAddress(text: string, field: string): { family: 4 | 6; bytes: Buffer } {
  try {
    const a = parseIpAddress(text);
    return { family: a.family, bytes: Buffer.from(a.bytes) };
  } catch {
    throw new InvalidAddressError(field, String(text));
  }
}

/** Parses '198.19.0.0/16', '2001:db8::/32' or a bare address (a host prefix). */
export function parsePrefix(text: string, field = 'allowedIPs'): Prefix {
  const [addr, lenText] = text.split('/');
  const { family, bytes } = parseAddress(addr, field);
  const max = family === 4 ? 32 : 128;
  const bits = lenText === undefined ? max : Number(lenText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (lenText !== undefined && !/^\d+$/.test(lenText))) throw new InvalidAddressError(field, text);
  // Canonicalise: clear host bits so '198.19.1.7/16' and '198.19.0.0/16' are one entry.
  for (let i = 0; i < bytes.length * 8; i++) if (i >= bits) bytes[i >> 3] &= ~(0x80 >> (i & 7));
  return { family, bytes, bits };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIpAddress(p.family, p.bytes)}/${p.bits}`;
}

export class AllowedIps<T> {
  private root4: Node<T> = newNode();
  private root6: Node<T> = newNode();

  insert(p: Prefix, value: T): void {
    let n = p.family === 4 ? this.root4 : this.root6;
    for (let i = 0; i < p.bits; i++) {
      const bit = (p.bytes[i >> 3] >> (7 - (i & 7))) & 1;
      if (bit) n = n.one ??= newNode();
      else n = n.zero ??= newNode();
    }
    n.value = value;
  }

  /** Removes every prefix mapped to `value`. */
  removeValue(value: T): void {
    const walk = (n: Node<T> | null): void => {
      if (!n) return;
      if (n.value === value) n.value = null;
      walk(n.zero);
      walk(n.one);
    };
    walk(this.root4);
    walk(this.root6);
  }

  /** Longest match for the address of `family` at buf[off..]. */
  lookup(family: 4 | 6, buf: Uint8Array, off: number): T | null {
    let n: Node<T> | null = family === 4 ? this.root4 : this.root6;
    const bits = family === 4 ? 32 : 128;
    let best: T | null = n.value;
    for (let i = 0; i < bits && n; i++) {
      const bit = (buf[off + (i >> 3)] >> (7 - (i & 7))) & 1;
      n = bit ? n.one : n.zero;
      if (n && n.value !== null) best = n.value;
    }
    return best;
  }
}
