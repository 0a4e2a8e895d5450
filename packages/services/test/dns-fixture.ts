/** A directory shared by the DNS tests: two networks, VIP and DNSRR services, a 300-instance service. */
import * as dnsPacket from 'dns-packet';
import { ServiceDirectory } from '../src/directory.js';

export function fixtureDirectory(): ServiceDirectory {
  const d = new ServiceDirectory();
  d.setService({ name: 'web', network: 'blue', vip: ['198.19.1.10', '2001:db8:1::10'] });
  for (let i = 1; i <= 3; i++)
    d.updateInstance('blue', 'web', { id: `web-${i}`, addresses: [`198.19.0.${10 + i}`], ports: [{ name: 'http', port: 8080, proto: 'tcp' }], healthy: i !== 3 });
  d.setService({ name: 'db', network: 'blue', ttl: 30 });
  d.updateInstance('blue', 'db', { id: 'db-1', addresses: ['198.19.0.21', '2001:db8::21'], ports: [{ name: 'pg', port: 5432, proto: 'tcp' }, { name: 'metrics', port: 9187, proto: 'tcp' }], healthy: true });
  d.updateInstance('blue', 'db', { id: 'db-2', addresses: ['198.19.0.22', '2001:db8::22'], ports: [{ name: 'pg', port: 5432, proto: 'tcp' }], healthy: false });
  d.setService({ name: 'v4only', network: 'blue' });
  d.updateInstance('blue', 'v4only', { id: 'a', addresses: ['198.19.0.31'], healthy: true });
  d.setService({ name: 'big', network: 'blue' });
  for (let i = 0; i < 300; i++) d.updateInstance('blue', 'big', { id: `b${i}`, addresses: [`198.19.${2 + (i >> 8)}.${i & 255}`], healthy: true });
  d.setService({ name: 'secret', network: 'red' });
  d.updateInstance('red', 'secret', { id: 's1', addresses: ['198.19.9.1'], healthy: true });
  return d;
}

export function query(name: string, type: dnsPacket.RecordType, o: { id?: number; edns?: number; rd?: boolean } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: o.id ?? 4242,
    flags: o.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: o.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: o.edns, flags: 0 } as dnsPacket.Answer],
  });
}
