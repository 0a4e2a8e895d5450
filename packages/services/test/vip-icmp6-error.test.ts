import { afterEach, describe, expect, it } from 'vitest';
import { formatIpAddress, internetChecksum, ipv6PseudoHeaderSum, type Dataplane } from '@overlay/dataplane';
import { clientBackendBed, frame6, parse6, type F6 } from './vip-frames.js';

// ICMPv6 errors from a backend about a flow's packet (packet too big, unreachable, time
// exceeded) reach the client as from the VIP, quoting the packet as the client sent it (to the VIP).
const VNI = 44;
const VIP = '2001:db8:ff::1';
const VIP_MAC = '0e:06:00:00:00:01';
const CLIENT = { ip: '2001:db8:ff::a', mac: '02:00:00:00:00:01' };
const BE = { ip: '2001:db8:ff::2', mac: '02:00:00:00:00:02' };

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function bed() {
  const b = clientBackendBed({ vni: VNI, vip: VIP, client: CLIENT, backend: BE, names: ['ie6a', 'ie6b'] });
  open.push(...b.dataplanes);
  return b;
}

/** The backend's ICMPv6 error (type, code, bytes 4..7) quoting `cause` (a frame the backend received): IPv6 header + `quoteL4` bytes. */
function icmp6Error(cause: Buffer, type: number, code: number, word: number, quoteL4: number, src = BE.ip): Buffer {
  const quote = cause.subarray(14, 14 + 40 + quoteL4);
  const f = frame6({ dstMac: CLIENT.mac, srcMac: BE.mac, src, dst: CLIENT.ip, nh: 58, type, payload: quote });
  f[55] = code;
  f.writeUInt32BE(word, 58);
  f.writeUInt16BE(0, 56);
  f.writeUInt16BE(internetChecksum(f, 54, f.length - 54, ipv6PseudoHeaderSum(f, 22, 38, 58, f.length - 54)), 56);
  return f;
}

const L4_SUM_AT = { 6: 16, 17: 6, 58: 2 } as const;

describe('VIP: ICMPv6 errors from a backend', () => {
  for (const [what, nh, type, code, word, quoteL4] of [
    ['UDP port unreachable (whole datagram quoted)', 17, 1, 4, 0, 8 + 5],
    ['TCP packet too big (MTU 1280, whole header quoted)', 6, 2, 0, 1280, 20 + 5],
    ['TCP time exceeded (8 bytes of TCP quoted: no checksum in the quote)', 6, 3, 0, 0, 8],
    ['echo request unreachable (the quoted echo checksum covers the pseudo-header)', 58, 1, 0, 0, 8 + 5],
  ] as const) {
    it(`${what}: from the VIP, quoting the packet to the VIP, checksums valid`, async () => {
      const b = bed();
      const sent: F6 = { dstMac: VIP_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP, nh, sport: 40001, dport: 7, flags: 0x02, id: 77, payload: Buffer.from('hello') };
      b.cdev.inject(frame6(sent));
      await b.net.idle();
      const [cause] = b.bdev.received.splice(0);
      expect(parse6(cause).dst).toBe(BE.ip);
      b.bdev.inject(icmp6Error(cause, type, code, word, quoteL4));
      await b.net.idle();
      const [got] = b.cdev.received.splice(0);
      const p = parse6(got);
      expect([p.src, p.srcMac, p.dst, p.nh, p.type]).toEqual([VIP, VIP_MAC, CLIENT.ip, 58, type]);
      expect(got[55]).toBe(code);
      expect(got.readUInt32BE(58)).toBe(word);
      expect(p.checksumOk).toBe(true);
      expect(internetChecksum(got, 54, got.length - 54, ipv6PseudoHeaderSum(got, 22, 38, 58, got.length - 54))).toBe(0);
      // The quote: the client's packet as sent, to the VIP.
      const q = got.subarray(62);
      expect(q.length).toBe(40 + quoteL4);
      expect([formatIpAddress(6, q, 8), formatIpAddress(6, q, 24), q[6]]).toEqual([CLIENT.ip, VIP, nh]);
      const orig = frame6(sent).subarray(14);
      const at = 40 + L4_SUM_AT[nh];
      // Quoted with its checksum: the checksum the client sent (to the VIP); cut before it: as the backend got it.
      if (at + 2 <= q.length) expect(q.readUInt16BE(at)).toBe(orig.readUInt16BE(at));
      else expect(q.subarray(40)).toEqual(cause.subarray(54, 54 + quoteL4));
      const upTo = Math.min(at, q.length);
      expect(q.subarray(40, upTo)).toEqual(orig.subarray(40, upTo)); // ports and identifier never change
      expect(b.t.stats().counters.icmp_errors_translated).toBe(1);
    });
  }

  it('an error about no tracked flow, from another source than the quoted destination, or with a quote that does not parse, passes untouched', async () => {
    const b = bed();
    // A tracked flow, so the backend is known and its errors are looked at.
    b.cdev.inject(frame6({ dstMac: VIP_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP, nh: 17, sport: 40001, dport: 7, payload: Buffer.from('hello') }));
    await b.net.idle();
    const [cause] = b.bdev.received.splice(0);
    const stray = frame6({ dstMac: BE.mac, srcMac: CLIENT.mac, src: CLIENT.ip, dst: BE.ip, nh: 17, sport: 1234, dport: 7 });
    const cut = icmp6Error(cause, 1, 4, 0, 8).subarray(0, 14 + 40 + 8 + 40 + 4);
    cut.writeUInt16BE(8 + 40 + 4, 18);
    const frames = [
      icmp6Error(stray, 1, 4, 0, 8), // no flow
      icmp6Error(cause, 1, 4, 0, 8, '2001:db8:ff::99'), // from a router, not the backend
      cut, // a quote too short to hold the ports
      icmp6Error(cause, 4, 0, 0, 8).fill(0x45, 62, 63), // the quote is not IPv6
    ];
    for (const f of frames) b.bdev.inject(Buffer.from(f));
    await b.net.idle();
    const got = b.cdev.received.splice(0);
    expect(got.map((f) => formatIpAddress(6, f, 22))).toEqual([BE.ip, '2001:db8:ff::99', BE.ip, BE.ip]);
    expect(b.t.stats().counters.icmp_errors_translated).toBe(0);
  });
});
