/**
 * The policy benchmarks' rule sets, frames and filters, shared by bench/micro-policy.ts
 * (benchmark.js, allocation proof) and bench/policy-hotpath.ts (instruction counts under
 * callgrind): one pool of 8 × 1024 slots, one StageContext the caller points at a frame.
 */
import { BufferPool, parseIpAddress, type StageContext } from '@overlay/dataplane';
// From the source files, not the package index: the bundle for callgrind then leaves out the health checks' native addon.
import { PolicyFilter } from '../../packages/services/src/policy/filter.js';
import type { Policy, PolicyRule } from '../../packages/services/src/policy/rules.js';

export const SYN = 0x02;
export const ACK = 0x10;
export const ip = (n: number) => `198.19.${(n >> 8) & 255}.${n & 255}`;
export const ipNum = (n: number) => (0xc6130000 | (n & 0xffff)) >>> 0;

// ---------------------------------------------------------------- rule sets
export function bigPolicy(): Policy {
  const admin: PolicyRule[] = [];
  const network: PolicyRule[] = [];
  const service: PolicyRule[] = [];
  for (let i = 0; i < 100; i++) admin.push({ id: `a${i}`, action: 'deny', to: { cidrs: [`198.19.${200 + (i % 50)}.${i}/32`] }, proto: 'tcp', ports: [String(20 + i)] });
  for (let i = 0; i < 9800; i++) network.push({ id: `n${i}`, action: 'allow', from: { groups: [`g${i % 200}`] }, to: { groups: [`g${(i * 7 + 3) % 200}`] }, proto: 'tcp', ports: [String(1000 + i)] });
  for (let i = 0; i < 100; i++) service.push({ id: `s${i}`, action: 'allow', from: { cidrs: [`198.18.${i}.0/24`] } });
  return { defaultAction: 'deny', tiers: { admin, network, service } };
}

export function cidrWildPolicy(): Policy {
  const network: PolicyRule[] = [];
  for (let i = 0; i < 10_000; i++) network.push({ id: `w${i}`, action: 'allow', from: { cidrs: [`198.18.${i >> 8}.${i & 255}/32`] }, proto: 'tcp' });
  return { defaultAction: 'deny', tiers: { network } };
}

export function groupMissPolicy(): Policy {
  const network: PolicyRule[] = [];
  for (let i = 0; i < 10_000; i++) network.push({ id: `w${i}`, action: 'allow', from: { groups: [`nobody${i % 100}`] }, proto: 'tcp' });
  return { defaultAction: 'deny', tiers: { network } };
}

/** Nested CIDRs /8 … /32 around 198.19.0.<n> (9 of them). */
export const nest4 = (n: number) => [8, 11, 14, 17, 20, 23, 26, 29, 32].map((len) => `${ipMasked(ipNum(n), len)}/${len}`);
function ipMasked(a: number, len: number): string {
  const m = (a & (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0)) >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}`;
}
/** 9 000 TCP rules on ports 10 000…18 999 over 8 × 8 groups and 9 × 9 nested CIDRs (every atom pair a cell), 1 000 more from elsewhere. */
export function worstPolicy(): Policy {
  const from = [...Array.from({ length: 8 }, (_, i) => ({ groups: [`sg${i}`] })), ...nest4(7).map((c) => ({ cidrs: [c] }))];
  const to = [...Array.from({ length: 8 }, (_, i) => ({ groups: [`dg${i}`] })), ...nest4(9).map((c) => ({ cidrs: [c] }))];
  const network: PolicyRule[] = [];
  for (let i = 0; i < 9_000; i++) network.push({ id: `x${i}`, action: 'allow', from: from[i % from.length], to: to[Math.floor(i / from.length) % to.length], proto: 'tcp', ports: [String(10_000 + i)] });
  // The packets' ports 20 000 … 20 999 are named by rules of a group they are not in: the port
  // check passes and every one of the 289 cells is probed.
  for (let i = 0; i < 1_000; i++) network.push({ id: `y${i}`, action: 'allow', from: { groups: ['elsewhere'] }, proto: 'tcp', ports: [String(20_000 + i)] });
  return { defaultAction: 'deny', tiers: { network } };
}

/** 10 000 TCP rules web → db, each on its own port: all in the one cell the packet meets (a binary search over 10 000 intervals). */
export function oneCellPolicy(): Policy {
  const network: PolicyRule[] = [];
  for (let i = 0; i < 10_000; i++) network.push({ id: `o${i}`, action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: [String(10_000 + 2 * i)] });
  return { defaultAction: 'deny', tiers: { network } };
}

export const ip6 = (n: number) => `2001:db8::${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
/** IPv6: 4 000 rules from /128 sources, 3 000 from /64s, 3 000 group → group on a port each; none match the bench's SYN. */
export function v6Policy(): Policy {
  const network: PolicyRule[] = [];
  for (let i = 0; i < 4000; i++) network.push({ id: `h${i}`, action: 'allow', from: { cidrs: [`2001:db8:1::${i.toString(16)}/128`] }, proto: 'tcp' });
  for (let i = 0; i < 3000; i++) network.push({ id: `p${i}`, action: 'allow', from: { cidrs: [`2001:db8:2:${i.toString(16)}::/64`] }, proto: 'tcp', ports: ['443'] });
  for (let i = 0; i < 3000; i++) network.push({ id: `g${i}`, action: 'allow', from: { groups: [`g${i % 200}`] }, to: { groups: [`g${(i * 7 + 3) % 200}`] }, proto: 'tcp', ports: [String(1000 + i)] });
  network.push({ id: 'web', action: 'allow', from: { cidrs: ['2001:db8::/64'] }, to: { cidrs: ['2001:db8::/64'] }, proto: 'tcp', ports: ['80'] });
  return { defaultAction: 'deny', tiers: { network } };
}

// ---------------------------------------------------------------- frames in slots
export const pool = new BufferPool({ count: 1024 * 8 });
/** Zero the slot's first `len` bytes and write an Ethernet header 02:..:01 → 02:..:02 of `etherType`; returns the L3 offset. */
function ethernet(slot: number, len: number, etherType: number): number {
  const d = pool.data;
  const o = pool.off[slot];
  d.fill(0, o, o + len);
  d[o] = 2; // dst MAC 02:00:00:00:00:02
  d[o + 5] = 2;
  d[o + 6] = 2;
  d[o + 11] = 1;
  d.writeUInt16BE(etherType, o + 12);
  return o + 14;
}
export function writeTcp(slot: number, src: number, dst: number, sport: number, dport: number, flags: number): void {
  const d = pool.data;
  const l3 = ethernet(slot, 54, 0x0800);
  d[l3] = 0x45;
  d.writeUInt16BE(40, l3 + 2);
  d[l3 + 8] = 64;
  d[l3 + 9] = 6;
  d.writeUInt32BE(src, l3 + 12);
  d.writeUInt32BE(dst, l3 + 16);
  d.writeUInt16BE(sport, l3 + 20);
  d.writeUInt16BE(dport, l3 + 22);
  d[l3 + 32] = 0x50;
  d[l3 + 33] = flags;
  pool.len[slot] = 54;
}
export function writeTcp6(slot: number, src: number, dst: number, sport: number, dport: number, flags: number): void {
  const d = pool.data;
  const l3 = ethernet(slot, 74, 0x86dd);
  d[l3] = 0x60;
  d.writeUInt16BE(20, l3 + 4);
  d[l3 + 6] = 6;
  d[l3 + 7] = 64;
  d.set(parseIpAddress(ip6(src)).bytes, l3 + 8);
  d.set(parseIpAddress(ip6(dst)).bytes, l3 + 24);
  d.writeUInt16BE(sport, l3 + 40);
  d.writeUInt16BE(dport, l3 + 42);
  d[l3 + 52] = 0x50;
  d[l3 + 53] = flags;
  pool.len[slot] = 74;
}
export function slots(n: number): Int32Array {
  const s = new Int32Array(n);
  for (let i = 0; i < n; i++) s[i] = pool.acquire();
  return s;
}

export const ctx = {
  pool,
  vni: 42,
  etherType: 0x0800,
  l3: 0,
  group: false,
  toDevice() {},
  toNetwork() {},
  drop() {},
} satisfies StageContext;

export function filter(policy: Policy): PolicyFilter {
  const f = new PolicyFilter({ policy, timers: false, capacity: 1 << 16, log: () => {}, logRate: 0, logBurst: 0 });
  // 1000 workloads, each in one or two of 200 groups.
  for (let n = 1; n <= 1000; n++) f.identity.set(ip(n), n % 3 === 0 ? [`g${n % 200}`, `g${(n * 13) % 200}`] : [`g${n % 200}`]);
  f.attach(ctx);
  return f;
}

