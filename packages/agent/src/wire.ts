/**
 * Wire codec for agent gossip (UDP) and push-pull (TCP), over the checked-in proto/agent.proto.
 *
 * The .proto is loaded once with protobufjs at module load; protobufjs then generates
 * specialised encode/decode functions per type on first use, so there is no per-message
 * reflection. Broadcasts are encoded once when queued (as a complete `Envelope.msgs` field) and
 * appended to packets by concatenation, so their size is known exactly when packing to the MTU.
 */
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { OverlayError } from '@overlay/dataplane';

/** Oldest protocol version this build accepts, and the one it speaks. Bump max on additions. */
export const PROTOCOL_MIN = 1;
export const PROTOCOL_MAX = 1;

/** A push-pull chunk never exceeds this many bytes (before sealing). */
export const MAX_CHUNK_BYTES = 64 * 1024;
/** A whole push-pull exchange (one side) is refused beyond this: 2048 chunks = 128 MiB. */
export const MAX_CHUNKS = 2048;

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/agent.proto', import.meta.url)));
const T = (n: string) => root.lookupType(`overlay.agent.v1.${n}`);
export const EnvelopeType = T('Envelope');
export const MessageType = T('Message');
export const StateChunkType = T('StateChunk');
const EndpointRecordType = T('EndpointRecord');

export interface NodeMeta {
  signKey: Uint8Array;
  vtep: string;
  vtepPort: number;
  wgKey: string;
  wgPort: number;
  pmin: number;
  pmax: number;
}
export interface AliveMsg { name: string; incarnation: number; ip: string; port: number; meta: NodeMeta }
export interface SuspectMsg { name: string; incarnation: number; from: string }
export type DeadMsg = SuspectMsg;
export interface PingMsg { seqNo: number; target: string; replyIp: string; replyPort: number }
export interface IndirectPingMsg { seqNo: number; target: string; targetIp: string; targetPort: number; nack: boolean }
/** One endpoint of one network; see EndpointRecord in agent.proto. */
export interface EndpointRecord {
  network: string;
  vni: number;
  id: string;
  mac: Uint8Array;
  ipv4: Uint8Array;
  ipv6: Uint8Array;
  owner: string;
  vtep: string;
  version: number;
  deleted: boolean;
  sig: Uint8Array;
}

export type Message =
  | { ping: PingMsg }
  | { indirectPing: IndirectPingMsg }
  | { ack: { seqNo: number } }
  | { nack: { seqNo: number } }
  | { alive: AliveMsg }
  | { suspect: SuspectMsg }
  | { dead: DeadMsg }
  | { endpoint: EndpointRecord };

export interface EnvelopeHeader { pmin: number; pmax: number; from: string; session: number; seq: number; ts: number }
export interface Envelope extends EnvelopeHeader { msgs: Message[] }

export const enum NodeStateCode { Alive = 0, Suspect = 1, Dead = 2, Left = 3 }
export interface StateChunk {
  pmin: number;
  pmax: number;
  from: string;
  join: boolean;
  nodes: { alive: AliveMsg; state: number }[];
  endpoints: EndpointRecord[];
  last: boolean;
  ping?: boolean;
  target?: string;
}

/** Long (from uint64 decode) or number → number. Values above 2^53 are not produced by us. */
function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return 0;
}

/** Encode one message as a complete `Envelope.msgs` field (tag + length + body). */
export function encodeMessageField(m: Message): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((10 << 3) | 2).fork();
  MessageType.encode(m as object, w);
  w.ldelim();
  return w.finish();
}

/** Encode the envelope header; append fields from encodeMessageField to complete the packet. */
export function encodeHeader(h: EnvelopeHeader): Uint8Array {
  return EnvelopeType.encode(h as object).finish();
}

/** Thrown by decoders on bytes that are not a valid message; callers count and drop. */
export class WireDecodeError extends OverlayError {
  constructor(message: string) {
    super('OVL_ERR_AGENT_WIRE_DECODE', message);
  }
}

function normMeta(m: Record<string, unknown> | null | undefined): NodeMeta {
  return {
    signKey: (m?.signKey as Uint8Array) ?? new Uint8Array(0),
    vtep: (m?.vtep as string) ?? '',
    vtepPort: (m?.vtepPort as number) ?? 0,
    wgKey: (m?.wgKey as string) ?? '',
    wgPort: (m?.wgPort as number) ?? 0,
    pmin: (m?.pmin as number) ?? 0,
    pmax: (m?.pmax as number) ?? 0,
  };
}
function normAlive(a: Record<string, unknown>): AliveMsg {
  return {
    name: (a.name as string) ?? '',
    incarnation: (a.incarnation as number) ?? 0,
    ip: (a.ip as string) ?? '',
    port: (a.port as number) ?? 0,
    meta: normMeta(a.meta as Record<string, unknown>),
  };
}
const EMPTY = new Uint8Array(0);
function normRecord(r: Record<string, unknown>): EndpointRecord {
  return {
    network: (r.network as string) ?? '',
    vni: (r.vni as number) ?? 0,
    id: (r.id as string) ?? '',
    mac: (r.mac as Uint8Array) ?? EMPTY,
    ipv4: (r.ipv4 as Uint8Array) ?? EMPTY,
    ipv6: (r.ipv6 as Uint8Array) ?? EMPTY,
    owner: (r.owner as string) ?? '',
    vtep: (r.vtep as string) ?? '',
    version: num(r.version),
    deleted: (r.deleted as boolean) ?? false,
    sig: (r.sig as Uint8Array) ?? EMPTY,
  };
}
function normMessage(m: Record<string, unknown>): Message | null {
  const g = (k: string) => m[k] as Record<string, unknown> | undefined;
  let v: Record<string, unknown> | undefined;
  if ((v = g('ping'))) return { ping: { seqNo: (v.seqNo as number) ?? 0, target: (v.target as string) ?? '', replyIp: (v.replyIp as string) ?? '', replyPort: (v.replyPort as number) ?? 0 } };
  if ((v = g('indirectPing'))) return { indirectPing: { seqNo: (v.seqNo as number) ?? 0, target: (v.target as string) ?? '', targetIp: (v.targetIp as string) ?? '', targetPort: (v.targetPort as number) ?? 0, nack: (v.nack as boolean) ?? false } };
  if ((v = g('ack'))) return { ack: { seqNo: (v.seqNo as number) ?? 0 } };
  if ((v = g('nack'))) return { nack: { seqNo: (v.seqNo as number) ?? 0 } };
  if ((v = g('alive'))) return { alive: normAlive(v) };
  if ((v = g('suspect'))) return { suspect: { name: (v.name as string) ?? '', incarnation: (v.incarnation as number) ?? 0, from: (v.from as string) ?? '' } };
  if ((v = g('dead'))) return { dead: { name: (v.name as string) ?? '', incarnation: (v.incarnation as number) ?? 0, from: (v.from as string) ?? '' } };
  if ((v = g('endpoint'))) return { endpoint: normRecord(v) };
  return null; // unknown kind from a newer peer: skipped (append-only evolution)
}

/** Decode an opened packet. Throws WireDecodeError on malformed bytes. */
export function decodeEnvelope(buf: Uint8Array): Envelope {
  let e: Record<string, unknown>;
  try {
    e = EnvelopeType.decode(buf) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new WireDecodeError((err as Error).message);
  }
  const msgs: Message[] = [];
  for (const m of (e.msgs as Record<string, unknown>[]) ?? []) {
    const n = normMessage(m);
    if (n) msgs.push(n);
  }
  return {
    pmin: (e.pmin as number) ?? 0,
    pmax: (e.pmax as number) ?? 0,
    from: (e.from as string) ?? '',
    session: num(e.session),
    seq: num(e.seq),
    ts: num(e.ts),
    msgs,
  };
}

export function encodeStateChunk(c: StateChunk): Uint8Array {
  return StateChunkType.encode(c as object).finish();
}
export function decodeStateChunk(buf: Uint8Array): StateChunk {
  let c: Record<string, unknown>;
  try {
    c = StateChunkType.decode(buf) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new WireDecodeError((err as Error).message);
  }
  return {
    pmin: (c.pmin as number) ?? 0,
    pmax: (c.pmax as number) ?? 0,
    from: (c.from as string) ?? '',
    join: (c.join as boolean) ?? false,
    nodes: ((c.nodes as Record<string, unknown>[]) ?? []).map((n) => ({ alive: normAlive((n.alive as Record<string, unknown>) ?? {}), state: (n.state as number) ?? 0 })),
    endpoints: ((c.endpoints as Record<string, unknown>[]) ?? []).map(normRecord),
    last: (c.last as boolean) ?? false,
    ping: (c.ping as boolean) ?? false,
    target: (c.target as string) ?? '',
  };
}

/** Bytes an endpoint record is signed over: the record with `sig` cleared, protobuf-encoded. */
export function signedBytes(r: EndpointRecord): Uint8Array {
  return EndpointRecordType.encode({ ...r, sig: EMPTY } as object).finish();
}
