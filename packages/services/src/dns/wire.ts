/**
 * The DNS wire format (RFC 1035, EDNS0 RFC 6891) as the hot path needs it: an allocation-free
 * parser of a query's header, question and OPT record into a reusable `Question`, and writers of
 * names and records. dns-packet is used only off the hot path (tests, the forwarder's slow paths).
 */

export const TYPE_A = 1;
export const TYPE_NS = 2;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const TYPE_SRV = 33;
export const TYPE_OPT = 41;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
/** Extended rcode 16 (BADVERS): upper 8 bits (1) in the OPT TTL, lower 4 bits (0) in the header. */
export const RCODE_BADVERS = 16;

export const HEADER_LENGTH = 12;
/** UDP payload size without EDNS (RFC 1035). */
export const CLASSIC_UDP_SIZE = 512;
/** Our cap on UDP answers whatever the client offers (DNS flag day 2020: no fragmentation). */
export const MAX_UDP_SIZE = 1232;
/** An OPT record with no options: root name, type, class, ttl, rdlength. */
export const OPT_LENGTH = 11;
export const MAX_NAME_LENGTH = 255;
export const MAX_LABEL_LENGTH = 63;

/** Parse results (negative): why a query cannot be answered normally. */
export const PARSE_OK = 0;
/** Shorter than a header: nothing to answer (no ID to echo). */
export const PARSE_SHORT = -1;
/** QR set: a response, never answered (reflection loops). */
export const PARSE_NOT_QUERY = -2;
/** The header is there but the rest is malformed: FORMERR. */
export const PARSE_FORMERR = -3;
/** Opcode other than QUERY: NOTIMP. */
export const PARSE_NOTIMP = -4;
/** The question name is over 255 bytes or has a label over 63: FORMERR. */
export const PARSE_NAME_TOO_LONG = -5;
/** A compression pointer that does not point strictly backwards: FORMERR. */
export const PARSE_COMPRESSION_LOOP = -6;
/** EDNS version other than 0: BADVERS. */
export const PARSE_BADVERS = -7;

/** The one question of a query, parsed in place. Create once, reuse for every query. */
export class Question {
  id = 0;
  /** Header flags word of the query. */
  flags = 0;
  /** The name in wire form, lowercased, uncompressed, root label included. */
  readonly name = new Uint8Array(MAX_NAME_LENGTH + 1);
  nameLength = 0;
  /** Number of labels (root not counted). */
  labels = 0;
  /** FNV-1a of the lowercased wire name, cut to 30 bits (a small integer in V8: no boxing). */
  hash = 0;
  qtype = 0;
  qclass = 0;
  /** Offset (relative to the message start) where the question ends. */
  questionEnd = 0;
  /** The question name was written without compression, so the query's question can be copied as is. */
  plainName = true;
  /** An OPT record was present. */
  edns = false;
  /** The client's UDP payload size from OPT (0 without EDNS). */
  udpSize = 0;
  ednsVersion = 0;
  /** The DO bit (RFC 3225) of the OPT record. */
  dnssecOk = false;

  /** The lowercased name as text without the trailing dot ('' for the root). Allocates: slow paths only. */
  nameText(): string {
    return nameToText(this.name, 0);
  }
}

const LOWER = new Uint8Array(256);
for (let i = 0; i < 256; i++) LOWER[i] = i >= 65 && i <= 90 ? i + 32 : i;

/**
 * Parse the header, question and (when present) the OPT record of the message at
 * buf[off .. off+len) into `q`. Never throws, never reads outside the range, allocates nothing.
 */
export function parseQuery(buf: Uint8Array, off: number, len: number, q: Question): number {
  if (len < HEADER_LENGTH || off < 0 || off + len > buf.length) return PARSE_SHORT;
  q.id = (buf[off] << 8) | buf[off + 1];
  const flags = (buf[off + 2] << 8) | buf[off + 3];
  q.flags = flags;
  q.edns = false;
  q.udpSize = 0;
  q.ednsVersion = 0;
  q.dnssecOk = false;
  q.nameLength = 0;
  q.questionEnd = HEADER_LENGTH;
  if (flags & 0x8000) return PARSE_NOT_QUERY;
  if ((flags >> 11) & 0xf) return PARSE_NOTIMP;
  const qd = (buf[off + 4] << 8) | buf[off + 5];
  const an = (buf[off + 6] << 8) | buf[off + 7];
  const ns = (buf[off + 8] << 8) | buf[off + 9];
  const ar = (buf[off + 10] << 8) | buf[off + 11];
  if (qd !== 1) return PARSE_FORMERR;
  const end = off + len;
  // Question name.
  let p = off + HEADER_LENGTH;
  let n = 0;
  let labels = 0;
  let hash = 0x811c9dc5;
  let after = -1;
  let lowest = p;
  const name = q.name;
  q.plainName = true;
  for (;;) {
    if (p >= end) return PARSE_FORMERR;
    const l = buf[p];
    if (l === 0) {
      name[n++] = 0;
      hash = Math.imul(hash ^ 0, 0x01000193);
      p++;
      break;
    }
    if ((l & 0xc0) === 0xc0) {
      if (p + 1 >= end) return PARSE_FORMERR;
      const target = off + (((l & 0x3f) << 8) | buf[p + 1]);
      // Only strictly backwards, before every label read so far: no loop can form.
      if (target >= lowest) return PARSE_COMPRESSION_LOOP;
      if (after < 0) after = p + 2;
      q.plainName = false;
      lowest = target;
      p = target;
      continue;
    }
    if (l & 0xc0) return PARSE_FORMERR;
    if (n + l + 1 >= MAX_NAME_LENGTH) return PARSE_NAME_TOO_LONG;
    if (p + 1 + l > end) return PARSE_FORMERR;
    name[n++] = l;
    hash = Math.imul(hash ^ l, 0x01000193);
    for (let i = 1; i <= l; i++) {
      const c = LOWER[buf[p + i]];
      name[n++] = c;
      hash = Math.imul(hash ^ c, 0x01000193);
    }
    labels++;
    p += l + 1;
  }
  if (after >= 0) p = after;
  if (p + 4 > end) return PARSE_FORMERR;
  q.nameLength = n;
  q.labels = labels;
  q.hash = hash & 0x3fffffff;
  q.qtype = (buf[p] << 8) | buf[p + 1];
  q.qclass = (buf[p + 2] << 8) | buf[p + 3];
  p += 4;
  q.questionEnd = p - off;
  // Skip answer and authority records (a query normally has none), then find OPT among the additional ones.
  const skip = an + ns;
  for (let i = 0; i < skip + ar; i++) {
    const nameStart = p;
    p = skipName(buf, p, end);
    if (p < 0 || p + 10 > end) return PARSE_FORMERR;
    const type = (buf[p] << 8) | buf[p + 1];
    const rdlen = (buf[p + 8] << 8) | buf[p + 9];
    if (p + 10 + rdlen > end) return PARSE_FORMERR;
    if (i >= skip && type === TYPE_OPT) {
      // RFC 6891: one OPT, owner the root.
      if (q.edns || p !== nameStart + 1 || buf[nameStart] !== 0) return PARSE_FORMERR;
      q.edns = true;
      q.udpSize = (buf[p + 2] << 8) | buf[p + 3];
      q.ednsVersion = buf[p + 5];
      q.dnssecOk = (buf[p + 6] & 0x80) !== 0;
    }
    p += 10 + rdlen;
  }
  if (q.edns && q.ednsVersion !== 0) return PARSE_BADVERS;
  return PARSE_OK;
}

/** Offset after the (possibly compressed) name at p, or -1. Never follows pointers. */
function skipName(buf: Uint8Array, p: number, end: number): number {
  let total = 0;
  for (;;) {
    if (p >= end) return -1;
    const l = buf[p];
    if (l === 0) return p + 1;
    if ((l & 0xc0) === 0xc0) return p + 2 <= end ? p + 2 : -1;
    if (l & 0xc0) return -1;
    total += l + 1;
    if (total > MAX_NAME_LENGTH) return -1;
    p += l + 1;
  }
}

/** The UDP payload limit for a client: 512 without EDNS, else its size within [512, our cap]. */
export function udpLimit(q: Question): number {
  if (!q.edns) return CLASSIC_UDP_SIZE;
  return q.udpSize < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : q.udpSize > MAX_UDP_SIZE ? MAX_UDP_SIZE : q.udpSize;
}

/** Write an OPT record advertising our UDP size at buf[p]; `extRcode` is the upper 8 bits of the rcode. */
export function writeOpt(buf: Uint8Array, p: number, extRcode: number): number {
  buf[p] = 0;
  buf[p + 1] = 0;
  buf[p + 2] = TYPE_OPT;
  buf[p + 3] = MAX_UDP_SIZE >> 8;
  buf[p + 4] = MAX_UDP_SIZE & 255;
  buf[p + 5] = extRcode;
  buf[p + 6] = 0;
  buf[p + 7] = 0;
  buf[p + 8] = 0;
  buf[p + 9] = 0;
  buf[p + 10] = 0;
  return p + OPT_LENGTH;
}

/** Text ('web.example', no trailing dot, or '' for the root) → wire form. Throws TypeError on a bad name. */
export function textToName(text: string): Uint8Array {
  const t = text.endsWith('.') ? text.slice(0, -1) : text;
  const bytes: number[] = [];
  if (t !== '') {
    for (const label of t.split('.')) {
      const b = Buffer.from(label.toLowerCase(), 'latin1');
      if (b.length === 0 || b.length > MAX_LABEL_LENGTH) throw new TypeError(`bad DNS label in ${JSON.stringify(text)}`);
      bytes.push(b.length, ...b);
    }
  }
  bytes.push(0);
  if (bytes.length > MAX_NAME_LENGTH) throw new TypeError(`DNS name too long: ${text.length} characters`);
  return Uint8Array.from(bytes);
}

/** Wire name at buf[p] (uncompressed) → lowercase text without the trailing dot. */
export function nameToText(buf: Uint8Array, p: number): string {
  const parts: string[] = [];
  for (let guard = 0; guard < 128 && p < buf.length; guard++) {
    const l = buf[p];
    if (l === 0 || l > MAX_LABEL_LENGTH) break;
    parts.push(Buffer.from(buf.subarray(p + 1, p + 1 + l)).toString('latin1'));
    p += l + 1;
  }
  return parts.join('.');
}

/** FNV-1a over a wire name, as parseQuery computes it. */
export function nameHash(name: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name[i], 0x01000193);
  return h & 0x3fffffff;
}

/** nameHash of the wire form of a lowercase dotted name ('' = root), without building it. */
export function textNameHash(text: string): number {
  let h = 0x811c9dc5;
  let start = 0;
  if (text !== '') {
    for (;;) {
      let end = text.indexOf('.', start);
      if (end < 0) end = text.length;
      h = Math.imul(h ^ (end - start), 0x01000193);
      for (let i = start; i < end; i++) h = Math.imul(h ^ (text.charCodeAt(i) & 255), 0x01000193);
      if (end === text.length) break;
      start = end + 1;
    }
  }
  h = Math.imul(h ^ 0, 0x01000193);
  return h & 0x3fffffff;
}

/** The wire name in q equals the lowercase dotted `text`. */
export function sameName(text: string, q: Question): boolean {
  const n = q.name;
  // Wire length = text length + 2 for a non-root name ('a.b' → 1 a 1 b 0), 1 for the root.
  if (q.nameLength !== (text === '' ? 1 : text.length + 2)) return false;
  let p = 0;
  let i = 0;
  while (n[p] !== 0) {
    const l = n[p++];
    if (i > 0 && text.charCodeAt(i++) !== 46) return false;
    for (let k = 0; k < l; k++) if (n[p++] !== text.charCodeAt(i++)) return false;
  }
  return i === text.length;
}

/** The labels of a wire name (lowercase text). */
export function nameLabels(name: Uint8Array): string[] {
  const t = nameToText(name, 0);
  return t === '' ? [] : t.split('.');
}
