import { describe, expect, it } from 'vitest';
import { parseIpAddress } from '@overlay/dataplane';
import { validateConfig, AgentConfigError } from '@overlay/agent';

const good = () => ({
  name: 'host-a',
  listen: '198.18.0.1:7946',
  signingKey: Buffer.alloc(64, 1).toString('base64'),
  encryption: { clusterKeys: [Buffer.alloc(32, 2).toString('base64')] },
  wireguard: { privateKey: Buffer.alloc(32, 3).toString('base64') },
  networks: [{ name: 'blue', vni: 100, subnet: '198.19.0.0/24', device: 'ov0', endpoints: [{ id: 'e1', device: 'ov0', mac: '02:00:00:00:00:01', ipv4: '198.19.0.1', ipv6: '2001:db8::1' }] }],
});

function errorOf(mut: (c: any) => void): AgentConfigError | undefined {
  const c = good();
  mut(c);
  try {
    validateConfig(c);
  } catch (e) {
    expect(e).toBeInstanceOf(AgentConfigError);
    expect((e as AgentConfigError).code).toBe('OVL_ERR_INVALID_CONFIG');
    return e as AgentConfigError;
  }
  return undefined;
}
const fieldOf = (mut: (c: any) => void): string => errorOf(mut)?.field ?? 'no error';

describe('agent config', () => {
  it('accepts a complete config and fills defaults', () => {
    const c = validateConfig(good());
    expect(c.advertise).toEqual({ ip: '198.18.0.1', port: 7946 });
    expect(c.vtep).toBe('198.18.0.1');
    expect(c.vtepPort).toBe(4789);
    expect(c.profile).toBe('lan');
    expect(c.networks[0].endpoints[0].ipv6!.length).toBe(16);
    expect(c.networks[0].endpoints[0].ipv6![0]).toBe(0x20);
    expect(Array.from(c.networks[0].endpoints[0].ipv4!)).toEqual([198, 19, 0, 1]);
    expect(Array.from(c.networks[0].endpoints[0].mac)).toEqual([2, 0, 0, 0, 0, 1]);
    expect(c.wireguard).toEqual({ privateKey: good().wireguard.privateKey });
  });

  it('names the offending field', () => {
    expect(fieldOf((c) => (c.name = ''))).toBe('/name');
    expect(fieldOf((c) => (c.listen = '0.0.0.0:7946'))).toBe('/advertise');
    expect(fieldOf((c) => (c.listen = '198.18.0.1:99999'))).toBe('/listen');
    expect(fieldOf((c) => (c.seeds = ['nope']))).toBe('/seeds/0');
    expect(fieldOf((c) => (c.profile = 'fast'))).toBe('/profile');
    expect(fieldOf((c) => (c.profile = 'toString'))).toBe('/profile');
    expect(fieldOf((c) => delete c.signingKey)).toBe('/signingKey');
    expect(fieldOf((c) => (c.encryption.clusterKeys = ['c2hvcnQ=']))).toBe('/encryption/clusterKeys/0');
    expect(fieldOf((c) => (c.encryption = {}))).toBe('/encryption/clusterKeys');
    expect(fieldOf((c) => (c.networks[0].vni = 1 << 24))).toBe('/networks/0/vni');
    expect(fieldOf((c) => (c.networks[0].subnet = '198.19.0.0'))).toBe('/networks/0/subnet');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].mac = '01:00:00:00:00:01'))).toBe('/networks/0/endpoints/0/mac');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv4 = '198.19.1.1'))).toBe('/networks/0/endpoints/0/ipv4');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv6 = 'zz::1'))).toBe('/networks/0/endpoints/0/ipv6');
    expect(fieldOf((c) => c.networks.push({ name: 'blue', vni: 5 }))).toBe('/networks/1/name');
    expect(fieldOf((c) => (c.extra = 1))).toBe('/extra');
  });

  it('refuses unknown keys at any depth, naming their path', () => {
    expect(fieldOf((c) => (c.networks[0].subnett = '198.19.0.0/24'))).toBe('/networks/0/subnett');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv44 = '198.19.0.2'))).toBe('/networks/0/endpoints/0/ipv44');
    expect(fieldOf((c) => (c.encryption.insecur = true))).toBe('/encryption/insecur');
    expect(fieldOf((c) => (c.wireguard.prot = 51820))).toBe('/wireguard/prot');
    expect(errorOf((c) => (c.networks[0].subnett = '198.19.0.0/24'))!.message).toMatch(/unknown field \(did you mean subnet\?\)/);
  });

  it('refuses wireguard.port: the tunnel rides the VXLAN socket', () => {
    const e = errorOf((c) => (c.wireguard.port = 51820));
    expect(e?.field).toBe('/wireguard/port');
    expect(e?.message).toMatch(/vtepPort/);
  });

  it('refuses the endpoint device the old docs example used (device other than the network TAP)', () => {
    expect(fieldOf((c) => (c.networks[0].endpoints[0].device = 'tap0'))).toBe('/networks/0/endpoints/0/device');
    expect(fieldOf((c) => delete c.networks[0].device)).toBe('/networks/0/endpoints/0/device');
  });

  it('parses addresses by the dataplane rules: config accepts exactly what parseIpAddress accepts', () => {
    const candidates = ['198.19.0.7', '2001:db8::7', 'fe80::1%eth0', '2001:db8::7/64', '198.19.0.7/32', '::ffff:198.19.0.7', '2001:DB8:0:0:0:0:0:7', '198.019.0.7', '1.2.3', '2001:db8:::7', ' 198.19.0.7', ''];
    for (const a of candidates) {
      let dataplane = true;
      try {
        parseIpAddress(a);
      } catch {
        dataplane = false;
      }
      const config = errorOf((c) => (c.vtep = a)) === undefined;
      expect({ a, config }).toEqual({ a, config: dataplane });
    }
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv6 = 'fe80::1%eth0'))).toBe('/networks/0/endpoints/0/ipv6');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv4 = '2001:db8::1'))).toBe('/networks/0/endpoints/0/ipv4');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv6 = '198.19.0.1'))).toBe('/networks/0/endpoints/0/ipv6');
    // Canonical text, as the dataplane and `ip` print it.
    expect(validateConfig({ ...good(), vtep: '2001:DB8:0:0:0:0:0:7' }).vtep).toBe('2001:db8::7');
  });

  it('host:port fields need brackets around IPv6 and refuse wildcards where peers must dial', () => {
    expect(validateConfig({ ...good(), listen: '[2001:db8::1]:7000' }).advertise).toEqual({ ip: '2001:db8::1', port: 7000 });
    expect(validateConfig({ ...good(), seeds: ['[2001:db8::2]', '198.18.0.2'] }).seeds).toEqual([{ ip: '2001:db8::2', port: 7946 }, { ip: '198.18.0.2', port: 7946 }]);
    expect(fieldOf((c) => (c.seeds = ['2001:db8::2:7946']))).toBe('/seeds/0');
    expect(fieldOf((c) => (c.seeds = ['[198.18.0.2]:7946']))).toBe('/seeds/0');
    expect(fieldOf((c) => (c.advertise = '[::]:7946'))).toBe('/advertise');
    expect(fieldOf((c) => (c.vtep = '0.0.0.0'))).toBe('/vtep');
  });

  it('subnets: CIDR with host bits clear, endpoints of that family inside', () => {
    expect(fieldOf((c) => (c.networks[0].subnet = '198.19.0.1/24'))).toBe('/networks/0/subnet');
    expect(fieldOf((c) => (c.networks[0].subnet = '198.19.0.0/33'))).toBe('/networks/0/subnet');
    expect(fieldOf((c) => (c.networks[0].subnet = 'fe80::%eth0/64'))).toBe('/networks/0/subnet');
    expect(validateConfig({ ...good(), networks: [{ ...good().networks[0], subnet: '198.19.0.0/23', endpoints: [{ id: 'x', mac: '02:00:00:00:00:09', ipv4: '198.19.1.200' }] }] }).networks[0].subnet).toBe('198.19.0.0/23');
    const v6 = { ...good().networks[0], subnet: '2001:db8:0:1::/64', endpoints: [{ id: 'x', mac: '02:00:00:00:00:09', ipv6: '2001:db8:0:1::9', ipv4: '198.18.7.1' }] };
    expect(validateConfig({ ...good(), networks: [v6] }).networks[0].endpoints[0].ipv6Text).toBe('2001:db8:0:1::9');
    expect(fieldOf((c) => (c.networks = [{ ...v6, endpoints: [{ ...v6.endpoints[0], ipv6: '2001:db8:0:2::9' }] }]))).toBe('/networks/0/endpoints/0/ipv6');
  });

  it('refuses duplicate endpoint MACs and addresses, and two networks on one device', () => {
    const second = { id: 'e2', mac: '02:00:00:00:00:02', ipv4: '198.19.0.2' };
    expect(fieldOf((c) => c.networks[0].endpoints.push({ ...second, mac: '02:00:00:00:00:01' }))).toBe('/networks/0/endpoints/1/mac');
    expect(fieldOf((c) => c.networks[0].endpoints.push({ ...second, ipv4: '198.19.0.1' }))).toBe('/networks/0/endpoints/1/ipv4');
    expect(errorOf((c) => c.networks[0].endpoints.push({ ...second, ipv4: '198.19.0.1' }))!.message).toContain('/networks/0/endpoints/0/ipv4');
    expect(fieldOf((c) => c.networks.push({ name: 'red', vni: 5, device: 'ov0' }))).toBe('/networks/1/device');
    expect(fieldOf((c) => (c.networks[0].device = 'a/b'))).toBe('/networks/0/device');
    // A TAP has one MAC: a second endpoint naming it would publish a MAC the TAP never sends from.
    expect(fieldOf((c) => c.networks[0].endpoints.push({ ...second, device: 'ov0' }))).toBe('/networks/0/endpoints/1/device');
    expect(validateConfig({ ...good(), networks: [{ ...good().networks[0], endpoints: [...good().networks[0].endpoints, second] }] }).networks[0].endpoints).toHaveLength(2);
  });

  it('per-network dataplane options are validated with their paths and passed through', () => {
    const n = validateConfig({ ...good(), networks: [{ ...good().networks[0], learning: true, unknownUnicast: 'drop', arpSuppression: false, ageingMs: 60_000 }] }).networks[0];
    expect({ learning: n.learning, unknownUnicast: n.unknownUnicast, arpSuppression: n.arpSuppression, ageingMs: n.ageingMs }).toEqual({ learning: true, unknownUnicast: 'drop', arpSuppression: false, ageingMs: 60_000 });
    const d = validateConfig(good()).networks[0];
    expect([d.learning, d.unknownUnicast, d.arpSuppression, d.ageingMs]).toEqual([undefined, undefined, undefined, undefined]);
    expect(fieldOf((c) => (c.networks[0].learning = 'yes'))).toBe('/networks/0/learning');
    expect(fieldOf((c) => (c.networks[0].unknownUnicast = 'flod'))).toBe('/networks/0/unknownUnicast');
    expect(fieldOf((c) => (c.networks[0].arpSuppression = 1))).toBe('/networks/0/arpSuppression');
    expect(fieldOf((c) => (c.networks[0].ageingMs = 0))).toBe('/networks/0/ageingMs');
    expect(fieldOf((c) => (c.networks[0].ageingMs = 1.5e3 + 0.5))).toBe('/networks/0/ageingMs');
  });

  it('encryption: insecure must be a boolean and excludes cluster keys', () => {
    expect(fieldOf((c) => (c.encryption = { insecure: 'yes' }))).toBe('/encryption/insecure');
    expect(fieldOf((c) => (c.encryption.insecure = true))).toBe('/encryption/insecure');
    expect(validateConfig({ ...good(), encryption: { insecure: true } }).insecure).toBe(true);
    expect(fieldOf((c) => (c.signingKeyFile = '/nonexistent'))).toBe('/signingKeyFile');
  });

  it('never echoes key material in errors', () => {
    const c = good();
    c.encryption.clusterKeys = ['c2VjcmV0c2VjcmV0'];
    expect(() => validateConfig(c)).toThrow(/base64 of 32 bytes/);
    try { validateConfig(c); } catch (e) { expect(String(e)).not.toContain('c2VjcmV0c2VjcmV0'); }
  });

  it('metrics are off by default, loopback 9464 when enabled; log level defaults to info, format unset (the logger picks: pretty on a terminal, else json)', () => {
    const d = validateConfig(good());
    expect(d.metrics).toBeUndefined();
    expect(d.log).toEqual({ level: 'info', format: undefined });
    expect(validateConfig({ ...good(), metrics: {} }).metrics).toEqual({ listen: { ip: '127.0.0.1', port: 9464 } });
    expect(validateConfig({ ...good(), metrics: { listen: '198.18.0.1:9100' } }).metrics).toEqual({ listen: { ip: '198.18.0.1', port: 9100 } });
    expect(validateConfig({ ...good(), log: { level: 'debug', format: 'pretty' } }).log).toEqual({ level: 'debug', format: 'pretty' });
    expect(fieldOf((c) => (c.metrics = { listen: 'nowhere:x' }))).toBe('/metrics/listen');
    expect(fieldOf((c) => (c.metrics = { port: 1 }))).toBe('/metrics/port');
    expect(fieldOf((c) => (c.log = { level: 'loud' }))).toBe('/log/level');
    expect(fieldOf((c) => (c.log = { format: 'xml' }))).toBe('/log/format');
  });
});
