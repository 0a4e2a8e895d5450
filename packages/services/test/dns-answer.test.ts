import * as dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { DnsAnswerer, FORWARD, DROP_SHORT, DROP_NOT_QUERY } from '../src/dns/answer.js';
import { createDnsCounters } from '../src/dns/counters.js';
import { fixtureDirectory, query } from './dns-fixture.js';

type Decoded = dnsPacket.DecodedPacket & { rcode: string };

function setup(networks = ['blue'], forwarding = true) {
  const directory = fixtureDirectory();
  const counters = createDnsCounters();
  const a = new DnsAnswerer({ directory, networks, counters, forwarding });
  const out = new Uint8Array(70_000);
  const ask = (q: Uint8Array, tcp = false): Decoded | number => {
    const n = a.answer(q, 0, q.length, out, 0, out.length, tcp);
    if (n <= 0) return n;
    return dnsPacket.decode(Buffer.from(out.subarray(0, n))) as Decoded;
  };
  const askOk = (q: Uint8Array, tcp = false): Decoded => {
    const r = ask(q, tcp);
    if (typeof r === 'number') throw new Error(`no answer: ${r}`);
    return r;
  };
  return { directory, counters, a, ask, askOk };
}

const data = (r: Decoded) => (r.answers ?? []).map((x) => (x as { data: unknown }).data);

describe('DNS answers from the service directory', () => {
  it('answers a VIP service with its VIP (A and AAAA), authoritative, ID and RD echoed, TTL 5', () => {
    const { askOk } = setup();
    const r = askOk(query('web', 'A', { id: 777 }));
    expect(r.id).toBe(777);
    expect(r.flag_qr && r.flag_aa && r.flag_rd && r.flag_ra).toBe(true);
    expect(r.rcode).toBe('NOERROR');
    expect(r.questions).toEqual([{ name: 'web', type: 'A', class: 'IN' }]);
    expect(data(r)).toEqual(['198.19.1.10']);
    expect((r.answers![0] as { ttl?: number }).ttl).toBe(5);
    expect(data(askOk(query('web', 'AAAA')))).toEqual(['2001:db8:1::10']);
  });

  it('tasks.<svc> answers the healthy instances, all.tasks.<svc> every one', () => {
    const { askOk } = setup();
    expect(data(askOk(query('tasks.web', 'A'))).sort()).toEqual(['198.19.0.11', '198.19.0.12']);
    expect(data(askOk(query('all.tasks.web', 'A'))).sort()).toEqual(['198.19.0.11', '198.19.0.12', '198.19.0.13']);
    expect(data(askOk(query('web-3.tasks.web', 'A')))).toEqual(['198.19.0.13']);
  });

  it('a DNSRR service answers its healthy instances, in panic mode all of them; TTL per service', () => {
    const { askOk, directory } = setup();
    // db: one healthy of two = not fewer than half → healthy only.
    const r = askOk(query('db', 'A'));
    expect(data(r)).toEqual(['198.19.0.21']);
    expect((r.answers![0] as { ttl?: number }).ttl).toBe(30);
    expect(data(askOk(query('db', 'AAAA')))).toEqual(['2001:db8::21']);
    directory.setHealthy('blue', 'db', 'db-1', false);
    expect(data(askOk(query('db', 'A'))).sort()).toEqual(['198.19.0.21', '198.19.0.22']);
  });

  it('NODATA for a name without AAAA records: NOERROR, no answer', () => {
    const { askOk, counters } = setup();
    const r = askOk(query('v4only', 'AAAA'));
    expect(r.rcode).toBe('NOERROR');
    expect(r.answers).toEqual([]);
    expect(counters.get('answered_nodata')).toBe(1);
    expect(askOk(query('v4only', 'MX')).answers).toEqual([]);
    // ANY gets one RRset (RFC 8482): the A records, else the AAAA ones.
    expect(data(askOk(query('web', 'ANY' as dnsPacket.RecordType)))).toEqual(['198.19.1.10']);
  });

  it('SRV with ports: per service, per named port, targets that resolve', () => {
    const { askOk } = setup();
    const r = askOk(query('_pg._tcp.db', 'SRV'));
    expect(data(r)).toEqual([{ priority: 0, weight: 1, port: 5432, target: 'db-1.tasks.db' }]);
    const all = data(askOk(query('all.tasks.db', 'SRV'))) as Array<{ port: number; target: string }>;
    expect(all.map((x) => `${x.target}:${x.port}`).sort()).toEqual(['db-1.tasks.db:5432', 'db-1.tasks.db:9187', 'db-2.tasks.db:5432']);
    expect(data(askOk(query('_http._tcp.web', 'SRV')))).toHaveLength(2);
    expect(data(askOk(query('db-1.tasks.db', 'A')))).toEqual(['198.19.0.21']);
  });

  it('PTR for instance addresses and VIPs, IPv4 and IPv6', () => {
    const { askOk } = setup();
    expect(data(askOk(query('12.0.19.198.in-addr.arpa', 'PTR')))).toEqual(['web-2.tasks.web']);
    expect(data(askOk(query('10.1.19.198.in-addr.arpa', 'PTR')))).toEqual(['web']);
    const v6 = '1.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa';
    expect(data(askOk(query(v6, 'PTR')))).toEqual(['db-1.tasks.db']);
  });

  it('matches names case-insensitively and echoes the question as asked', () => {
    const { askOk } = setup();
    const r = askOk(query('TaSkS.WeB', 'A'));
    expect(r.questions![0].name).toBe('TaSkS.WeB');
    expect(data(r)).toHaveLength(2);
  });

  it('answers only services of the asker’s networks: another network’s name is NXDOMAIN, never forwarded', () => {
    const blue = setup(['blue']);
    expect(blue.askOk(query('secret', 'A')).rcode).toBe('NXDOMAIN');
    expect(blue.askOk(query('tasks.secret', 'A')).rcode).toBe('NXDOMAIN');
    const red = setup(['red']);
    expect(data(red.askOk(query('secret', 'A')))).toEqual(['198.19.9.1']);
    expect(red.askOk(query('web', 'A')).rcode).toBe('NXDOMAIN');
    const both = setup(['red', 'blue']);
    expect(data(both.askOk(query('web', 'A')))).toEqual(['198.19.1.10']);
  });

  it('forwards names that are not ours (or NXDOMAIN when forwarding is off)', () => {
    expect(setup().ask(query('example.org', 'A'))).toBe(FORWARD);
    expect(setup(['blue'], false).askOk(query('example.org', 'A')).rcode).toBe('NXDOMAIN');
  });

  it('cuts UDP answers to 512 bytes without EDNS and to the EDNS size (capped at 1232) with TC; TCP gets all 300', () => {
    const { a, askOk, counters } = setup();
    const plain = askOk(query('all.tasks.big', 'A'));
    expect(plain.flag_tc).toBe(true);
    expect(plain.answers!.length).toBe(Math.floor((512 - 12 - 19) / 16));
    const q = query('all.tasks.big', 'A');
    const raw = new Uint8Array(2000);
    expect(a.answer(q, 0, q.length, raw, 0, raw.length, false)).toBeLessThanOrEqual(512);
    const e = askOk(query('all.tasks.big', 'A', { edns: 4096 }));
    expect(e.flag_tc).toBe(true);
    expect(e.answers!.length).toBe(Math.floor((1232 - 12 - 19 - 11) / 16));
    const opt = e.additionals!.find((x) => x.type === 'OPT') as dnsPacket.OptAnswer;
    expect(opt.udpPayloadSize).toBe(1232);
    const small = askOk(query('all.tasks.big', 'A', { edns: 100 }));
    expect(small.answers!.length).toBe(Math.floor((512 - 12 - 19 - 11) / 16));
    const tcp = askOk(query('all.tasks.big', 'A'), true);
    expect(tcp.flag_tc).toBe(false);
    expect(new Set(data(tcp)).size).toBe(300);
    expect(counters.get('truncated')).toBe(4);
  });

  it('reflects changes: a new instance, a removed one, a removed service', () => {
    const { ask, askOk, directory } = setup();
    directory.updateInstance('blue', 'v4only', { id: 'b', addresses: ['198.19.0.32'], healthy: true });
    expect(data(askOk(query('tasks.v4only', 'A'))).sort()).toEqual(['198.19.0.31', '198.19.0.32']);
    directory.removeInstance('blue', 'v4only', 'a');
    expect(data(askOk(query('tasks.v4only', 'A')))).toEqual(['198.19.0.32']);
    expect(askOk(query('a.tasks.v4only', 'A')).rcode).toBe('NXDOMAIN');
    directory.removeService('blue', 'v4only');
    expect(askOk(query('v4only', 'A')).rcode).toBe('NXDOMAIN');
    // Reverse names we no longer hold go upstream like any other.
    expect(ask(query('32.0.19.198.in-addr.arpa', 'PTR'))).toBe(FORWARD);
  });

  it('bad input: short and response messages dropped (counted), FORMERR, NOTIMP, REFUSED, BADVERS', () => {
    const { ask, askOk, counters } = setup();
    expect(ask(new Uint8Array(5))).toBe(DROP_SHORT);
    const resp = query('web', 'A');
    resp[2] |= 0x80;
    expect(ask(resp)).toBe(DROP_NOT_QUERY);
    const two = query('web', 'A');
    two[5] = 2;
    const f = ask(two) as Decoded;
    expect(f.rcode).toBe('FORMERR');
    const op = query('web', 'A');
    op[2] |= 0x20; // opcode 4 (NOTIFY)
    expect((ask(op) as Decoded).rcode).toBe('NOTIMP');
    const chaos = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'TXT', name: 'version.bind', class: 'CH' }] });
    expect(askOk(chaos).rcode).toBe('REFUSED');
    expect(askOk(query('web', 'AXFR')).rcode).toBe('REFUSED');
    const v1 = query('web', 'A', { edns: 1232 });
    v1[v1.length - 5] = 1; // EDNS version 1
    const bv = askOk(v1);
    expect((bv.additionals![0] as dnsPacket.OptAnswer).extendedRcode).toBe(1); // 1 << 4 = 16, BADVERS
    // A compression loop in the question: a pointer to itself.
    const loop = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect((ask(loop) as Decoded).rcode).toBe('FORMERR');
    // An oversized name: 5 labels of 63 bytes.
    const long = Buffer.concat([Buffer.from([0, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 97)])), Buffer.from([0, 0, 1, 0, 1])]);
    expect((ask(long) as Decoded).rcode).toBe('FORMERR');
    expect(counters.get('drop_short') + counters.get('drop_not_query')).toBe(2);
    expect(counters.get('answered_formerr')).toBe(3);
    expect(counters.get('answered_badvers')).toBe(1);
  });

  it('a compressed question name (pointing backwards, into the header) is read; the question is written out uncompressed', () => {
    const { askOk } = setup();
    // Name = pointer to offset 11, the low byte of ARCOUNT (0): the root name.
    const msg = Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 11, 0, 1, 0, 1]);
    const r = askOk(msg);
    expect(r.rcode).toBe('NXDOMAIN');
    expect(r.questions).toEqual([{ name: '.', type: 'A', class: 'IN' }]);
  });
});
