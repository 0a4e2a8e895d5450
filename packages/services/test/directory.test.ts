import { describe, expect, it } from 'vitest';
import { InvalidServiceError, ServiceDirectory, UnknownServiceError, reverseName } from '../src/directory.js';

const names = (d: ServiceDirectory, net: string, name: string, qtype: number) => {
  const e = d.lookupText(net, name);
  return e === undefined ? undefined : d.answers(e, qtype).ends.length;
};

describe('ServiceDirectory', () => {
  it('refuses malformed input with InvalidServiceError naming the field', () => {
    const d = new ServiceDirectory();
    const field = (f: () => void) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidServiceError);
        expect((e as InvalidServiceError).code).toBe('OVL_ERR_INVALID_SERVICE');
        return (e as InvalidServiceError).field;
      }
      return 'no error';
    };
    expect(field(() => new ServiceDirectory({ ttl: 601 }))).toBe('ttl');
    expect(field(() => new ServiceDirectory({ ttl: -1 }))).toBe('ttl');
    expect(field(() => d.setService({ name: 'a.b', network: 'n' }))).toBe('name');
    expect(field(() => d.setService({ name: 'x'.repeat(64), network: 'n' }))).toBe('name');
    expect(field(() => d.setService({ name: 'ok', network: '' }))).toBe('network');
    expect(field(() => d.setService({ name: 'ok', network: 'n', vip: ['nope'] }))).toBe('vip[0]');
    expect(field(() => d.setService({ name: 'ok', network: 'n', vip: ['198.19.0.1', '198.19.0.2'] }))).toBe('vip[1]');
    expect(field(() => d.setService({ name: 'ok', network: 'n', endpointMode: 'vip' }))).toBe('vip');
    expect(field(() => d.setService({ name: 'ok', network: 'n', ttl: 1.5 }))).toBe('ttl');
    d.setService({ name: 'ok', network: 'n' });
    expect(field(() => d.updateInstance('n', 'ok', { id: 'bad id', addresses: [], healthy: true }))).toBe('id');
    expect(field(() => d.updateInstance('n', 'ok', { id: 'i', addresses: ['300.1.1.1'], healthy: true }))).toBe('addresses[0]');
    expect(field(() => d.updateInstance('n', 'ok', { id: 'i', addresses: [], ports: [{ port: 0, proto: 'tcp' }], healthy: true }))).toBe('ports[0].port');
    expect(field(() => d.updateInstance('n', 'ok', { id: 'i', addresses: [], ports: [{ port: 1, proto: 'sctp' as 'tcp' }], healthy: true }))).toBe('ports[0].proto');
    expect(() => d.updateInstance('n', 'missing', { id: 'i', addresses: [], healthy: true })).toThrow(UnknownServiceError);
  });

  it('scopes names by network and redefining a service keeps its instances', () => {
    const d = new ServiceDirectory();
    d.setService({ name: 'api', network: 'blue' });
    d.updateInstance('blue', 'api', { id: 'a1', addresses: ['198.19.0.5'], healthy: true });
    expect(names(d, 'blue', 'api', 1)).toBe(1);
    expect(names(d, 'red', 'api', 1)).toBeUndefined();
    d.setService({ name: 'API', network: 'blue', vip: ['198.19.1.1'] });
    expect(d.instanceCount('blue', 'api')).toBe(1);
    expect(names(d, 'blue', 'a1.tasks.api', 1)).toBe(1);
    expect(names(d, 'blue', reverseName(Uint8Array.of(198, 19, 1, 1)), 12)).toBe(1);
    expect(d.removeService('blue', 'api')).toBe(true);
    expect(d.lookupText('blue', 'a1.tasks.api')).toBeUndefined();
    expect(d.lookupText('blue', '1.1.19.198.in-addr.arpa')).toBeUndefined();
  });

  it('an address two services share answers PTR for both; removing one leaves the other', () => {
    const d = new ServiceDirectory();
    for (const s of ['one', 'two']) {
      d.setService({ name: s, network: 'n' });
      d.updateInstance('n', s, { id: 'x', addresses: ['198.19.0.9'], healthy: true });
    }
    expect(names(d, 'n', '9.0.19.198.in-addr.arpa', 12)).toBe(2);
    d.removeInstance('n', 'one', 'x');
    expect(names(d, 'n', '9.0.19.198.in-addr.arpa', 12)).toBe(1);
  });

  it('an address two instances of one service share: PTR names both targets; the service removed, the name is gone; re-added, it answers again', () => {
    const d = new ServiceDirectory();
    d.setService({ name: 'web', network: 'n' });
    for (const id of ['a', 'b']) d.updateInstance('n', 'web', { id, addresses: ['198.19.0.9', '2001:db8::9'], healthy: true });
    const ptr4 = '9.0.19.198.in-addr.arpa';
    const ptr6 = reverseName(Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9));
    expect(names(d, 'n', ptr4, 12)).toBe(2);
    expect(names(d, 'n', ptr6, 12)).toBe(2);
    const e = d.lookupText('n', ptr4)!;
    const targets = Buffer.from(d.answers(e, 12).bytes, 'latin1').toString('latin1');
    expect(targets).toContain('\x01a\x05tasks\x03web\x00');
    expect(targets).toContain('\x01b\x05tasks\x03web\x00');
    d.removeService('n', 'web');
    for (const name of [ptr4, ptr6, 'a.tasks.web', 'web']) expect(d.lookupText('n', name)).toBeUndefined();
    d.setService({ name: 'web', network: 'n' });
    d.updateInstance('n', 'web', { id: 'a', addresses: ['198.19.0.9'], healthy: true });
    expect(names(d, 'n', ptr4, 12)).toBe(1);
    expect(names(d, 'n', ptr6, 12)).toBeUndefined();
    expect(names(d, 'n', 'A.Tasks.Web.', 1)).toBe(1);
  });

  it('tells listeners of every change; a throwing listener does not stop the change', () => {
    const d = new ServiceDirectory();
    const seen: string[] = [];
    d.onChange(() => {
      throw new Error('listener bug');
    });
    const off = d.onChange((net, svc) => seen.push(`${net}/${svc}`));
    d.setService({ name: 's', network: 'n' });
    d.updateInstance('n', 's', { id: 'i', addresses: ['2001:db8::1'], healthy: false });
    expect(d.setHealthy('n', 's', 'i', true)).toBe(true);
    expect(d.setHealthy('n', 's', 'nope', true)).toBe(false);
    off();
    d.removeService('n', 's');
    expect(seen).toEqual(['n/s', 'n/s', 'n/s']);
  });

  it('reverse names: in-addr.arpa and nibble-wise ip6.arpa', () => {
    expect(reverseName(Uint8Array.of(198, 19, 0, 1))).toBe('1.0.19.198.in-addr.arpa');
    const v6 = new Uint8Array(16);
    v6.set([0x20, 0x01, 0x0d, 0xb8]);
    v6[15] = 0x21;
    expect(reverseName(v6)).toBe(`1.2.${'0.'.repeat(22)}8.b.d.0.1.0.0.2.ip6.arpa`);
  });
});
