import { afterEach, describe, expect, it } from 'vitest';
import { internetChecksum, type Dataplane } from '@overlay/dataplane';
import { clientBackendBed, ipv4Frame, parseIpv4Frame } from './vip-frames.js';

// ICMP errors from a backend about a flow's packet (port unreachable, frag-needed) reach the
// client as from the VIP, quoting the packet as the client sent it (to the VIP).
const VNI = 43;
const VIP = '198.19.255.1';
const VIP_MAC = '0e:00:c6:13:ff:01';
const CLIENT = { ip: '198.19.0.1', mac: '02:00:00:00:00:01' };
const BE = { ip: '198.19.0.2', mac: '02:00:00:00:00:02' };

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function bed() {
  const b = clientBackendBed({ vni: VNI, vip: VIP, client: CLIENT, backend: BE, names: ['ie1', 'ie2'] });
  open.push(...b.dataplanes);
  return b;
}

/** The backend's ICMP error (type, code, bytes 4..7) quoting `cause` (a frame the backend received): IP header + `quoteL4` bytes. */
function icmpError(cause: Buffer, type: number, code: number, word: number, quoteL4: number): Buffer {
  const ihl = (cause[14] & 15) * 4;
  const quote = cause.subarray(14, 14 + ihl + quoteL4);
  const f = ipv4Frame({ dstMac: CLIENT.mac, srcMac: BE.mac, src: BE.ip, dst: CLIENT.ip, proto: 'icmp', icmpType: type, payload: quote });
  f[35] = code;
  f.writeUInt32BE(word, 38);
  f.writeUInt16BE(0, 36);
  f.writeUInt16BE(internetChecksum(f, 34, f.length - 34), 36);
  return f;
}

describe('VIP: ICMP errors from a backend', () => {
  for (const [what, proto, type, code, word, quoteL4] of [
    ['UDP port unreachable (whole datagram quoted)', 'udp', 3, 3, 0, 8 + 5],
    ['TCP frag-needed (MTU 1400, 8 bytes of TCP quoted)', 'tcp', 3, 4, 1400, 8],
    ['TCP time exceeded (whole header quoted)', 'tcp', 11, 0, 0, 20],
  ] as const) {
    it(`${what}: from the VIP, quoting the packet to the VIP, checksums valid`, async () => {
      const b = bed();
      b.cdev.inject(ipv4Frame({ dstMac: VIP_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP, proto, sport: 40001, dport: 7, flags: 0x02, payload: Buffer.from('hello') }));
      await b.net.idle();
      const [cause] = b.bdev.received.splice(0);
      expect(parseIpv4Frame(cause).dst).toBe(BE.ip);
      b.bdev.inject(icmpError(cause, type, code, word, quoteL4));
      await b.net.idle();
      const [got] = b.cdev.received.splice(0);
      const p = parseIpv4Frame(got);
      expect([p.src, p.srcMac, p.dst, p.icmpType]).toEqual([VIP, VIP_MAC, CLIENT.ip, type]);
      expect(got[35]).toBe(code);
      expect(got.readUInt32BE(38)).toBe(word);
      expect(internetChecksum(got, 14, 20)).toBe(0);
      expect(internetChecksum(got, 34, got.length - 34)).toBe(0);
      // The quote: the client's packet as sent, to the VIP, with a valid header checksum.
      const q = got.subarray(42);
      const ip = (at: number) => [...q.subarray(at, at + 4)].join('.');
      expect([ip(12), ip(16), q.readUInt16BE(20), q.readUInt16BE(22)]).toEqual([CLIENT.ip, VIP, 40001, 7]);
      expect(internetChecksum(q, 0, 20)).toBe(0);
      if (proto === 'udp') {
        // The whole datagram is quoted: its checksum must verify against the VIP.
        const orig = ipv4Frame({ dstMac: VIP_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP, proto, sport: 40001, dport: 7, payload: Buffer.from('hello') });
        expect(q.readUInt16BE(26)).toBe(orig.readUInt16BE(40));
      }
      if (proto === 'tcp' && quoteL4 === 20) {
        const orig = ipv4Frame({ dstMac: VIP_MAC, srcMac: CLIENT.mac, src: CLIENT.ip, dst: VIP, proto, sport: 40001, dport: 7, flags: 0x02, payload: Buffer.from('hello') });
        expect(q.readUInt16BE(36)).toBe(orig.readUInt16BE(50));
      }
      expect(b.t.stats().counters.icmp_errors_translated).toBe(1);
    });
  }

  it('an error about no tracked flow, or a quote that does not parse, passes untouched', async () => {
    const b = bed();
    const stray = ipv4Frame({ dstMac: BE.mac, srcMac: CLIENT.mac, src: CLIENT.ip, dst: BE.ip, proto: 'udp', sport: 1234, dport: 7 });
    const e1 = icmpError(stray, 3, 3, 0, 8);
    const e2 = icmpError(stray, 3, 3, 0, 8).subarray(0, 14 + 20 + 8 + 12);
    e2.writeUInt16BE(20 + 8 + 12, 16);
    for (const f of [e1, e2]) b.bdev.inject(Buffer.from(f));
    await b.net.idle();
    const got = b.cdev.received.splice(0).map(parseIpv4Frame);
    expect(got.map((p) => p.src)).toEqual([BE.ip, BE.ip]);
    expect(b.t.stats().counters.icmp_errors_translated).toBe(0);
  });
});
