import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { ServiceDirectory, reverseName } from '../src/directory.js';
import { PARSE_OK, Question, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, parseQuery } from '../src/dns/wire.js';

/** The question of a query for `name` as the responder parses it (any case). */
function question(name: string, type: 'A' | 'PTR' = 'A'): Question {
  const buf = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type, name }] });
  const q = new Question();
  expect(parseQuery(buf, 0, buf.length, q)).toBe(PARSE_OK);
  return q;
}
/** Records in the answer of `name` for `qtype` through the wire lookup; undefined when the name does not exist. */
const wire = (d: ServiceDirectory, net: string, name: string, qtype: number) => {
  const e = d.lookup(net, question(name, qtype === TYPE_PTR ? 'PTR' : 'A'));
  return e === undefined ? undefined : d.answers(e, qtype);
};
const ptrTargets = (d: ServiceDirectory, net: string, name: string) => {
  const a = wire(d, net, name, TYPE_PTR);
  if (a === undefined) return undefined;
  const msg = dnsPacket.decode(Buffer.concat([dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'PTR', name }] }).subarray(0, 12 + 4 + name.length + 2), Buffer.from(a.bytes, 'latin1')]).fill(0, 6, 8).fill(a.ends.length, 7, 8));
  return (msg.answers ?? []).map((r) => (r as { data: string }).data).sort();
};
const lazyCount = (d: ServiceDirectory, net: string) => (d as unknown as { networks: Map<string, { lazy: Set<unknown> }> }).networks.get(net)!.lazy.size;

describe('ServiceDirectory names built on demand', () => {
  it('<id>.tasks.<svc> and reverse names answer through the wire lookup (any case) and by text, and follow changes', () => {
    const d = new ServiceDirectory();
    d.setService({ name: 'web', network: 'n' });
    d.updateInstance('n', 'web', { id: 'w1', addresses: ['198.19.0.7', '2001:db8::7'], ports: [{ port: 80, proto: 'tcp' }], healthy: true });
    expect(wire(d, 'n', 'W1.Tasks.WEB', TYPE_A)!.ends).toHaveLength(1);
    expect(wire(d, 'n', 'w1.tasks.web', TYPE_AAAA)!.ends).toHaveLength(1);
    expect(wire(d, 'n', 'w1.tasks.web', TYPE_SRV)!.ends).toHaveLength(1);
    expect(d.lookupText('n', 'w1.tasks.web.')).toBe(d.lookup('n', question('w1.tasks.web'))); // kept: one entry
    expect(ptrTargets(d, 'n', '7.0.19.198.in-addr.arpa')).toEqual(['w1.tasks.web']);
    expect(ptrTargets(d, 'n', reverseName(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 7])))).toEqual(['w1.tasks.web']);
    // Not names: another id, service or network, a non-canonical reverse name, an address nobody has.
    for (const name of ['w2.tasks.web', 'w1.tasks.db', 'x.w1.tasks.web', '07.0.19.198.in-addr.arpa', '8.0.19.198.in-addr.arpa', '0.19.198.in-addr.arpa']) {
      expect(d.lookup('n', question(name)), name).toBeUndefined();
      expect(d.lookupText('n', name), name).toBeUndefined();
    }
    expect(d.lookup('other', question('w1.tasks.web'))).toBeUndefined();
    // The address changes: the old reverse name is gone, the new one answers; the instance name follows.
    d.updateInstance('n', 'web', { id: 'w1', addresses: ['198.19.0.8'], healthy: true });
    expect(wire(d, 'n', '7.0.19.198.in-addr.arpa', TYPE_PTR)).toBeUndefined();
    expect(ptrTargets(d, 'n', '8.0.19.198.in-addr.arpa')).toEqual(['w1.tasks.web']);
    expect(wire(d, 'n', 'w1.tasks.web', TYPE_AAAA)!.ends).toHaveLength(0); // NODATA now
    // Another service takes the same address: the reverse name answers both.
    d.setService({ name: 'db', network: 'n', vip: ['198.19.0.8'] });
    d.updateInstance('n', 'db', { id: 'd1', addresses: ['198.19.0.8'], healthy: true });
    expect(ptrTargets(d, 'n', '8.0.19.198.in-addr.arpa')).toEqual(['d1.tasks.db', 'db', 'w1.tasks.web']);
    d.removeInstance('n', 'web', 'w1');
    expect(d.lookup('n', question('w1.tasks.web'))).toBeUndefined();
    expect(ptrTargets(d, 'n', '8.0.19.198.in-addr.arpa')).toEqual(['d1.tasks.db', 'db']);
    d.removeService('n', 'db');
    expect(d.lookup('n', question('8.0.19.198.in-addr.arpa', 'PTR'))).toBeUndefined();
  });

  it('an instance named all shares all.tasks.<svc> with the service', () => {
    const d = new ServiceDirectory();
    d.setService({ name: 'web', network: 'n' });
    d.updateInstance('n', 'web', { id: 'all', addresses: ['198.19.0.1'], healthy: true });
    d.updateInstance('n', 'web', { id: 'b', addresses: ['198.19.0.2'], healthy: false });
    // all.tasks.web: every instance (2) plus the instance named all (1).
    expect(wire(d, 'n', 'all.tasks.web', TYPE_A)!.ends).toHaveLength(3);
  });

  it('a built entry stays until a service it names changes: a change elsewhere keeps it, every name asked is kept once', () => {
    const d = new ServiceDirectory();
    d.setService({ name: 'web', network: 'n' });
    d.setService({ name: 'db', network: 'n' });
    const n = 3000;
    for (let i = 0; i < n; i++) d.updateInstance('n', 'web', { id: `i${i}`, addresses: [`198.19.${i >> 8}.${i & 255}`], healthy: true });
    d.updateInstance('n', 'db', { id: 'd1', addresses: ['198.19.200.1'], healthy: true });
    const e = d.lookup('n', question('i7.tasks.web'))!;
    const p = d.lookup('n', question('7.0.19.198.in-addr.arpa', 'PTR'))!;
    const dbName = d.lookup('n', question('d1.tasks.db'))!;
    d.setHealthy('n', 'db', 'd1', false);
    expect(d.lookup('n', question('i7.tasks.web'))).toBe(e);
    expect(d.lookup('n', question('7.0.19.198.in-addr.arpa', 'PTR'))).toBe(p);
    const dbAgain = d.lookup('n', question('d1.tasks.db'))!;
    expect(dbAgain).not.toBe(dbName);
    d.setHealthy('n', 'web', 'i7', false);
    expect(d.lookup('n', question('i7.tasks.web'))).not.toBe(e);
    expect(d.lookup('n', question('d1.tasks.db'))).toBe(dbAgain);
    // Every instance name asked, twice: built once each, then hits.
    for (let i = 0; i < n; i++) expect(wire(d, 'n', `i${i}.tasks.web`, TYPE_A)!.ends).toHaveLength(1);
    const built = lazyCount(d, 'n');
    expect(built).toBe(n + 1);
    for (let i = 0; i < n; i++) expect(d.lookup('n', question(`i${i}.tasks.web`))!.key).toBe(`i${i}.tasks.web`);
    expect(lazyCount(d, 'n')).toBe(built);
    d.removeService('n', 'web');
    expect(wire(d, 'n', 'tasks.db', TYPE_A)!.ends).toHaveLength(1); // panic: the one unhealthy instance
    expect(lazyCount(d, 'n')).toBe(1);
  });
});
