/**
 * Query bytes in → response bytes out (or "forward this", or a counted drop): the pure core that
 * the socket server and the dataplane responder share. A query is parsed in place into one
 * reusable `Question`, looked up in the directory, and the response written from the name's
 * pre-encoded answers: the header (ID and RD/CD echoed), the question copied from the query
 * (case kept, as resolvers using 0x20 expect), the answer records that fit, and an OPT record
 * when the query had one. Nothing is allocated on a hit.
 *
 * Limits: over UDP an answer is cut to whole records within the client's size (512 without
 * EDNS, its EDNS size capped at 1232) with TC set; over TCP the whole RRset (up to 65 535 bytes).
 * Errors: malformed → FORMERR (no question echoed when it cannot be parsed), opcode ≠ QUERY →
 * NOTIMP, EDNS version ≠ 0 → BADVERS, class ≠ IN and zone transfers → REFUSED; a message shorter
 * than a header or with QR set (a response: answering it could loop) is dropped, counted.
 */
import type { CounterSet } from '@overlay/dataplane';
import type { ServiceDirectory } from '../directory.js';
import type { DnsCounter } from './counters.js';
import {
  CLASS_IN,
  HEADER_LENGTH,
  OPT_LENGTH,
  PARSE_BADVERS,
  PARSE_NOT_QUERY,
  PARSE_NOTIMP,
  PARSE_OK,
  PARSE_SHORT,
  Question,
  RCODE_FORMERR,
  RCODE_NOERROR,
  RCODE_NOTIMP,
  RCODE_NXDOMAIN,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  TYPE_A,
  TYPE_AAAA,
  TYPE_ANY,
  parseQuery,
  udpLimit,
  writeOpt,
} from './wire.js';

/** `answer()` results that are not a response length. */
export const FORWARD = 0;
export const DROP_SHORT = -1;
export const DROP_NOT_QUERY = -2;
export const DROP_NO_ROOM = -3;

export const MAX_TCP_MESSAGE = 65535;

export interface DnsAnswererOptions {
  directory: ServiceDirectory;
  /** The asker's networks, searched in order: only their services are answered. */
  networks: readonly string[];
  counters: CounterSet<DnsCounter>;
  /** Whether names that are not ours may be forwarded (answer() returns FORWARD); else NXDOMAIN. Default true. */
  forwarding?: boolean;
}

const FLAG_RD = 0x0100;
const FLAG_CD = 0x0010;
const FLAG_AA = 0x0400;
const FLAG_RA = 0x0080;
const FLAG_TC = 0x0200;
const TYPE_IXFR = 251;
const TYPE_AXFR = 252;

export class DnsAnswerer {
  /** The last query parsed (valid until the next call): the forwarder reads it. */
  readonly q = new Question();
  readonly directory: ServiceDirectory;
  readonly networks: readonly string[];
  readonly counters: CounterSet<DnsCounter>;
  readonly forwarding: boolean;

  constructor(o: DnsAnswererOptions) {
    this.directory = o.directory;
    this.networks = o.networks;
    this.counters = o.counters;
    this.forwarding = o.forwarding ?? true;
  }

  /**
   * Answer the query at buf[off .. off+len) into out[outOff .. outOff+outCap). Returns the
   * response length (> 0), FORWARD (0: a valid query for a name that is not ours; `q` holds it),
   * or a DROP_* (< 0, counted). `tcp`: the full answer (no UDP size limit).
   */
  answer(buf: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number, outCap: number, tcp: boolean): number {
    const c = this.counters;
    c.add(c.at.queries);
    const q = this.q;
    const st = parseQuery(buf, off, len, q);
    if (st === PARSE_SHORT) {
      c.add(c.at.drop_short);
      return DROP_SHORT;
    }
    if (st === PARSE_NOT_QUERY) {
      c.add(c.at.drop_not_query);
      return DROP_NOT_QUERY;
    }
    if (st !== PARSE_OK) {
      if (st === PARSE_BADVERS) return this.error(buf, off, out, outOff, outCap, RCODE_NOERROR, 1, true);
      return this.error(buf, off, out, outOff, outCap, st === PARSE_NOTIMP ? RCODE_NOTIMP : RCODE_FORMERR, 0, false);
    }
    if (q.qclass !== CLASS_IN || q.qtype === TYPE_AXFR || q.qtype === TYPE_IXFR) return this.error(buf, off, out, outOff, outCap, RCODE_REFUSED, 0, true);
    const nets = this.networks;
    for (let i = 0; i < nets.length; i++) {
      const e = this.directory.lookup(nets[i], q);
      if (e === undefined) continue;
      let a = this.directory.answers(e, q.qtype === TYPE_ANY ? TYPE_A : q.qtype);
      if (q.qtype === TYPE_ANY && a.ends.length === 0) a = this.directory.answers(e, TYPE_AAAA);
      const head = this.head(buf, off, out, outOff, outCap, RCODE_NOERROR, FLAG_AA);
      if (head < 0) return head;
      const opt = q.edns ? OPT_LENGTH : 0;
      let limit = tcp ? MAX_TCP_MESSAGE : udpLimit(q);
      if (limit > outCap) limit = outCap;
      const room = limit - head - opt;
      const ends = a.ends;
      let k = ends.length;
      while (k > 0 && ends[k - 1] > room) k--;
      const bytes = k === 0 ? 0 : ends[k - 1];
      const text = a.bytes;
      for (let i = 0, d = outOff + head; i < bytes; i++) out[d + i] = text.charCodeAt(i);
      let p = outOff + head + bytes;
      out[outOff + 6] = k >> 8;
      out[outOff + 7] = k & 255;
      if (k < ends.length) {
        out[outOff + 2] |= FLAG_TC >> 8;
        c.add(c.at.truncated);
      }
      if (opt) {
        p = writeOpt(out, p, 0);
        out[outOff + 11] = 1;
      }
      c.add(ends.length === 0 ? c.at.answered_nodata : c.at.answered_noerror);
      return p - outOff;
    }
    if (this.forwarding && !this.isOurs()) return FORWARD;
    return this.error(buf, off, out, outOff, outCap, RCODE_NXDOMAIN, 0, true);
  }

  /**
   * A response with no answer records and `rcode` to a query that answer() returned FORWARD for
   * (parsed again here: `q` may hold a later query by now): SERVFAIL for a forward that failed,
   * REFUSED for one over a limit. Returns the length, or DROP_NO_ROOM / DROP_SHORT.
   */
  respond(buf: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number, outCap: number, rcode: number): number {
    if (parseQuery(buf, off, len, this.q) !== PARSE_OK) return DROP_SHORT;
    return this.error(buf, off, out, outOff, outCap, rcode, 0, true);
  }

  /** Names answered here or nowhere (never forwarded): one label, `…tasks.<svc>`, `_port._proto.<svc>`. */
  private isOurs(): boolean {
    const q = this.q;
    if (q.labels <= 1) return true;
    const n = q.name;
    // Offsets of the last two labels.
    let p = 0;
    let prev = -1;
    let prev2 = -1;
    while (n[p] !== 0) {
      prev2 = prev;
      prev = p;
      p += n[p] + 1;
    }
    if (prev2 >= 0 && n[prev2] === 5 && n[prev2 + 1] === 116 /* t */ && n[prev2 + 2] === 97 && n[prev2 + 3] === 115 && n[prev2 + 4] === 107 && n[prev2 + 5] === 115) return true;
    return q.labels === 3 && n[1] === 95 /* _ */ && n[n[0] + 2] === 95;
  }

  private error(buf: Uint8Array, off: number, out: Uint8Array, outOff: number, outCap: number, rcode: number, extRcode: number, withQuestion: boolean): number {
    const c = this.counters;
    const q = this.q;
    let head: number;
    if (withQuestion) {
      head = this.head(buf, off, out, outOff, outCap, rcode, rcode === RCODE_NXDOMAIN ? FLAG_AA : 0);
      if (head < 0) return head;
    } else {
      if (outCap < HEADER_LENGTH) return this.noRoom();
      out[outOff] = buf[off];
      out[outOff + 1] = buf[off + 1];
      out[outOff + 2] = 0x80 | (buf[off + 2] & 0x79); // QR, opcode and RD echoed
      out[outOff + 3] = rcode;
      out.fill(0, outOff + 4, outOff + 12);
      head = HEADER_LENGTH;
    }
    let p = outOff + head;
    if (withQuestion && q.edns) {
      if (head + OPT_LENGTH > outCap) return this.noRoom();
      p = writeOpt(out, p, extRcode);
      out[outOff + 11] = 1;
    }
    c.add(
      extRcode === 1
        ? c.at.answered_badvers
        : rcode === RCODE_FORMERR
          ? c.at.answered_formerr
          : rcode === RCODE_NOTIMP
            ? c.at.answered_notimp
            : rcode === RCODE_REFUSED
              ? c.at.answered_refused
              : rcode === RCODE_SERVFAIL
                ? c.at.answered_servfail
                : rcode === RCODE_NXDOMAIN
                  ? c.at.answered_nxdomain
                  : c.at.answered_noerror,
    );
    return p - outOff;
  }

  /** Header + question; returns their length or DROP_NO_ROOM. AN/NS/AR counts zero. */
  private head(buf: Uint8Array, off: number, out: Uint8Array, outOff: number, outCap: number, rcode: number, extraFlags: number): number {
    const q = this.q;
    const qlen = q.plainName ? q.questionEnd - HEADER_LENGTH : q.nameLength + 4;
    const head = HEADER_LENGTH + qlen;
    if (head + (q.edns ? OPT_LENGTH : 0) > outCap) return this.noRoom();
    const flags = 0x8000 | extraFlags | FLAG_RA | (q.flags & (FLAG_RD | FLAG_CD)) | rcode;
    out[outOff] = q.id >> 8;
    out[outOff + 1] = q.id & 255;
    out[outOff + 2] = flags >> 8;
    out[outOff + 3] = flags & 255;
    out[outOff + 4] = 0;
    out[outOff + 5] = 1;
    out.fill(0, outOff + 6, outOff + 12);
    if (q.plainName) copyBytes(buf, off + HEADER_LENGTH, qlen, out, outOff + HEADER_LENGTH);
    else {
      copyBytes(q.name, 0, q.nameLength, out, outOff + HEADER_LENGTH);
      const t = outOff + HEADER_LENGTH + q.nameLength;
      out[t] = q.qtype >> 8;
      out[t + 1] = q.qtype & 255;
      out[t + 2] = q.qclass >> 8;
      out[t + 3] = q.qclass & 255;
    }
    return head;
  }

  private noRoom(): number {
    this.counters.add(this.counters.at.drop_no_room);
    return DROP_NO_ROOM;
  }
}

/** Copy src[s .. s+n) to dst[d ..) without creating a view. */
export function copyBytes(src: Uint8Array, s: number, n: number, dst: Uint8Array, d: number): void {
  if (src === dst) {
    dst.copyWithin(d, s, s + n);
    return;
  }
  for (let i = 0; i < n; i++) dst[d + i] = src[s + i];
}
