import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { runForResult } from '../../../test/lib/run-result.js';
import { createTestbed, type Testbed } from '../../../test/lib/testbed.js';

// TAP devices need a namespace of their own: the cases run in a child process inside one.
const fixture = fileURLToPath(new URL('./fixtures/tap-cases.ts', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('TapDevice against the kernel', () => {
  let tb: Testbed;
  let r: Record<string, any>;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 1, prefix: 'ntap' });
    r = await runForResult(tb.hosts[0], [fixture], 50_000);
  });
  afterAll(async () => {
    await tb?.destroy();
  });

  it('opens by name and sets the MTU and transmit queue length', () => {
    expect(r.tapName).toBe('tp0');
    expect(r.tapMtu).toBe(1400);
    expect(r.kernelMtu).toBe(1400);
    expect(r.txQueueLen).toBe(3000);
  });

  it('reads the frames the kernel sends (an ARP request for the peer)', () => {
    expect(r.arpOp).toBe(1);
    expect(r.arpTarget).toBe('198.19.0.2');
  });

  it('writes frames the kernel accepts (ARP reply learned, queued datagram released)', () => {
    expect(r.arpWritten).toBe(1);
    expect(r.neigh).toContain('02:00:00:c6:13:fe');
    expect(r.udpDstMac).toBe('020000c613fe');
    expect(r.udpPayload).toBe('hello tap');
  });

  it('writes a batch of frames in one call', () => {
    expect(r.batchWritten).toBe(3);
    expect(r.received).toEqual([0, 1, 2].map((i) => `198.19.0.2:${5000 + i} in ${i}`));
  });

  it('counts and drops a frame larger than a pool slot, keeps the next one', () => {
    expect(r.tooBig).toBe(1);
    expect(r.smallSeen).toBe(true);
  });

  it('runs in TUN mode with the MTU derived from the underlay (− 50)', () => {
    expect(r.tunMtu).toBe(1450);
    expect(r.tunDst).toBe('198.19.2.9');
    expect(r.tunPayload).toBe('to tun');
  });

  it('reads whole frames with a virtio-net header', () => {
    expect(r.vnetArpTarget).toBe('198.19.3.2');
  });

  it('refuses a coalesced group with a negative header length (counted, nothing written)', () => {
    expect(r.negHdrWritten).toBe(0);
    expect(r.negHdrTxErrors).toBe(1);
    expect(r.negHdrUnsent).toBe(2);
  });

  it('opens several queues of one multi-queue device; a single-queue open of it is refused', () => {
    expect(r.mqNames).toEqual(['mq0', 'mq0']);
    expect(r.mqSingleError).toMatch(/^E[A-Z]+$/);
  });

  it('reports a deleted device once as a typed error and stops polling (no spin)', () => {
    expect(r.goneErrors).toHaveLength(1);
    expect(r.goneErrors[0]).toMatchObject({ isNative: true, code: 'EIO' });
    expect(r.goneRxSyscalls).toBeLessThan(5);
  });

  it('reports errors as NativeError with the errno name, and bad names as config errors', () => {
    expect(r.loError).toMatchObject({ cls: 'NativeError', isNative: true, syscall: 'ioctl(TUNSETIFF)' });
    expect(r.loError.code).toMatch(/^E[A-Z]+$/);
    expect(r.longError).toBe('OVL_ERR_INVALID_CONFIG');
  });

  it('batches reads and returns every slot on close; the device goes away', () => {
    expect(r.rxPackets).toBeGreaterThanOrEqual(2);
    expect(r.rxBatches).toBeGreaterThanOrEqual(1);
    expect(r.poolAvailable).toBe(r.poolCount);
    expect(r.linksAfter).toBe(0);
  });
});

// The overlay MTU rule over an IPv6 underlay: VXLAN in IPv6 costs 70 bytes, not 50, and an
// encrypting transport costs its own overhead on top. Run in a namespace whose `ul0` carries
// 2001:db8::1/64 beside 198.18.0.1/16.
describe('TapDevice MTU from an IPv6 underlay', () => {
  let tb: Testbed;
  let r: Record<string, number>;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 1, ipv6: true, prefix: 'ntap6' });
    const src = new URL('../src/index.ts', import.meta.url).href;
    const code = [
      `const { TapDevice } = await import(${JSON.stringify(src)});`,
      `const auto = TapDevice.open({ name: 'mt0', underlay: 'ul0', up: false });`,
      `const v4 = TapDevice.open({ name: 'mt1', underlay: 'ul0', underlayFamily: 4, up: false });`,
      `const wg6 = TapDevice.open({ name: 'mt2', underlay: 'ul0', underlayFamily: 6, tunnelOverhead: 32, up: false });`,
      `console.log('RESULT ' + JSON.stringify({ auto: auto.mtu, v4: v4.mtu, wg6: wg6.mtu }));`,
      `for (const t of [auto, v4, wg6]) await t.close();`,
    ].join('\n');
    r = await runForResult(tb.hosts[0], ['--input-type=module', '-e', code], 30_000, 'script');
  });
  afterAll(async () => {
    await tb?.destroy();
  });

  it('takes 70 bytes when the underlay link carries IPv6 and no family is named', () => {
    expect(r.auto).toBe(1430);
  });

  it('takes 50 when told the underlay is IPv4, and the tunnel overhead on top over IPv6', () => {
    expect(r.v4).toBe(1450);
    expect(r.wg6).toBe(1500 - 70 - 32);
  });
});
