/**
 * Unique allocation of addresses (VIPs, endpoint addresses) from an IPv4 range with
 * compare-and-set: the first writer of `vips/<net>/<address>` owns it. The probe order is the one
 * the agent's gossip rule uses (packages/agent/src/services-vip.ts): FNV-1a of the name picks a
 * start in the upper half of the host range (broadcast excluded), then upwards, wrapping; so a
 * name lands on the same address in both modes when nothing collides. With CAS a collision is
 * settled by the store (the loser probes on); in gossip mode, where there is no CAS, the agent's
 * deterministic rule settles it instead (store-gossip.ts `gossipAllocate`).
 */
import { StoreError } from './errors.js';
import type { Keys } from './keys.js';
import type { EndpointStore, PutOptions } from './store.js';

/** FNV-1a (32 bit) over UTF-16 code units, as the agent's VIP rule. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const ipText = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
function ipNum(s: string): number | undefined {
  const p = s.split('.');
  if (p.length !== 4) return undefined;
  let n = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return undefined;
    n = n * 256 + Number(x);
  }
  return n;
}

/** The candidate addresses for `name` in `subnet`, in probe order. */
export function* probeOrder(subnet: string, name: string): Generator<string> {
  const [addr, bitsText] = subnet.split('/');
  const prefix = Number(bitsText);
  const a = ipNum(addr ?? '');
  if (a === undefined || !(Number.isInteger(prefix) && prefix >= 0 && prefix <= 30)) throw new StoreError('STORE_UNSUPPORTED', `allocation subnet ${JSON.stringify(subnet)}: IPv4 CIDR with a prefix of at most /30`);
  const hostBits = 32 - prefix;
  const base = hostBits === 32 ? 0 : (a & ~(2 ** hostBits - 1)) >>> 0;
  const lo = hostBits >= 3 ? 2 ** (hostBits - 1) : 1;
  const size = 2 ** hostBits - 2 - lo + 1;
  const start = fnv1a(name) % size;
  for (let k = 0; k < size; k++) yield ipText((base + lo + ((start + k) % size)) >>> 0);
}

export interface AllocateOptions {
  keys: Keys;
  network: string;
  subnet: string;
  /** What the allocation is for (the service name): picks the start of the probe. */
  name: string;
  /** The value stored at the won key (a sealed record naming the owner and `name`). */
  value: Uint8Array;
  /** Addresses to skip (resolver, endpoint addresses). */
  taken?: ReadonlySet<string>;
  /** Stop after this many candidates (default 4096): the range may be huge. */
  maxProbes?: number;
  /** Whether an existing value is already ours for this name (re-allocation after restart). */
  isMine?(value: Uint8Array): boolean;
  put?: PutOptions;
}

export interface Allocation {
  address: string;
  key: string;
  revision: number;
  /** How many addresses were taken by others before this one. */
  collisions: number;
}

/** Allocate one address with compare-and-set; undefined when every probed address is taken. */
export async function allocate(store: EndpointStore, o: AllocateOptions): Promise<Allocation | undefined> {
  let collisions = 0;
  let probes = 0;
  for (const address of probeOrder(o.subnet, o.name)) {
    if (probes++ >= (o.maxProbes ?? 4096)) break;
    if (o.taken?.has(address)) continue;
    const key = o.keys.vip(o.network, address);
    const r = await store.compareAndSet(key, 'absent', o.value, o.put);
    if (r.ok) return { address, key, revision: r.revision, collisions };
    if (r.current && o.isMine?.(r.current.value)) return { address, key, revision: r.current.revision, collisions };
    collisions++;
  }
  return undefined;
}
