/**
 * Drives the data plane from the endpoint table: every live remote endpoint becomes an FDB entry
 * (MAC → owner's VTEP), neighbour entries for its IPs (ARP/ND suppression) and its VTEP joins the
 * network's flood list (reference counted per VTEP). Keys are binary, as the records carry them:
 * the MAC as a 48-bit number, each IP as its 4 or 16 bytes (no bytes → text → bytes).
 *
 * Works as a reconciler: given what a record should program now, it undoes what it programmed
 * before and applies the difference, so repeated or out-of-order calls converge to the same
 * dataplane state.
 *
 * Single-threaded; owned by one agent.
 */
import type { Dataplane, Vtep } from '@overlay/dataplane';
export type { Vtep };

/**
 * The part of `Dataplane` (@overlay/dataplane) the agent programs; tests pass a recording fake.
 * A throw is caught and counted (`programFailures`), never propagated into gossip handling.
 */
export type DataplaneControl = Pick<Dataplane, 'setFdb' | 'deleteFdb' | 'setNeighbour' | 'deleteNeighbour' | 'addFloodVtep' | 'removeFloodVtep'>;

/** What one endpoint record programs; null when it programs nothing. */
export interface Programmed {
  vni: number;
  /** 48-bit MAC. */
  mac: number;
  /** 4- or 16-byte addresses (the record's own bytes: read, never modified). */
  ips: Uint8Array[];
  vtep: Vtep;
}

const vtepKey = (vni: number, v: Vtep) => `${vni}/${v.address}/${v.port ?? 4789}`;

export class Programmer {
  private readonly done = new Map<string, Programmed>();
  private readonly flood = new Map<string, number>();
  failures = 0;

  constructor(private readonly dp: DataplaneControl | undefined) {}

  /** Make record `key` program `want` (or nothing). */
  reconcile(key: string, want: Programmed | null): void {
    const prev = this.done.get(key);
    if (prev && want && same(prev, want)) return;
    if (prev) {
      this.undo(prev);
      this.done.delete(key);
    }
    if (want) {
      this.apply(want);
      this.done.set(key, want);
    }
  }

  /** Number of records currently programmed. */
  get size(): number {
    return this.done.size;
  }

  private call(f: () => void): void {
    try {
      f();
    } catch {
      this.failures++;
    }
  }

  private apply(p: Programmed): void {
    const dp = this.dp;
    if (!dp) return;
    this.call(() => dp.setFdb(p.vni, p.mac, p.vtep));
    for (const ip of p.ips) this.call(() => dp.setNeighbour(p.vni, ip, p.mac));
    const k = vtepKey(p.vni, p.vtep);
    const n = this.flood.get(k) ?? 0;
    this.flood.set(k, n + 1);
    if (n === 0) this.call(() => dp.addFloodVtep(p.vni, p.vtep));
  }

  private undo(p: Programmed): void {
    const dp = this.dp;
    if (!dp) return;
    this.call(() => dp.deleteFdb(p.vni, p.mac));
    for (const ip of p.ips) this.call(() => dp.deleteNeighbour(p.vni, ip));
    const k = vtepKey(p.vni, p.vtep);
    const n = (this.flood.get(k) ?? 1) - 1;
    if (n <= 0) {
      this.flood.delete(k);
      this.call(() => dp.removeFloodVtep(p.vni, p.vtep));
    } else this.flood.set(k, n);
  }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

function same(a: Programmed, b: Programmed): boolean {
  return a.vni === b.vni && a.mac === b.mac && a.vtep.address === b.vtep.address && a.vtep.port === b.vtep.port && a.ips.length === b.ips.length && a.ips.every((x, i) => sameBytes(x, b.ips[i]));
}
