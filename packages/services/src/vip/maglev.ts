/**
 * Maglev consistent hashing (Eisenbud et al., NSDI '16, §3.4): a lookup table of prime size M in
 * which every backend owns ≈ M/N entries, filled once per backend-set change; a flow's backend is
 * one array index, `table[flowHash % M]`.
 *
 * Each backend i has a permutation of 0..M-1 given by an offset and a skip derived from its id
 * (`offset = h1(id) mod M`, `skip = h2(id) mod (M-1) + 1`, position j → (offset + j·skip) mod M;
 * M prime makes every skip a generator). Backends take turns claiming their next unclaimed
 * position until the table is full. The turn order is the backends sorted by id, so the table
 * depends only on the set of ids, not on the order they were given in; removing one backend
 * moves its own entries and, because the others' preferences are unchanged, few more.
 */

/** The table size the VIP uses: prime, ≥ 100 × the backends a service may have (≤ 655). */
export const MAGLEV_SIZE = 65537;

/** FNV-1a over the id's UTF-16 code units from `seed`, then a murmur3 finalizer. Unsigned. */
export function idHash(id: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** murmur3's 32-bit finalizer: every input bit affects every output bit. Unsigned. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hash of a flow as the VIP sees it from the client: protocol, client address and port, VIP
 * port (the VIP address is the same for every flow of one table). Unsigned. Allocation-free.
 */
export function flowHash(proto: number, client: number, clientPort: number, vipPort: number): number {
  let h = Math.imul(client ^ 0x9e3779b9, 0xcc9e2d51);
  h = Math.imul((h << 15) | (h >>> 17), 0x1b873593);
  h ^= (clientPort << 16) | vipPort;
  h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
  h ^= proto;
  return fmix32(h);
}

/**
 * The lookup table for backends `ids` (unique, at most 65535): entry k is the index in `ids` of
 * the backend owning slot k; every entry is -1 when `ids` is empty. O(M log M) worst case, about
 * M·ln(M)/N probes per backend — done on a backend-set change, never per packet.
 */
export function maglevTable(ids: readonly string[], size = MAGLEV_SIZE): Int32Array {
  const table = new Int32Array(size).fill(-1);
  const n = ids.length;
  if (n === 0) return table;
  const order = ids.map((_, i) => i).sort((a, b) => (ids[a] < ids[b] ? -1 : ids[a] > ids[b] ? 1 : 0));
  const pos = new Float64Array(n); // current permutation position, (offset + j·skip) mod M
  const skip = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const id = ids[order[r]];
    pos[r] = idHash(id, 0x811c9dc5) % size;
    skip[r] = (idHash(id, 0x2545f491) % (size - 1)) + 1;
  }
  let filled = 0;
  for (;;) {
    for (let r = 0; r < n; r++) {
      let c = pos[r];
      while (table[c] >= 0) {
        c += skip[r];
        if (c >= size) c -= size;
      }
      table[c] = order[r];
      c += skip[r];
      pos[r] = c >= size ? c - size : c;
      if (++filled === size) return table;
    }
  }
}
