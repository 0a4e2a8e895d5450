/**
 * Answer records encoded once per name and query type: the answer section's bytes with owner names
 * pointing at the question (0xc00c), so a query costs a copy.
 */
import type { Instance, NameEntry, Service } from './directory-index.js';
import { CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, textToName } from './dns/wire.js';

/** Answer records of one name for one query type, encoded: owner names point at the question (0xc00c). */
export interface EncodedAnswers {
  /**
   * The answer section's bytes, one char per byte (latin1): a string costs its length plus a
   * small header, where a typed array per answer costs ~500 bytes of heap and bookkeeping.
   */
  readonly bytes: string;
  /** End offset in `bytes` of each record, so a truncated answer keeps whole records. */
  readonly ends: readonly number[];
}

export const EMPTY: EncodedAnswers = { bytes: '', ends: [] };

/** The instances a name of `svc` answers: every one (`all`) or the healthy selection. */
export type Selector = (svc: Service, all: boolean) => Instance[];

/** The answers of `entry` for `qtype` (A, AAAA, SRV, PTR), from its refs. */
export function encodeAnswers(entry: NameEntry, qtype: number, selected: Selector): EncodedAnswers {
  const w = new RecordWriter();
  for (const r of Array.isArray(entry.refs) ? entry.refs : [entry.refs]) {
    const svc = r.service;
    const ttl = svc.ttl;
    if (r.kind === 'ptr') {
      if (qtype === TYPE_PTR) w.record(TYPE_PTR, ttl, textToName(r.instance ? `${r.instance.id}.tasks.${svc.name}` : svc.name));
      continue;
    }
    let insts: Instance[];
    if (r.kind === 'inst') insts = [r.instance!];
    else if (r.kind === 'svc' && svc.mode === 'vip' && qtype !== TYPE_SRV) {
      if (qtype === TYPE_A && svc.vip4 !== undefined) w.a(ttl, svc.vip4);
      else if (qtype === TYPE_AAAA && svc.vip6) w.record(TYPE_AAAA, ttl, svc.vip6);
      continue;
    } else insts = selected(svc, r.kind === 'all');
    for (const inst of insts) {
      if (qtype === TYPE_A) for (const a of inst.v4) w.a(ttl, a);
      else if (qtype === TYPE_AAAA) for (const a of inst.v6) w.record(TYPE_AAAA, ttl, a);
      else if (qtype === TYPE_SRV) {
        const target = textToName(`${inst.id}.tasks.${svc.name}`);
        for (const p of inst.ports) {
          if (r.kind === 'port' && (p.name !== r.portName || p.proto !== r.proto)) continue;
          w.srv(ttl, p.port, target);
        }
      }
    }
  }
  return w.done();
}

class RecordWriter {
  private bytes: number[] = [];
  private ends: number[] = [];

  record(type: number, ttl: number, rdata: Uint8Array): void {
    const b = this.bytes;
    b.push(0xc0, 0x0c, type >> 8, type & 255, CLASS_IN >> 8, CLASS_IN & 255, (ttl >>> 24) & 255, (ttl >>> 16) & 255, (ttl >>> 8) & 255, ttl & 255, rdata.length >> 8, rdata.length & 255);
    for (let i = 0; i < rdata.length; i++) b.push(rdata[i]);
    this.ends.push(b.length);
  }

  a(ttl: number, v4: number): void {
    this.record(TYPE_A, ttl, Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255));
  }

  srv(ttl: number, port: number, target: Uint8Array): void {
    const rd = new Uint8Array(6 + target.length);
    rd[3] = 1; // priority 0, weight 1
    rd[4] = port >> 8;
    rd[5] = port & 255;
    rd.set(target, 6);
    this.record(TYPE_SRV, ttl, rd);
  }

  done(): EncodedAnswers {
    if (this.ends.length === 0) return EMPTY;
    return { bytes: Buffer.from(this.bytes).toString('latin1'), ends: this.ends };
  }
}
