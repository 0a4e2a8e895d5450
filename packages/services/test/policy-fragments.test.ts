import { afterEach, describe, expect, it } from 'vitest';
import { parseIpAddress, type Dataplane } from '@overlay/dataplane';
import { DB, MAC, OTHER, WEB, policyHosts, type PolicyHost } from './policy-bed.js';
import type { Policy } from '../src/policy/rules.js';
import { FRAGMENT_TTL_MS } from '../src/fragments.js';

// Fragmented datagrams through the policy filter. Only the first fragment carries the ports; the
// filter judges it and lets the rest of that datagram follow. Before, every non-first fragment was
// dropped, so a UDP datagram larger than the overlay MTU never arrived with policy on (the bench's
// 1400 B UDP through the encrypted overlay, MTU below 1428: 100 % lost).
const VNI = 44;
const IP4 = (n: number) => `198.19.0.${n}`;
const IP6 = (n: number) => `2001:db8::${n}`;
const POLICY: Policy = {
  defaultAction: 'deny',
  tiers: {
    network: [
      { id: 'dns4', action: 'allow', from: { cidrs: ['198.19.0.1/32'] }, proto: 'udp', ports: ['53'] },
      { id: 'dns6', action: 'allow', from: { cidrs: ['2001:db8::1/128'] }, proto: 'udp', ports: ['53'] },
    ],
  },
};

const open: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function eth(src: number, dst: number, type: number): Buffer {
  const b = Buffer.alloc(14);
  Buffer.from(MAC(dst).split(':').map((x) => parseInt(x, 16))).copy(b, 0);
  Buffer.from(MAC(src).split(':').map((x) => parseInt(x, 16))).copy(b, 6);
  b.writeUInt16BE(type, 12);
  return b;
}

/** The UDP datagram (header + `size` payload bytes) from a:sport to b:53, cut into `parts` IPv4 fragments. */
function fragments4(a: number, b: number, ident: number, size: number, parts: number, sport = 40000): Buffer[] {
  const udp = Buffer.alloc(8 + size, 0x5a);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(53, 2);
  udp.writeUInt16BE(8 + size, 4);
  udp.writeUInt16BE(0, 6);
  const step = Math.ceil(udp.length / parts / 8) * 8;
  const out: Buffer[] = [];
  for (let off = 0; off < udp.length; off += step) {
    const body = udp.subarray(off, Math.min(udp.length, off + step));
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + body.length, 2);
    ip.writeUInt16BE(ident, 4);
    ip.writeUInt16BE((off + step < udp.length ? 0x2000 : 0) | (off >> 3), 6);
    ip[8] = 64;
    ip[9] = 17;
    Buffer.from(parseIpAddress(IP4(a)).bytes).copy(ip, 12);
    Buffer.from(parseIpAddress(IP4(b)).bytes).copy(ip, 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    ip.writeUInt16BE(~sum & 0xffff, 10);
    out.push(Buffer.concat([eth(a, b, 0x0800), ip, body]));
  }
  return out;
}

/** The same for IPv6: a fragment header (ident 32 bits) after the fixed header. */
function fragments6(a: number, b: number, ident: number, size: number, parts: number): Buffer[] {
  const udp = Buffer.alloc(8 + size, 0x6b);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(53, 2);
  udp.writeUInt16BE(8 + size, 4);
  const step = Math.ceil(udp.length / parts / 8) * 8;
  const out: Buffer[] = [];
  for (let off = 0; off < udp.length; off += step) {
    const body = udp.subarray(off, Math.min(udp.length, off + step));
    const ip = Buffer.alloc(48);
    ip[0] = 0x60;
    ip.writeUInt16BE(8 + body.length, 4);
    ip[6] = 44;
    ip[7] = 64;
    Buffer.from(parseIpAddress(IP6(a)).bytes).copy(ip, 8);
    Buffer.from(parseIpAddress(IP6(b)).bytes).copy(ip, 24);
    ip[40] = 17;
    ip.writeUInt16BE(off | (off + step < udp.length ? 1 : 0), 42);
    ip.writeUInt32BE(ident >>> 0, 44);
    out.push(Buffer.concat([eth(a, b, 0x86dd), ip, body]));
  }
  return out;
}

function bed() {
  return policyHosts({ vni: VNI, open, filter: { policy: POLICY }, identity: [] });
}
const drops = (h: PolicyHost) => h.dp.stats().stages.policy;
const passed = (h: PolicyHost) => h.f.counters.get('fragments_passed');

describe('policy filter: fragmented datagrams', () => {
  for (const [family, frag] of [
    ['IPv4', fragments4],
    ['IPv6', fragments6],
  ] as const) {
    it(`${family}: every fragment of an allowed datagram arrives, in order; the later ones pass on the first's verdict at both ends`, async () => {
      const b = bed();
      const parts = frag(WEB, DB, 0x1234, 2900, 3);
      expect(parts).toHaveLength(3);
      const got: Buffer[] = [];
      for (const p of parts) got.push(...(await b.inject(WEB, DB, p)));
      expect(got.map((g) => g.length)).toEqual(parts.map((p) => p.length));
      // Judged egress at web, ingress at db: the two later fragments passed at each.
      expect(passed(b.hosts[WEB - 1])).toBe(2);
      expect(passed(b.hosts[DB - 1])).toBe(2);
      expect(drops(b.hosts[WEB - 1]).fragment ?? 0).toBe(0);
    });

    it(`${family}: a denied first fragment takes its datagram's later fragments with it; a later fragment of no first is dropped`, async () => {
      const b = bed();
      // From other (no rule allows it): the first is denied, the rest are fragment drops.
      const denied = frag(OTHER, DB, 7, 2900, 3);
      for (const p of denied) expect(await b.inject(OTHER, DB, p)).toHaveLength(0);
      expect(drops(b.hosts[OTHER - 1])).toMatchObject({ denied: 1, fragment: 2 });
      // From web but its first fragment never seen (lost, or reordered after the rest).
      const orphan = frag(WEB, DB, 8, 2900, 3);
      for (const p of orphan.slice(1)) expect(await b.inject(WEB, DB, p)).toHaveLength(0);
      expect(drops(b.hosts[WEB - 1]).fragment).toBe(2);
      // Another datagram of the allowed flow does not open the way for a different ident.
      const first = frag(WEB, DB, 9, 2900, 3);
      expect(await b.inject(WEB, DB, first[0])).toHaveLength(1);
      const other = frag(WEB, DB, 10, 2900, 3);
      expect(await b.inject(WEB, DB, other[2])).toHaveLength(0);
      expect(await b.inject(WEB, DB, first[2])).toHaveLength(1);
    });

    it(`${family}: later fragments stop passing after the TTL and after a policy swap`, async () => {
      const b = bed();
      const a = frag(WEB, DB, 21, 2900, 3);
      expect(await b.inject(WEB, DB, a[0])).toHaveLength(1);
      b.tick(FRAGMENT_TTL_MS + 200);
      expect(await b.inject(WEB, DB, a[1])).toHaveLength(0);
      const c = frag(WEB, DB, 22, 2900, 3);
      expect(await b.inject(WEB, DB, c[0])).toHaveLength(1);
      for (const h of b.hosts) h.f.setPolicy(POLICY); // the same rules, a new generation: first fragments are judged again
      expect(await b.inject(WEB, DB, c[1])).toHaveLength(0);
      expect(drops(b.hosts[WEB - 1]).fragment).toBe(2);
    });
  }
});
