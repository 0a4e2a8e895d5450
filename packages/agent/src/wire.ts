/**
 * Wire codec for agent gossip (UDP) and push-pull (TCP), over the schema compiled from
 * proto/agent.proto into proto/agent.json (loaded with Root.fromJSON: nothing is parsed at run
 * time, and never a peer's schema). protobufjs generates specialised encode/decode functions per
 * type on first use, so there is no per-message reflection.
 *
 * Broadcasts are encoded once when queued (as a complete `Envelope.msgs` field) and appended to
 * packets by concatenation, so their size is known exactly when packing to the MTU. Signed
 * records stay bytes: `body` is what the owner signed and what every node forwards (records.ts).
 */
import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';
import { OverlayError } from '@overlay/dataplane';

/**
 * Oldest protocol version this build accepts, and the newest it speaks. 2: SignedRecord, bound
 * push-pull. 3: delta push-pull and per-network gossip, used only with peers advertising pmax ≥ 3.
 */
export const PROTOCOL_MIN = 2;
export const PROTOCOL_MAX = 3;
/** The first protocol with delta push-pull and per-network gossip. */
export const PROTOCOL_DELTA = 3;

/** A push-pull chunk never exceeds this many bytes (before sealing). */
export const MAX_CHUNK_BYTES = 64 * 1024;
/** A whole push-pull exchange (one side) is refused beyond this: 2048 chunks = 128 MiB. */
export const MAX_CHUNKS = 2048;
/** Longest node, network or record id name, in UTF-16 units. */
export const MAX_NAME_LEN = 64;

const descriptor = JSON.parse(readFileSync(new URL('../proto/agent.json', import.meta.url), 'utf8')) as protobuf.INamespace;
const root = protobuf.Root.fromJSON(descriptor);
const T = (n: string) => root.lookupType(`overlay.agent.v1.${n}`);
const EnvelopeType = T('Envelope');
const MessageType = T('Message');
const StateChunkType = T('StateChunk');
const RecordBodyType = T('RecordBody');

export interface NodeMeta {
  signKey: Uint8Array;
  vtep: string;
  vtepPort: number;
  wgKey: string;
  wgPort: number;
  pmin: number;
  pmax: number;
  /** The node's certificate (@overlay/pki) when the cluster admits by certificate; absent or empty otherwise. */
  cert?: Uint8Array;
  /** Networks whose endpoint and service records this node takes, when `scoped` (networks-gossip.ts). */
  networks?: string[];
  /** Set: the node takes records of `networks` only; absent (older nodes): of every network. */
  scoped?: boolean;
}
export interface AliveMsg { name: string; incarnation: number; ip: string; port: number; meta: NodeMeta }
export interface SuspectMsg { name: string; incarnation: number; from: string }
export type DeadMsg = SuspectMsg;
export interface PingMsg { seqNo: number; target: string; replyIp: string; replyPort: number }
export interface IndirectPingMsg { seqNo: number; target: string; targetIp: string; targetPort: number; nack: boolean }
/** A signed record as it travels: the owner's exact body bytes and its signature over them. */
export interface RecordBytes { body: Uint8Array; sig: Uint8Array }

export type Message =
  | { ping: PingMsg }
  | { indirectPing: IndirectPingMsg }
  | { ack: { seqNo: number } }
  | { nack: { seqNo: number } }
  | { alive: AliveMsg }
  | { suspect: SuspectMsg }
  | { dead: DeadMsg }
  | { record: RecordBytes };

export interface EnvelopeHeader { pmin: number; pmax: number; from: string; session: number; seq: number; ts: number }
export interface Envelope extends EnvelopeHeader { msgs: Message[] }

export const enum NodeStateCode { Alive = 0, Suspect = 1, Dead = 2, Left = 3 }
export interface StateChunk {
  pmin: number;
  pmax: number;
  from: string;
  join: boolean;
  nodes: { alive: AliveMsg; state: number }[];
  records: RecordBytes[];
  last: boolean;
  ping?: boolean;
  target?: string;
  /** The request's sender session and exchange number, and its clock when sent. */
  session: number;
  seq: number;
  ts: number;
  /** In a reply: the (session, seq) of the request it answers. */
  replySession?: number;
  replySeq?: number;
  /** Delta push-pull (pushpull.ts): 0 or absent = full state; 1 = digests; 2 = what the peer lacked. */
  phase?: number;
  digests?: RecordDigest[];
  /** 8 bytes: XOR over the sender's members of a hash of (name, incarnation, state). */
  membersHash?: Uint8Array;
}

/** One owner's records in one network as one side holds them: count and XOR of signature prefixes. */
export interface RecordDigest { network: string; owner: string; count: number; hash: Uint8Array }

/** The fields every record kind shares, as decoded from a RecordBody. */
export interface RecordHead {
  kind: number;
  network: string;
  id: string;
  owner: string;
  version: number;
  deleted: boolean;
}

/** Long (from uint64 decode) or number → number. Values above 2^53 are not produced by us. */
function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return 0;
}

/** Thrown by decoders on bytes that are not a valid message; callers count and drop. */
export class WireDecodeError extends OverlayError {
  constructor(message: string) {
    super('OVL_ERR_AGENT_WIRE_DECODE', message);
  }
}

function decode(type: protobuf.Type, buf: Uint8Array): Record<string, unknown> {
  try {
    return type.decode(buf) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new WireDecodeError((err as Error).message);
  }
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

const EMPTY = new Uint8Array(0);
const bytes = (v: unknown): Uint8Array => (v as Uint8Array | undefined) ?? EMPTY;
const str = (v: unknown): string => (v as string | undefined) ?? '';
const u32 = (v: unknown): number => (v as number | undefined) ?? 0;

function normMeta(m: Record<string, unknown> | null | undefined): NodeMeta {
  const meta: NodeMeta = { signKey: bytes(m?.signKey), vtep: str(m?.vtep), vtepPort: u32(m?.vtepPort), wgKey: str(m?.wgKey), wgPort: u32(m?.wgPort), pmin: u32(m?.pmin), pmax: u32(m?.pmax) };
  const cert = bytes(m?.cert);
  if (cert.length > 0) meta.cert = cert;
  if (m?.scoped === true) {
    meta.scoped = true;
    meta.networks = ((m.networks as string[] | undefined) ?? []).map(shared);
  }
  return meta;
}
function normAlive(a: Record<string, unknown>): AliveMsg {
  return { name: str(a.name), incarnation: u32(a.incarnation), ip: str(a.ip), port: u32(a.port), meta: normMeta(a.meta as Record<string, unknown>) };
}
function normRecord(r: Record<string, unknown>): RecordBytes {
  return { body: bytes(r.body), sig: bytes(r.sig) };
}
function normMessage(m: Record<string, unknown>): Message | null {
  const g = (k: string) => m[k] as Record<string, unknown> | undefined;
  let v: Record<string, unknown> | undefined;
  if ((v = g('ping'))) return { ping: { seqNo: u32(v.seqNo), target: str(v.target), replyIp: str(v.replyIp), replyPort: u32(v.replyPort) } };
  if ((v = g('indirectPing'))) return { indirectPing: { seqNo: u32(v.seqNo), target: str(v.target), targetIp: str(v.targetIp), targetPort: u32(v.targetPort), nack: (v.nack as boolean) ?? false } };
  if ((v = g('ack'))) return { ack: { seqNo: u32(v.seqNo) } };
  if ((v = g('nack'))) return { nack: { seqNo: u32(v.seqNo) } };
  if ((v = g('alive'))) return { alive: normAlive(v) };
  if ((v = g('suspect'))) return { suspect: { name: str(v.name), incarnation: u32(v.incarnation), from: str(v.from) } };
  if ((v = g('dead'))) return { dead: { name: str(v.name), incarnation: u32(v.incarnation), from: str(v.from) } };
  if ((v = g('record'))) return { record: normRecord(v) };
  return null; // unknown kind from a newer peer: skipped (append-only evolution)
}

/** Decode an opened packet. Throws WireDecodeError on malformed bytes. */
export function decodeEnvelope(buf: Uint8Array): Envelope {
  const e = decode(EnvelopeType, buf);
  const msgs: Message[] = [];
  for (const m of (e.msgs as Record<string, unknown>[]) ?? []) {
    const n = normMessage(m);
    if (n) msgs.push(n);
  }
  return { pmin: u32(e.pmin), pmax: u32(e.pmax), from: str(e.from), session: num(e.session), seq: num(e.seq), ts: num(e.ts), msgs };
}

export function encodeStateChunk(c: StateChunk): Uint8Array {
  return StateChunkType.encode(c as object).finish();
}
export function decodeStateChunk(buf: Uint8Array): StateChunk {
  const c = decode(StateChunkType, buf);
  return {
    pmin: u32(c.pmin),
    pmax: u32(c.pmax),
    from: str(c.from),
    join: (c.join as boolean) ?? false,
    nodes: ((c.nodes as Record<string, unknown>[]) ?? []).map((n) => ({ alive: normAlive((n.alive as Record<string, unknown>) ?? {}), state: u32(n.state) })),
    records: ((c.records as Record<string, unknown>[]) ?? []).map(normRecord),
    last: (c.last as boolean) ?? false,
    ping: (c.ping as boolean) ?? false,
    target: str(c.target),
    session: num(c.session),
    seq: num(c.seq),
    ts: num(c.ts),
    replySession: num(c.replySession),
    replySeq: num(c.replySeq),
    ...(u32(c.phase) > 0
      ? {
          phase: u32(c.phase),
          digests: ((c.digests as Record<string, unknown>[]) ?? []).map((g) => ({ network: shared(str(g.network)), owner: shared(str(g.owner)), count: u32(g.count), hash: bytes(g.hash) })),
          membersHash: bytes(c.membersHash),
        }
      : {}),
  };
}

/**
 * Encode a record body: the shared head plus the kind's data under its field (`field` names the
 * RecordBody field, e.g. 'endpoint'). `extra` (already encoded protobuf fields) is appended as a
 * newer node would add fields; only wire-compatibility tests pass it.
 */
export function encodeRecordBody(head: RecordHead, field: string, data: object, extra?: Uint8Array): Uint8Array {
  const b = RecordBodyType.encode(field ? { ...head, [field]: data } : head).finish();
  if (!extra || extra.length === 0) return b;
  const out = new Uint8Array(b.length + extra.length);
  out.set(b, 0);
  out.set(extra, b.length);
  return out;
}

/** Decode a record body: the head, and the decoded message for the kinds' data fields. */
export function decodeRecordBody(body: Uint8Array): { head: RecordHead; fields: Record<string, unknown> } {
  const b = decode(RecordBodyType, body);
  return { head: { kind: u32(b.kind), network: shared(str(b.network)), id: str(b.id), owner: shared(str(b.owner)), version: num(b.version), deleted: (b.deleted as boolean) ?? false }, fields: b };
}

/**
 * One string per distinct name that repeats across records (owner, network, service and port
 * names): strings decoded from a body are fresh copies, ~30 bytes each per record. Bounded: cleared
 * when full, which only unshares.
 */
const names = new Map<string, string>();
function shared(s: string): string {
  if (s.length === 0) return '';
  const c = names.get(s);
  if (c !== undefined) return c;
  if (names.size >= 8192) names.clear();
  names.set(s, s);
  return s;
}

/** Helpers for kinds normalising their decoded data message (`num`: uint64 as a number; `shared`: a repeating name). */
export const fieldOf = { bytes, str, u32, num, shared };
