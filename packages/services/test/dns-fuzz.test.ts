import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ServiceDirectory } from '../src/directory.js';
import { DnsAnswerer, FORWARD } from '../src/dns/answer.js';
import { createDnsCounters } from '../src/dns/counters.js';
import { PARSE_OK, Question, parseQuery } from '../src/dns/wire.js';
import { fixtureDirectory, query } from './dns-fixture.js';

type Decoded = dnsPacket.DecodedPacket & { rcode: string };

const label = fc.stringMatching(/^[a-zA-Z0-9_-]{1,20}$/);
const qname = fc.array(label, { minLength: 1, maxLength: 6 }).map((l) => l.join('.'));
const qtype = fc.constantFrom<dnsPacket.RecordType>('A', 'AAAA', 'SRV', 'PTR', 'MX', 'TXT');

describe('DNS wire: fast-check round trips through dns-packet', () => {
  it('parseQuery reads what dns-packet writes: ID, RD, name (lowercased), type, class, EDNS size and DO', () => {
    const q = new Question();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65535 }), fc.boolean(), qname, qtype, fc.option(fc.integer({ min: 1, max: 65535 })) /* dns-packet writes 0 as 4096 */, fc.boolean(), (id, rd, name, type, edns, dnssecOk) => {
        const msg = dnsPacket.encode({
          type: 'query',
          id,
          flags: rd ? dnsPacket.RECURSION_DESIRED : 0,
          questions: [{ name, type, class: 'IN' }],
          additionals: edns === null ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: edns, flags: dnssecOk ? dnsPacket.DNSSEC_OK : 0 } as dnsPacket.Answer],
        });
        expect(parseQuery(msg, 0, msg.length, q)).toBe(PARSE_OK);
        expect(q.id).toBe(id);
        expect((q.flags & 0x0100) !== 0).toBe(rd);
        expect(q.nameText()).toBe(name.toLowerCase());
        expect(q.qtype).toBe(dnsPacket.encode({ questions: [{ name: 'x', type }] }).readUInt16BE(12 + 3));
        expect(q.qclass).toBe(1);
        expect(q.edns).toBe(edns !== null);
        if (edns !== null) {
          expect(q.udpSize).toBe(edns);
          expect(q.dnssecOk).toBe(dnssecOk);
        }
        expect(q.questionEnd).toBe(12 + Buffer.byteLength(name) + 2 + 4);
      }),
      { numRuns: 2000 },
    );
  });

  it('answers decode with dns-packet and hold exactly the model’s records (random directories, random health)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ healthy: fc.boolean(), v4: fc.integer({ min: 1, max: 254 }), v6: fc.boolean(), port: fc.integer({ min: 1, max: 65535 }) }), { minLength: 0, maxLength: 40 }),
        fc.integer({ min: 0, max: 600 }),
        fc.constantFrom('', 'tasks.', 'all.tasks.'),
        fc.constantFrom<dnsPacket.RecordType>('A', 'AAAA', 'SRV'),
        fc.integer({ min: 0, max: 65535 }),
        (insts, ttl, prefix, type, id) => {
          const d = new ServiceDirectory();
          d.setService({ name: 'svc', network: 'n', ttl });
          insts.forEach((x, i) =>
            d.updateInstance('n', 'svc', { id: `i${i}`, addresses: [`198.19.3.${x.v4}`, ...(x.v6 ? [`2001:db8::${i + 1}`] : [])], ports: [{ port: x.port, proto: 'udp' }], healthy: x.healthy }),
          );
          const a = new DnsAnswerer({ directory: d, networks: ['n'], counters: createDnsCounters() });
          const msg = query(`${prefix}svc`, type, { id, edns: 1232 });
          const out = new Uint8Array(65535);
          const n = a.answer(msg, 0, msg.length, out, 0, out.length, true);
          const r = dnsPacket.decode(Buffer.from(out.subarray(0, n))) as Decoded;
          expect(r.id).toBe(id);
          expect(r.rcode).toBe('NOERROR');
          const healthy = insts.map((x, i) => ({ ...x, i })).filter((x) => x.healthy);
          const chosen = prefix === 'all.tasks.' || healthy.length * 2 < insts.length ? insts.map((x, i) => ({ ...x, i })) : healthy;
          const expected =
            type === 'A'
              ? chosen.map((x) => `198.19.3.${x.v4}`)
              : type === 'AAAA'
                ? chosen.filter((x) => x.v6).map((x) => `2001:db8::${x.i + 1}`)
                : chosen.map((x) => `0 1 ${x.port} i${x.i}.tasks.svc`);
          const got = (r.answers ?? []).map((x) => {
            const dd = (x as { data: unknown }).data;
            return typeof dd === 'string' ? dd : `${(dd as dnsPacket.SrvAnswer['data']).priority} ${(dd as dnsPacket.SrvAnswer['data']).weight} ${(dd as dnsPacket.SrvAnswer['data']).port} ${(dd as dnsPacket.SrvAnswer['data']).target}`;
          });
          expect(got.sort()).toEqual(expected.sort());
          for (const x of r.answers ?? []) expect((x as { ttl?: number }).ttl).toBe(ttl);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('DNS answerer fuzz: 10^5 random and mutated queries', () => {
  it('never throws; every query is answered (a response dns-packet can read), forwarded, or a counted drop', () => {
    const counters = createDnsCounters();
    const a = new DnsAnswerer({ directory: fixtureDirectory(), networks: ['blue'], counters });
    const seeds = [
      query('web', 'A', { edns: 1232 }),
      query('all.tasks.big', 'A'),
      query('_pg._tcp.db', 'SRV', { edns: 512 }),
      query('12.0.19.198.in-addr.arpa', 'PTR'),
      query('example.org', 'AAAA'),
      Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 11, 0, 1, 0, 1]),
    ];
    let seed = 0x9e3779b9;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    const out = new Uint8Array(1232);
    const N = 100_000;
    let answered = 0;
    let forwarded = 0;
    let unreadable = 0;
    let throws = 0;
    let badHeader = 0;
    for (let i = 0; i < N; i++) {
      let msg: Uint8Array;
      if (i % 4 === 0) {
        msg = new Uint8Array(Math.floor(rnd() * 300));
        for (let j = 0; j < msg.length; j++) msg[j] = rnd() * 256;
        if (msg.length > 5 && rnd() < 0.7) {
          msg[2] &= 0x7f;
          msg[4] = 0;
          msg[5] = 1;
        }
      } else {
        const s = seeds[i % seeds.length];
        msg = Uint8Array.from(s);
        const flips = 1 + Math.floor(rnd() * 4);
        for (let f = 0; f < flips; f++) {
          const r = rnd();
          const at = Math.floor(rnd() * msg.length);
          if (r < 0.6) msg[at] = rnd() * 256;
          else if (r < 0.8) msg = msg.subarray(0, at);
          else msg = Uint8Array.from([...msg.subarray(0, at), ...Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => Math.floor(rnd() * 256)), ...msg.subarray(at)]);
        }
      }
      try {
        const n = a.answer(msg, 0, msg.length, out, 0, out.length, false);
        if (n === FORWARD) forwarded++;
        else if (n > 0) {
          answered++;
          if (n > 1232 || out[0] !== msg[0] || out[1] !== msg[1]) badHeader++;
          try {
            dnsPacket.decode(Buffer.from(out.subarray(0, n)));
          } catch {
            unreadable++;
          }
        }
      } catch {
        throws++;
      }
    }
    const c = counters.snapshot();
    const answers = Object.entries(c).filter(([k]) => k.startsWith('answered_')).reduce((s, [, v]) => s + v, 0);
    const drops = c.drop_short + c.drop_not_query + c.drop_no_room;
    expect(throws).toBe(0);
    expect(unreadable).toBe(0);
    expect(badHeader).toBe(0);
    expect(c.queries).toBe(N);
    expect(answers).toBe(answered);
    expect(answers + drops + forwarded).toBe(N);
    expect(answered).toBeGreaterThan(N / 2);
    expect(c.answered_formerr).toBeGreaterThan(0);
  });
});
