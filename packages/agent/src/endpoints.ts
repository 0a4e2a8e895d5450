/**
 * The endpoint record kind (RecordBody.kind 1): one MAC with its addresses, attached to the
 * owner's VTEP in one network. Records are signed by their owner and verified against the
 * signing key the owner advertises in membership (records.ts), so a member cannot forge another
 * member's endpoints or tombstones (moby#52661).
 *
 * Its local effect: a live remote endpoint of a network this node is attached to, whose owner is
 * alive or suspect, is programmed into the dataplane (program.ts) with binary keys straight from
 * the record: MAC as a 48-bit number, addresses as the record's 4/16 bytes.
 *
 * Single-threaded; owned by one agent.
 */
import { readMac } from '@overlay/dataplane';
import type { Programmer, Programmed } from './program.js';
import type { KindContext, RecordKind, SignedRecord } from './records.js';
import { fieldOf } from './wire.js';

export interface EndpointData {
  vni: number;
  /** 6 bytes. */
  mac: Uint8Array;
  /** 0 or 4 bytes. */
  ipv4: Uint8Array;
  /** 0 or 16 bytes. */
  ipv6: Uint8Array;
  /** Owner's VTEP address; empty: the one in its membership meta. */
  vtep: string;
}

export type EndpointRecord = SignedRecord<EndpointData>;

export const ENDPOINT_KIND = 1;
const MAX_VTEP_LEN = 64;

function decodeEndpoint(f: Record<string, unknown>): EndpointData | null {
  const d: EndpointData = { vni: fieldOf.u32(f.vni), mac: fieldOf.bytes(f.mac), ipv4: fieldOf.bytes(f.ipv4), ipv6: fieldOf.bytes(f.ipv6), vtep: fieldOf.str(f.vtep) };
  const ok =
    d.vni < 1 << 24 &&
    d.mac.length === 6 &&
    (d.ipv4.length === 0 || d.ipv4.length === 4) &&
    (d.ipv6.length === 0 || d.ipv6.length === 16) &&
    d.vtep.length <= MAX_VTEP_LEN;
  return ok ? d : null;
}

/** What the record should program now, or null (deleted, ours, other network, owner gone). */
function wanted(r: EndpointRecord, ctx: KindContext, networks: ReadonlyMap<string, number>): Programmed | null {
  const d = r.data;
  if (r.deleted || !d || r.owner === ctx.self) return null;
  const vni = networks.get(r.network);
  if (vni === undefined || vni !== d.vni) return null;
  const st = ctx.stateOf(r.owner);
  if (st !== 'alive' && st !== 'suspect') return null;
  const meta = ctx.metaOf(r.owner)!;
  const ips: Uint8Array[] = [];
  if (d.ipv4.length === 4) ips.push(d.ipv4);
  if (d.ipv6.length === 16) ips.push(d.ipv6);
  return { vni, mac: readMac(d.mac, 0), ips, vtep: { address: d.vtep || meta.vtep, port: meta.vtepPort || 4789 } };
}

/** The endpoint kind, programming through `program` for the networks this node is attached to. */
export function endpointKind(program: Programmer, networks: ReadonlyMap<string, number>): RecordKind<EndpointData> {
  return {
    code: ENDPOINT_KIND,
    field: 'endpoint',
    decode: decodeEndpoint,
    reconcile: (key, rec, ctx) => program.reconcile(key, rec && wanted(rec, ctx, networks)),
  };
}

/** The endpoint kind without local effect (tables and tests that program nothing). */
export const ENDPOINTS: RecordKind<EndpointData> = { code: ENDPOINT_KIND, field: 'endpoint', decode: decodeEndpoint };
