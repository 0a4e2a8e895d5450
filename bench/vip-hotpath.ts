/**
 * The VIP translator's established-flow path alone, for instruction counts (callgrind) and a
 * quick CPU-time figure: one TCP flow client → VIP through `inside`, its reply through `outside`,
 * frames restored from templates (the 28 rewritten bytes) before each pair; the restore alone is
 * a separate mode, subtracted.
 *
 *   node --conditions=source --import tsx bench/vip-hotpath.ts time [N]     CPU ns per packet (7 rounds)
 *   node <bundle> pairs N | restore N                                    N pairs / restores, nothing printed
 *
 * `bash bench/run.sh vip-callgrind` (bench/vip-instructions.ts) bundles this file and runs
 * `pairs` and `restore` under valgrind's callgrind at two N: the difference of instructions over
 * the difference of N cancels start-up and JIT compilation, and does not move with the load.
 */
import { BufferPool, PASS, type StageContext } from '@overlay/dataplane';
import { VipTranslator } from '../packages/services/src/vip/translator.js';
import { ipv4Frame } from '../packages/services/test/vip-frames.js';

class Ctx implements StageContext {
  etherType = 0;
  l3 = 0;
  group = false;
  vni = 42;
  constructor(readonly pool: BufferPool) {}
  view(slot: number): void {
    const d = this.pool.data;
    const off = this.pool.off[slot];
    this.etherType = (d[off + 12] << 8) | d[off + 13];
    this.l3 = off + 14;
  }
  toDevice(s: number): void {
    this.pool.release(s);
  }
  toNetwork(s: number): void {
    this.pool.release(s);
  }
  drop(_a: unknown, _r: number, s: number): void {
    this.pool.release(s);
  }
}

const VIP = '198.19.255.1';
const CM = '02:00:00:00:00:01';
const backends = [2, 3, 4].map((n) => ({ id: `b${n}`, ip: `198.19.0.${n}`, mac: `02:00:00:00:00:0${n}`, state: 'healthy' as const }));
const pool = new BufferPool({ count: 64, frameCapacity: 2048 });
const ctx = new Ctx(pool);
const ctxOut = new Ctx(pool);
const t = new VipTranslator({ capacity: 65536, timers: false, clock: () => 0 });
t.attach(ctx);
t.setVip({ vip: VIP, ports: [80], backends });
const tcp = (dm: string, sm: string, s: string, d: string, sp: number, dp: number, f: number, p = 0) =>
  new Uint8Array(ipv4Frame({ dstMac: dm, srcMac: sm, src: s, dst: d, proto: 'tcp', sport: sp, dport: dp, flags: f, payload: new Uint8Array(p) }));
const sIn = pool.acquire();
pool.fill(sIn, tcp('0e:00:c6:13:ff:01', CM, '198.19.0.1', VIP, 40000, 80, 0x02));
ctx.view(sIn);
if (t.inside(ctx, sIn) !== PASS) throw new Error('SYN not translated');
const d = pool.data;
const oi = pool.off[sIn];
const be = `${d[oi + 30]}.${d[oi + 31]}.${d[oi + 32]}.${d[oi + 33]}`;
const beMac = backends.find((b) => b.ip === be)!.mac;
const sOut = pool.acquire();
pool.fill(sOut, tcp(CM, beMac, be, '198.19.0.1', 80, 40000, 0x12));
ctxOut.view(sOut);
t.outside(ctxOut, sOut);
const data = tcp('0e:00:c6:13:ff:01', CM, '198.19.0.1', VIP, 40000, 80, 0x18, 10);
const ack = tcp(CM, beMac, be, '198.19.0.1', 80, 40000, 0x10);
const oo = pool.off[sOut];
d.set(data, oi);
d.set(ack, oo);
pool.len[sIn] = data.length;
pool.len[sOut] = ack.length;
ctx.view(sIn);
ctxOut.view(sOut);

/** What the translator rewrote: inside the destination MAC, address and both checksums; outside the source's. */
function restore(): void {
  for (let i = 0; i < 6; i++) d[oi + i] = data[i];
  for (let i = 30; i < 34; i++) d[oi + i] = data[i];
  d[oi + 24] = data[24];
  d[oi + 25] = data[25];
  d[oi + 50] = data[50];
  d[oi + 51] = data[51];
  for (let i = 6; i < 12; i++) d[oo + i] = ack[i];
  for (let i = 26; i < 30; i++) d[oo + i] = ack[i];
  d[oo + 24] = ack[24];
  d[oo + 25] = ack[25];
  d[oo + 50] = ack[50];
  d[oo + 51] = ack[51];
}

let bad = 0;
function pairs(n: number): void {
  for (let i = 0; i < n; i++) {
    restore();
    if (t.inside(ctx, sIn) !== PASS) bad++;
    if (t.outside(ctxOut, sOut) !== PASS) bad++;
  }
}
function restores(n: number): void {
  for (let i = 0; i < n; i++) restore();
}

const mode = process.argv[2] ?? 'time';
const N = Number(process.argv[3] ?? 1e6);
if (!(N >= 0 && N % 1000 === 0)) throw new Error('N: a multiple of 1000');
if (mode === 'time') {
  pairs(2e5);
  restores(2e5);
  const cpu = (f: (n: number) => void) => {
    const c0 = process.cpuUsage();
    f(N);
    const c = process.cpuUsage(c0);
    return ((c.user + c.system) * 1000) / N;
  };
  const r: number[] = [];
  const b: number[] = [];
  for (let k = 0; k < 7; k++) {
    r.push(cpu(restores));
    b.push(cpu(pairs));
  }
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
  console.log(`CPU ns: restore ${med(r).toFixed(1)}, pair ${med(b).toFixed(1)}, per packet less restore ${((med(b) - med(r)) / 2).toFixed(1)} (pairs ${b.map((x) => x.toFixed(0)).join(' ')})`);
} else {
  // Calls of 1000, so each function is optimized as a whole (no on-stack replacement in one long loop).
  const f = mode === 'pairs' ? pairs : mode === 'restore' ? restores : undefined;
  if (!f) throw new Error(`mode: time, pairs or restore, got ${mode}`);
  for (let k = 0; k < N; k += 1000) f(1000);
}
if (bad) throw new Error(`${bad} packets not translated`);
