import { describe, expect, it } from 'vitest';
import { validateConfig, AgentConfigError } from '@overlay/agent';

const good = () => ({
  name: 'host-a',
  listen: '198.18.0.1:7946',
  signingKey: Buffer.alloc(64, 1).toString('base64'),
  encryption: { clusterKeys: [Buffer.alloc(32, 2).toString('base64')] },
  networks: [{ name: 'blue', vni: 100, subnet: '198.19.0.0/24', endpoints: [{ id: 'e1', mac: '02:00:00:00:00:01', ipv4: '198.19.0.1', ipv6: '2001:db8::1' }] }],
});

function fieldOf(mut: (c: any) => void): string {
  const c = good();
  mut(c);
  try {
    validateConfig(c);
  } catch (e) {
    expect(e).toBeInstanceOf(AgentConfigError);
    expect((e as AgentConfigError).code).toBe('OVL_ERR_INVALID_CONFIG');
    return (e as AgentConfigError).field;
  }
  return 'no error';
}

describe('agent config', () => {
  it('accepts a complete config and fills defaults', () => {
    const c = validateConfig(good());
    expect(c.advertise).toEqual({ ip: '198.18.0.1', port: 7946 });
    expect(c.profile).toBe('lan');
    expect(c.networks[0].endpoints[0].ipv6!.length).toBe(16);
    expect(c.networks[0].endpoints[0].ipv6![0]).toBe(0x20);
  });

  it('names the offending field', () => {
    expect(fieldOf((c) => (c.name = ''))).toBe('name');
    expect(fieldOf((c) => (c.listen = '0.0.0.0:7946'))).toBe('advertise');
    expect(fieldOf((c) => (c.listen = '198.18.0.1:99999'))).toBe('listen');
    expect(fieldOf((c) => (c.seeds = ['nope']))).toBe('seeds[0]');
    expect(fieldOf((c) => (c.profile = 'fast'))).toBe('profile');
    expect(fieldOf((c) => delete c.signingKey)).toBe('signingKey');
    expect(fieldOf((c) => (c.encryption.clusterKeys = ['c2hvcnQ=']))).toBe('encryption.clusterKeys[0]');
    expect(fieldOf((c) => (c.encryption = {}))).toBe('encryption.clusterKeys');
    expect(fieldOf((c) => (c.networks[0].vni = 1 << 24))).toBe('networks[0].vni');
    expect(fieldOf((c) => (c.networks[0].subnet = '198.19.0.0'))).toBe('networks[0].subnet');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].mac = '01:00:00:00:00:01'))).toBe('networks[0].endpoints[0].mac');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv4 = '198.19.1.1'))).toBe('networks[0].endpoints[0].ipv4');
    expect(fieldOf((c) => (c.networks[0].endpoints[0].ipv6 = 'zz::1'))).toBe('networks[0].endpoints[0].ipv6');
    expect(fieldOf((c) => c.networks.push({ name: 'blue', vni: 5 }))).toBe('networks[1].name');
    expect(fieldOf((c) => (c.extra = 1))).toBe('extra');
  });

  it('never echoes key material in errors', () => {
    const c = good();
    c.encryption.clusterKeys = ['c2VjcmV0c2VjcmV0'];
    expect(() => validateConfig(c)).toThrow(/base64 of 32 bytes/);
    try { validateConfig(c); } catch (e) { expect(String(e)).not.toContain('c2VjcmV0c2VjcmV0'); }
  });
});
