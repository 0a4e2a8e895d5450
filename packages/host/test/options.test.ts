import { describe, expect, it } from 'vitest';
import { InvalidConfigError } from '@overlay/dataplane';
import { SECURE_TRANSPORT_OVERHEAD } from '@overlay/crypto';
import { linkHolding, openHost, overlayMtu, UnderlayNotFoundError, validateHostOptions, type HostOptions } from '../src/index.js';

describe('the overlay MTU rule', () => {
  it('takes 50 bytes over IPv4 and 70 over IPv6', () => {
    expect(overlayMtu(1500, 4)).toBe(1450);
    expect(overlayMtu(1500, 6)).toBe(1430);
    expect(overlayMtu(9000, 6)).toBe(8930);
  });

  it('takes the WireGuard transport overhead (32) on top', () => {
    expect(SECURE_TRANSPORT_OVERHEAD).toBe(32);
    expect(overlayMtu(1500, 4, SECURE_TRANSPORT_OVERHEAD)).toBe(1418);
    expect(overlayMtu(1500, 6, SECURE_TRANSPORT_OVERHEAD)).toBe(1398);
  });

  it('refuses an underlay too small for a 68-byte overlay, a bad family or overhead', () => {
    expect(overlayMtu(118, 4)).toBe(68);
    expect(() => overlayMtu(117, 4)).toThrow(InvalidConfigError);
    expect(() => overlayMtu(1100, 6, 1000)).toThrow(/underlayMtu/);
    expect(() => overlayMtu(1500, 5 as 4)).toThrow(/family/);
    expect(() => overlayMtu(1500, 4, -1)).toThrow(/tunnelOverhead/);
    expect(() => overlayMtu(1500.5, 4)).toThrow(InvalidConfigError);
  });
});

const base = (): HostOptions => ({ underlay: { address: '198.18.0.1' }, networks: [{ vni: 100, tap: 'vx0' }] });

/** The field an option set is refused for, or null when it is accepted. */
function refused(mut: (o: HostOptions) => void): string | null {
  const o = base();
  mut(o);
  try {
    validateHostOptions(o);
    return null;
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidConfigError);
    expect((e as InvalidConfigError).code).toBe('OVL_ERR_INVALID_CONFIG');
    return (e as InvalidConfigError).field;
  }
}

describe('host option validation', () => {
  it('accepts a minimal host and a full one', () => {
    expect(refused(() => {})).toBeNull();
    expect(
      refused((o) => {
        o.underlay = { address: '2001:db8::1', port: 4790, device: 'ul0', recvBufferBytes: 1 << 20, sendBufferBytes: 1 << 20, gso: false, gro: false };
        o.batchSize = 32;
        o.poolSlots = 8192;
        o.tap = { tso: false, gro: false, txQueueLen: 1000 };
        o.wireguard = { privateKey: 'k', peers: [{ publicKey: 'p', endpoint: '2001:db8::2' }, { publicKey: 'q', endpoint: { address: '2001:db8::3', port: 1 } }] };
        o.networks = [
          { vni: 0, tap: 'a', mac: '02:00:00:00:00:01', addresses: ['198.19.0.1/24', '2001:db8:1::1/64'], mtu: 1400, learning: true, unknownUnicast: 'drop', arpSuppression: false, ageingMs: 1000, learnPort: 4789 },
          { vni: (1 << 24) - 1, tap: 'b', learnPort: 'source', fdb: [], neighbours: [], flood: [] },
        ];
      }),
    ).toBeNull();
  });

  it.each<[string, (o: HostOptions) => void]>([
    ['underlay', (o) => ((o as { underlay: unknown }).underlay = undefined)],
    ['underlay.address', (o) => (o.underlay.address = '198.18.0')],
    ['underlay.address', (o) => (o.underlay.address = '198.18.0.1/16')],
    ['underlay.port', (o) => (o.underlay.port = 65536)],
    ['underlay.device', (o) => (o.underlay.device = 'a-very-long-link-name')],
    ['underlay.recvBufferBytes', (o) => (o.underlay.recvBufferBytes = 1.5)],
    ['underlay.gso', (o) => ((o.underlay as { gso: unknown }).gso = 'yes')],
    ['batchSize', (o) => (o.batchSize = 0)],
    ['poolSlots', (o) => (o.poolSlots = 100)],
    ['tap.txQueueLen', (o) => (o.tap = { txQueueLen: 0 })],
    ['wireguard.privateKey', (o) => ((o as { wireguard: unknown }).wireguard = {})],
    ['wireguard.peers[0].endpoint', (o) => (o.wireguard = { privateKey: 'k', peers: [{ publicKey: 'p', endpoint: 'host.example' }] })],
    ['networks', (o) => ((o as { networks: unknown }).networks = {})],
    ['networks[0].vni', (o) => (o.networks[0].vni = 1 << 24)],
    ['networks[1].vni', (o) => o.networks.push({ vni: 100, tap: 'vx1' })],
    ['networks[1].tap', (o) => o.networks.push({ vni: 101, tap: 'vx0' })],
    ['networks[0].tap', (o) => (o.networks[0].tap = '')],
    ['networks[0].tap', (o) => (o.networks[0].tap = 'sixteen-bytes-xx')],
    ['networks[0].mac', (o) => (o.networks[0].mac = '01:00:5e:00:00:01')],
    ['networks[0].mac', (o) => (o.networks[0].mac = '02:00:00:00:00')],
    ['networks[0].addresses[0]', (o) => (o.networks[0].addresses = ['198.19.0.1'])],
    ['networks[0].addresses[1]', (o) => (o.networks[0].addresses = ['198.19.0.1/24', '2001:db8::1/129'])],
    ['networks[0].mtu', (o) => (o.networks[0].mtu = 67)],
    ['networks[0].unknownUnicast', (o) => ((o.networks[0] as { unknownUnicast: unknown }).unknownUnicast = 'forward')],
    ['networks[0].ageingMs', (o) => (o.networks[0].ageingMs = 0)],
    ['networks[0].learnPort', (o) => (o.networks[0].learnPort = 0)],
    ['networks[0].learnPort', (o) => ((o.networks[0] as { learnPort: unknown }).learnPort = 'dest')],
    ['networks[0].learning', (o) => ((o.networks[0] as { learning: unknown }).learning = 1)],
    ['networks[0].tso', (o) => ((o.networks[0] as { tso: unknown }).tso = 'on')],
    ['networks[0].fdb', (o) => ((o.networks[0] as { fdb: unknown }).fdb = {})],
  ])('refuses %s', (field, mut) => {
    expect(refused(mut)).toBe(field);
  });

  it('refuses bad options before opening anything (no privileges needed to find out)', async () => {
    await expect(openHost({ underlay: { address: 'nowhere' }, networks: [] })).rejects.toMatchObject({ code: 'OVL_ERR_INVALID_CONFIG', field: 'underlay.address' });
  });
});

describe('underlay link lookup', () => {
  it('finds the link holding an address (loopback here)', () => {
    expect(linkHolding('127.0.0.1')).toBe('lo');
  });

  it('names the address no link holds, and a wildcard, with a typed error', () => {
    for (const a of ['198.18.255.254', '0.0.0.0', '::']) {
      expect(() => linkHolding(a)).toThrow(UnderlayNotFoundError);
      try {
        linkHolding(a);
      } catch (e) {
        expect((e as UnderlayNotFoundError).code).toBe('OVL_ERR_HOST_UNDERLAY_NOT_FOUND');
        expect((e as Error).message).toContain(a);
      }
    }
  });
});
