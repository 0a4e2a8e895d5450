import { describe, expect, it } from 'vitest';
import { AgentConfigError, defaultResolver, parseConfig, summarizeConfig } from '@overlay/agent';

const KEY = Buffer.alloc(64, 7).toString('base64');
const BASE = `
name: h1
listen: 198.18.0.1:7946
signingKey: ${KEY}
encryption: { insecure: true }
networks:
  - name: blue
    vni: 100
    subnet: 198.19.0.0/24
    endpoints: [{ id: h1, mac: "02:00:00:00:00:01", ipv4: 198.19.0.1 }, { id: h1b, mac: "02:00:00:00:00:02", ipv6: "2001:db8::1" }]
  - name: v6
    vni: 101
    subnet: 2001:db8:1::/64
services:
  - name: web
    network: blue
    instances: [{ id: web-1, endpoint: h1, ports: [{ port: 80, name: http }, { port: 53, proto: udp }] }]
    healthcheck: { kind: tcp, interval: 1s, retries: 2 }
`;

const err = (text: string): string => {
  try {
    parseConfig(text);
  } catch (e) {
    expect(e).toBeInstanceOf(AgentConfigError);
    return (e as Error).message;
  }
  throw new Error('accepted');
};
const edit = (a: string, b: string) => {
  expect(BASE).toContain(a);
  return BASE.replace(a, b);
};

describe('config: services and resolvers', () => {
  it('parses services, instances from this host\'s endpoints, defaults and the health check', () => {
    const c = parseConfig(BASE);
    expect(c.services).toHaveLength(1);
    const s = c.services[0];
    expect(s).toMatchObject({ name: 'web', network: 'blue', endpointMode: 'dnsrr', ttl: 5 });
    expect(s.instances[0]).toMatchObject({ id: 'web-1', endpoint: 'h1', ports: [{ port: 80, proto: 'tcp', name: 'http' }, { port: 53, proto: 'udp' }] });
    expect([...s.instances[0].ipv4!]).toEqual([198, 19, 0, 1]);
    expect(s.healthcheck).toMatchObject({ kind: 'tcp', intervalMs: 1000, fall: 2 });
    expect(c.networks[0].resolver).toBe('198.19.0.254');
    expect(c.networks[1].resolver).toBe('2001:db8:1:0:ffff:ffff:ffff:fffe');
    expect(summarizeConfig(c)).toContain('resolver 198.19.0.254');
    expect(summarizeConfig(c)).toContain('1 service (web@blue 1 instance)');
    expect(parseConfig(edit('    healthcheck: { kind: tcp, interval: 1s, retries: 2 }\n', '')).services[0].healthcheck).toBeUndefined();
  });

  it('default resolver: second-to-last address; none in a subnet of fewer than 4 addresses', () => {
    expect(defaultResolver('198.18.0.0/15')).toBe('198.19.255.254');
    expect(defaultResolver('2001:db8::/64')).toBe('2001:db8::ffff:ffff:ffff:fffe');
    expect(defaultResolver('198.19.0.0/30')).toBe('198.19.0.2');
    expect(defaultResolver('198.19.0.0/31')).toBeUndefined();
    expect(parseConfig(edit('subnet: 198.19.0.0/24', 'subnet: 198.19.0.0/31').replace('ipv4: 198.19.0.1', 'ipv4: 198.19.0.1')).networks[0].resolver).toBeUndefined();
    expect(parseConfig(edit('    subnet: 198.19.0.0/24\n', '    subnet: 198.19.0.0/24\n    resolver: 198.19.0.53\n')).networks[0].resolver).toBe('198.19.0.53');
  });

  it('every refusal names its field', () => {
    const cases: [string, string, RegExp][] = [
      ['interval: 1s', 'interval: 1x', /^\/services\/0\/healthcheck\/interval: not a duration/],
      ['retries: 2', 'retries: 2, bogus: 1', /^\/services\/0\/healthcheck\/bogus: unknown field/],
      ['{ kind: tcp, interval: 1s, retries: 2 }', '[tcp]', /^\/services\/0\/healthcheck: must be a mapping/],
      ['{ port: 80, name: http }', '{ port: 80, proto: sctp }', /^\/services\/0\/instances\/0\/ports\/0\/proto: must be 'tcp' or 'udp'/],
      ['{ port: 80, name: http }', '{ port: 0 }', /^\/services\/0\/instances\/0\/ports\/0\/port: must be an integer in 1\.\.65535/],
      ['name: http', 'name: HTTP_main', /^\/services\/0\/instances\/0\/ports\/0\/name:/],
      ['endpoint: h1,', 'endpoint: h9,', /^\/services\/0\/instances\/0\/endpoint: no endpoint "h9" in network blue on this host/],
      ['id: web-1', 'id: Web_1', /^\/services\/0\/instances\/0\/id: a DNS label/],
      ['  - name: web', '  - name: Web', /^\/services\/0\/name: a DNS label/],
      ['network: blue\n    instances', 'network: red\n    instances', /^\/services\/0\/network: no network "red"/],
      ['network: blue\n    instances', 'network: blue\n    ttl: 601\n    instances', /^\/services\/0\/ttl: must be an integer in 0\.\.600/],
      ['network: blue\n    instances', 'network: blue\n    endpointMode: rr\n    instances', /^\/services\/0\/endpointMode: must be 'dnsrr' or 'vip'/],
      ['network: blue\n    instances', 'network: blue\n    vip: 198.18.7.1\n    instances', /^\/services\/0\/vip: 198\.18\.7\.1 is outside the network's subnet 198\.19\.0\.0\/24/],
      ['network: blue\n    instances', 'network: blue\n    vip: 198.19.0.300\n    instances', /^\/services\/0\/vip: not an IPv4 or IPv6 address/],
      ['network: blue\n    instances', 'network: blue\n    replicas: 3\n    instances', /^\/services\/0\/replicas: unknown field/],
      ['ports: [{ port: 80, name: http }, { port: 53, proto: udp }]', 'ports: []', /^\/services\/0\/instances\/0\/ports: the tcp health check probes the instance's first port/],
      ['    subnet: 198.19.0.0/24\n', '    subnet: 198.19.0.0/24\n    resolver: 198.19.0.1\n', /^\/networks\/0\/resolver: 198\.19\.0\.1 is also the address of \/networks\/0\/endpoints\/0\/ipv4/],
      ['    subnet: 198.19.0.0/24\n', '    subnet: 198.19.0.0/24\n    resolver: 198.19.1.53\n', /^\/networks\/0\/resolver: 198\.19\.1\.53 is outside the network's subnet/],
      ['ipv4: 198.19.0.1 }', 'ipv4: 198.19.0.254 }', /^\/networks\/0\/resolver: 198\.19\.0\.254 is also the address of \/networks\/0\/endpoints\/0\/ipv4 .*default is the subnet's second-to-last address/],
    ];
    for (const [a, b, re] of cases) expect(err(edit(a, b)), b).toMatch(re);
    const dupSvc = BASE + `  - name: web\n    network: blue\n    instances: []\n`;
    expect(err(dupSvc)).toMatch(/^\/services\/1\/name: duplicate service web in network blue \(also \/services\/0\/name\)/);
    const dupInst = BASE + `  - name: api\n    network: blue\n    instances: [{ id: web-1, endpoint: h1 }]\n`;
    expect(err(dupInst)).toMatch(/^\/services\/1\/instances\/0\/id: duplicate instance id web-1 in network blue/);
    const noAddr = BASE + `  - name: api\n    network: v6\n    instances: [{ id: a-1, endpoint: h1 }]\n`;
    expect(err(noAddr)).toMatch(/^\/services\/1\/instances\/0\/endpoint: no endpoint "h1" in network v6/);
  });
});
