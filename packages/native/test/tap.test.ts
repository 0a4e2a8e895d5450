import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { createTestbed, type Testbed } from '../../../test/lib/testbed.js';

// TAP devices need a namespace of their own: the cases run in a child process inside one.
const fixture = fileURLToPath(new URL('./fixtures/tap-cases.ts', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('TapDevice against the kernel', () => {
  let tb: Testbed;
  let r: Record<string, any>;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 1, prefix: 'ntap' });
    const out = await tb.hosts[0].run(process.execPath, ['--conditions=source', '--import', 'tsx', fixture], { timeoutMs: 50_000 });
    const line = out.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`fixture failed (${out.code}): ${out.stderr}`);
    r = JSON.parse(line.slice(7));
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
