import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runForResult } from '../../../test/lib/run-result.js';
import { createTestbed, type Testbed } from '../../../test/lib/testbed.js';

// openHost against the kernel, in a namespace of its own (ul0: 198.18.0.1/16, 2001:db8::1/64,
// MTU 1500). The cases run in a child process inside it and report one JSON line.
const cases = (src: string) => `
const { openHost } = await import(${JSON.stringify(src)});
const { execFileSync } = await import('node:child_process');
const ip = (...a) => execFileSync('ip', a).toString();
const links = () => JSON.parse(ip('-j', 'link', 'show')).map((l) => l.ifname);
const err = async (p) => { try { await p; return null; } catch (e) { return { name: e.constructor.name, code: e.code, field: e.field, msg: e.message }; } };
const r = {};

const h = await openHost({
  underlay: { address: '198.18.0.1', port: 0 },
  networks: [
    { vni: 100, tap: 'ov0', mac: '02:00:00:00:00:01', addresses: ['198.19.0.1/24', '2001:db8:1::1/64'], learning: true, ageingMs: 5000 },
    { vni: 200, tap: 'ov1', mtu: 1300, tso: false, gro: false, txQueueLen: 1000 },
  ],
});
r.underlay = h.underlay;
r.devices = h.devices.map((d) => ({ vni: d.vni, name: d.name, mac: d.mac, mtu: d.mtu }));
const a = JSON.parse(ip('-j', 'addr', 'show', 'dev', 'ov0'))[0];
r.ov0 = { up: a.flags.includes('UP'), mac: a.address, addrs: a.addr_info.filter((x) => x.scope === 'global').map((x) => x.local + '/' + x.prefixlen + (x.tentative ? ' tentative' : '')) };
r.ov1Qlen = JSON.parse(ip('-j', 'link', 'show', 'dev', 'ov1'))[0].txqlen;
r.port = h.transport.localPort;
r.statsKeys = Object.keys(h.stats()).sort();
r.tunnel = h.tunnel === undefined;
await h.close();
await h.close();
r.linksAfterClose = links().filter((l) => l.startsWith('ov'));

const wg = await openHost({ underlay: { address: '2001:db8::1', port: 0 }, wireguard: { privateKey: ${JSON.stringify(Buffer.alloc(32, 7).toString('base64'))} }, networks: [{ vni: 1, tap: 'ow0' }] });
r.wg = { mtu: wg.devices[0].mtu, family: wg.underlay.family, tunnel: wg.tunnel !== undefined };
await wg.close();

r.notFound = await err(openHost({ underlay: { address: '198.18.9.9' }, networks: [{ vni: 1, tap: 'nf0' }] }));
r.badFdb = await err(openHost({ underlay: { address: '198.18.0.1', port: 4789 }, networks: [{ vni: 1, tap: 'bf0', fdb: [{ mac: 'zz', vtep: '198.18.0.2' }] }] }));
r.linkErr = await err(openHost({ underlay: { address: '198.18.0.1', port: 4789 }, networks: [{ vni: 1, tap: 'le0', addresses: ['198.19.5.1/24', '198.19.5.1/24'] }] }));
r.linksAfterFailures = links().filter((l) => /^(nf|bf|le)0$/.test(l));
// The failed opens gave the port back.
const again = await openHost({ underlay: { address: '198.18.0.1', port: 4789 }, networks: [] });
r.portAgain = again.transport.localPort;
await again.close();
console.log('RESULT ' + JSON.stringify(r));
`;

describe('openHost against the kernel', () => {
  let tb: Testbed;
  let r: Record<string, any>;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 1, ipv6: true, prefix: 'host' });
    const src = new URL('../src/index.ts', import.meta.url).href;
    r = await runForResult(tb.hosts[0], ['--input-type=module', '-e', cases(src)], 40_000, 'cases');
  });
  afterAll(async () => {
    await tb?.destroy();
  });

  it('finds the underlay link from the address and applies the MTU rule; an mtu override wins', () => {
    expect(r.underlay).toEqual({ device: 'ul0', family: 4, mtu: 1500 });
    expect(r.devices).toEqual([
      { vni: 100, name: 'ov0', mac: '02:00:00:00:00:01', mtu: 1450 },
      { vni: 200, name: 'ov1', mac: expect.stringMatching(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/), mtu: 1300 },
    ]);
    expect(r.ov1Qlen).toBe(1000);
  });

  it('sets the MAC and addresses, IPv6 without duplicate address detection, and brings the TAP up', () => {
    expect(r.ov0).toEqual({ up: true, mac: '02:00:00:00:00:01', addrs: ['198.19.0.1/24', '2001:db8:1::1/64'] });
  });

  it('reports stats for every part and removes its TAPs on close (twice is fine)', () => {
    expect(r.port).toBeGreaterThan(0);
    expect(r.statsKeys).toEqual(['dataplane', 'devices', 'gro', 'pool', 'transport', 'tso']);
    expect(r.tunnel).toBe(true);
    expect(r.linksAfterClose).toEqual([]);
  });

  it('over an IPv6 underlay with WireGuard takes 70 + 32 bytes', () => {
    expect(r.wg).toEqual({ mtu: 1500 - 70 - 32, family: 6, tunnel: true });
  });

  it('fails with typed errors and leaves nothing behind', () => {
    expect(r.notFound).toMatchObject({ name: 'UnderlayNotFoundError', code: 'OVL_ERR_HOST_UNDERLAY_NOT_FOUND' });
    expect(r.badFdb).toMatchObject({ name: 'InvalidAddressError', code: 'OVL_ERR_INVALID_ADDRESS' });
    expect(r.linkErr).toMatchObject({ name: 'LinkSetupError', code: 'OVL_ERR_HOST_LINK_SETUP' });
    expect(r.linkErr.msg).toContain('le0');
    expect(r.linksAfterFailures).toEqual([]);
    expect(r.portAgain).toBe(4789);
  });
});
