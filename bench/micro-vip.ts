/**
 * VIP translator micro-benchmarks (benchmark.js), the allocation proof, memory per flow, the
 * flood past the cap, and 10^6 mutated packets through the stage.
 *
 *   node --expose-gc --conditions=source --import tsx bench/micro-vip.ts [--quick]
 *
 * 1. lookup + rewrite per packet on an established flow: the translator's inside (client → VIP:
 *    conntrack lookup, dst MAC and IP rewritten, IP and TCP checksums updated) and outside
 *    (backend → client: reply lookup, src rewritten back to the VIP), each alone and both,
 *    called as the pipeline calls a stage, on a frame restored from a template before each call;
 *    the restore alone is measured in the same round and subtracted. min / median / max over
 *    ≥ 5 rounds, wall clock (benchmark.js) and CPU time, with the load average. Also inside for
 *    an IPv6 VIP (2001:db8:ff::1, 128-bit keys compared in full, the TCP checksum updated over
 *    the 8 words of the address). Instructions per packet: `bash bench/run.sh vip-callgrind`.
 * 2. allocation proof: 10^6 packets each way after warm-up, heap growth and GC count.
 * 3. memory: a translator with capacity 2^20 and 10^6 tracked flows (heap + array buffers, RSS).
 * 4. flood: 10^5 new flows on the full table — refused and counted; the established flows still translate.
 * 5. 10^6 mutated frames through the stage: throws, verdicts and counters must add up.
 */
import Benchmark from 'benchmark';
import { loadavg } from 'node:os';
import { BufferPool, ETHERTYPE_VLAN, PASS, REPLY, type StageContext } from '@overlay/dataplane';
import { buildArpRequest, seededRandom } from '@overlay/dataplane/testing';
import { VIP_DROP_REASONS, VipTranslator } from '@overlay/services';
import { tag8021q } from '../packages/services/test/fuzz-batch.js';
import { frame6, ipv4Frame } from '../packages/services/test/vip-frames.js';
import { heapDuring } from './lib/heap.js';
import { median, spreadPct } from './lib/stats.js';

const quick = process.argv.includes('--quick');
const VIP = '198.19.255.1';
const CLIENT_MAC = '02:00:00:00:00:01';
const backends = [2, 3, 4].map((n) => ({ id: `b${n}`, ip: `198.19.0.${n}`, mac: `02:00:00:00:00:0${n}`, state: 'healthy' as const }));

/** An IPv4 TCP frame with valid checksums (setup only): the VIP tests' frame builder, `payload` zero bytes. */
function tcpFrame(dstMac: string, srcMac: string, src: string, dst: string, sport: number, dport: number, flags: number, payload = 0): Buffer {
  return ipv4Frame({ dstMac, srcMac, src, dst, proto: 'tcp', sport, dport, flags, payload: Buffer.alloc(payload) });
}

/** The StageContext the pipeline would pass: one pool, the L3 view computed per frame like the pipeline does. */
class BenchCtx implements StageContext {
  etherType = 0;
  l3 = 0;
  group = false;
  devices = 0;
  constructor(readonly pool: BufferPool, readonly vni = 42) {}
  view(slot: number): void {
    const d = this.pool.data;
    const off = this.pool.off[slot];
    const len = this.pool.len[slot];
    this.group = (d[off] & 1) === 1;
    let et = len >= 14 ? (d[off + 12] << 8) | d[off + 13] : -1;
    let l3 = off + 14;
    if (et === ETHERTYPE_VLAN) {
      et = len >= 18 ? (d[off + 16] << 8) | d[off + 17] : -1;
      l3 = off + 18;
    }
    this.etherType = et;
    this.l3 = l3;
  }
  toDevice(slot: number): void {
    this.devices++;
    this.pool.release(slot);
  }
  toNetwork(slot: number): void {
    this.pool.release(slot);
  }
  drop(_s: unknown, _r: number, slot: number): void {
    this.pool.release(slot);
  }
}

function setup(capacity: number) {
  const pool = new BufferPool({ count: 64, frameCapacity: 2048 });
  const ctx = new BenchCtx(pool);
  let now = 0;
  const t = new VipTranslator({ capacity, timers: false, clock: () => now, timeouts: { tcpEstablishedMs: 3_600_000 } });
  t.attach(ctx);
  t.setVip({ vip: VIP, ports: [80], backends });
  return { pool, ctx, t, advance: (ms: number) => ((now += ms), t.tick()) };
}

const opts: Benchmark.Options = quick ? { maxTime: 0.5, minSamples: 5 } : { maxTime: 2, minSamples: 20 };

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${quick ? 'quick' : 'full'} run`);
  // ------------------------------------------------------------ 1. lookup + rewrite
  const { pool, ctx, t } = setup(65536);
  const syn = tcpFrame('0e:00:c6:13:ff:01', CLIENT_MAC, '198.19.0.1', VIP, 40000, 80, 0x02);
  const data = tcpFrame('0e:00:c6:13:ff:01', CLIENT_MAC, '198.19.0.1', VIP, 40000, 80, 0x18, 10);
  const sIn = pool.acquire();
  pool.fill(sIn, syn);
  ctx.view(sIn);
  if (t.inside(ctx, sIn) !== PASS) throw new Error('SYN not translated');
  const be = `${pool.data[pool.off[sIn] + 30]}.${pool.data[pool.off[sIn] + 31]}.${pool.data[pool.off[sIn] + 32]}.${pool.data[pool.off[sIn] + 33]}`;
  const beMac = backends.find((b) => b.ip === be)!.mac;
  const reply = tcpFrame(CLIENT_MAC, beMac, be, '198.19.0.1', 80, 40000, 0x12);
  const sOut = pool.acquire();
  pool.fill(sOut, reply);
  ctx.view(sOut);
  t.outside(ctx, sOut);
  const d = pool.data;
  const offIn = pool.off[sIn];
  const offOut = pool.off[sOut];
  const ack = tcpFrame(CLIENT_MAC, beMac, be, '198.19.0.1', 80, 40000, 0x10);
  let bad = 0;
  // Restore only what the translator rewrites (one MAC, one address, the IP and TCP
  // checksums; 14 bytes): a whole-frame TypedArray.set costs more than the translation itself.
  const restoreIn = () => {
    for (let i = 0; i < 6; i++) d[offIn + i] = data[i];
    for (let i = 30; i < 34; i++) d[offIn + i] = data[i];
    d[offIn + 24] = data[24];
    d[offIn + 25] = data[25];
    d[offIn + 50] = data[50];
    d[offIn + 51] = data[51];
  };
  const restoreOut = () => {
    for (let i = 6; i < 12; i++) d[offOut + i] = ack[i];
    for (let i = 26; i < 30; i++) d[offOut + i] = ack[i];
    d[offOut + 24] = ack[24];
    d[offOut + 25] = ack[25];
    d[offOut + 50] = ack[50];
    d[offOut + 51] = ack[51];
  };
  d.set(data, offIn);
  d.set(ack, offOut);
  pool.len[sIn] = data.length;
  pool.len[sOut] = ack.length;
  ctx.view(sIn);
  // The other direction's view, as the pipeline would compute it for that frame.
  const ctxOut = new BenchCtx(pool);
  ctxOut.view(sOut);
  // IPv6: the same flow shape to an IPv6 VIP on the same translator.
  const VIP6 = '2001:db8:ff::1';
  const VIP6_MAC = '0e:06:00:00:00:01';
  t.setVip({ vip: VIP6, ports: [80], backends: [2, 3, 4].map((n) => ({ id: `b${n}`, ip: `2001:db8:ff::${n}`, mac: `02:00:00:00:00:0${n}`, state: 'healthy' as const })) });
  const c6 = { dstMac: VIP6_MAC, srcMac: CLIENT_MAC, src: '2001:db8:ff::a', dst: VIP6, nh: 6 as const, sport: 40000, dport: 80 };
  const data6 = frame6({ ...c6, flags: 0x18, payload: Buffer.alloc(10) });
  const sIn6 = pool.acquire();
  pool.fill(sIn6, frame6({ ...c6, flags: 0x02 }));
  const ctx6 = new BenchCtx(pool);
  ctx6.view(sIn6);
  if (t.inside(ctx6, sIn6) !== PASS) throw new Error('IPv6 SYN not translated');
  const offIn6 = pool.off[sIn6];
  d.set(data6, offIn6);
  pool.len[sIn6] = data6.length;
  // Rewritten: destination MAC, destination address (bytes 38..53), TCP checksum (70, 71).
  const restoreIn6 = () => {
    for (let i = 0; i < 6; i++) d[offIn6 + i] = data6[i];
    for (let i = 38; i < 54; i++) d[offIn6 + i] = data6[i];
    d[offIn6 + 70] = data6[70];
    d[offIn6 + 71] = data6[71];
  };
  const N = 1000;
  const RESTORE = 'restore only (template copy, subtracted)';
  const runs: Record<string, () => void> = {
    [RESTORE]: () => {
      for (let i = 0; i < N; i++) (restoreIn(), restoreOut(), restoreIn6());
    },
    'inside: client → VIP (64 B TCP segment, established)': () => {
      for (let i = 0; i < N; i++) {
        restoreIn();
        restoreOut();
        restoreIn6();
        if (t.inside(ctx, sIn) !== PASS) bad++;
      }
    },
    'outside: backend → client (54 B TCP ACK, established)': () => {
      for (let i = 0; i < N; i++) {
        restoreIn();
        restoreOut();
        restoreIn6();
        if (t.outside(ctxOut, sOut) !== PASS) bad++;
      }
    },
    'inside + outside (one packet each way)': () => {
      for (let i = 0; i < N; i++) {
        restoreIn();
        restoreOut();
        restoreIn6();
        if (t.inside(ctx, sIn) !== PASS) bad++;
        if (t.outside(ctxOut, sOut) !== PASS) bad++;
      }
    },
    'inside IPv6: lookup and rewrite (84 B TCP segment to an IPv6 VIP)': () => {
      for (let i = 0; i < N; i++) {
        restoreIn();
        restoreOut();
        restoreIn6();
        if (t.inside(ctx6, sIn6) !== PASS) bad++;
      }
    },
  };
  /** Packets per call of N iterations. */
  const packets = (name: string) => (name === RESTORE ? 1 : name.includes('+') ? 2 : 1);
  for (const f of Object.values(runs)) for (let w = 0; w < 200; w++) f();
  const before = t.stats().counters;
  const load0 = loadavg();
  const ROUNDS = quick ? 5 : 7;
  // Per round: ns per call of the loop body (benchmark.js), and the same less that round's restore, per packet.
  const perOp: Record<string, number[]> = {};
  const net: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const got: Record<string, number> = {};
    await new Promise<void>((resolve) => {
      const s = new Benchmark.Suite();
      for (const [name, fn] of Object.entries(runs)) s.add(name, fn, opts);
      s.on('cycle', (e: Benchmark.Event) => {
        const b = e.target as unknown as Benchmark;
        got[b.name!] = 1e9 / (b.hz ?? 1) / N;
      });
      s.on('complete', () => resolve());
      s.run();
    });
    for (const [name, x] of Object.entries(got)) {
      (perOp[name] ??= []).push(x);
      if (name !== RESTORE) (net[name] ??= []).push((x - got[RESTORE]) / packets(name));
    }
  }
  const after = t.stats().counters;
  if (bad || after.translated_inside === before.translated_inside || after.translated_outside === before.translated_outside) throw new Error(`translation failed (${bad})`);
  // CPU time (process.cpuUsage) over fixed loops: excludes time this process was descheduled,
  // which dominates wall-clock figures on a loaded machine.
  const cpuNs = (fn: () => void, ops: number) => {
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    return ((c.user + c.system) * 1000) / ops;
  };
  const cpuNet: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const got: Record<string, number> = {};
    for (const [name, fn] of Object.entries(runs)) got[name] = cpuNs(() => {
      for (let r = 0; r < 1000; r++) fn();
    }, 1000 * N);
    for (const [name, x] of Object.entries(got)) if (name !== RESTORE) (cpuNet[name] ??= []).push((x - got[RESTORE]) / packets(name));
  }
  const load1 = loadavg();
  const mmm = (xs: number[]) => `min ${Math.min(...xs).toFixed(1)} / median ${median(xs).toFixed(1)} / max ${Math.max(...xs).toFixed(1)} ns per packet`;
  console.log(`\n1. lookup + rewrite on an established flow, ns per packet less the template restore, over ${ROUNDS} rounds; load average ${load0.map((x) => x.toFixed(1)).join(' ')} at the start, ${load1.map((x) => x.toFixed(1)).join(' ')} at the end (2 shared cores)`);
  console.log(`   benchmark.js (wall clock; restore ${mmm(perOp[RESTORE])}):`);
  for (const [name, xs] of Object.entries(net)) console.log(`   ${name}: ${mmm(xs)} (spread ${spreadPct(xs).toFixed(0)} %)`);
  console.log('   CPU time (process.cpuUsage, 10^6 iterations per round; time descheduled excluded):');
  for (const [name, xs] of Object.entries(cpuNet)) console.log(`   ${name}: ${mmm(xs)} (spread ${spreadPct(xs).toFixed(0)} %)`);

  // ------------------------------------------------------------ 2. allocation proof
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    console.log('\n2. allocation proof skipped: run with node --expose-gc');
    process.exitCode = 1;
  } else {
    const P = 1_000_000;
    const measure = (work: () => void) => heapDuring(gc, work);
    const m = await measure(() => {
      for (let i = 0; i < P; i++) {
        restoreIn();
        restoreOut();
        t.inside(ctx, sIn);
        t.outside(ctxOut, sOut);
      }
    });
    const ring: unknown[] = new Array(1024).fill(null);
    const control = await measure(() => {
      for (let i = 0; i < P; i++) ring[i & 1023] = { slot: i, len: 64 };
    });
    console.log(`\n2. allocation: ${P.toLocaleString('en')} packets each way: heap growth ${(m.growth / 1024).toFixed(1)} KiB (${(m.growth / (2 * P)).toFixed(3)} B/packet), ${m.gcs} GCs; control (1 object per packet): ${(control.growth / 1024).toFixed(1)} KiB, ${control.gcs} GCs`);
  }

  // ------------------------------------------------------------ 3./4. memory for 10^6 flows, flood past the cap
  gc?.();
  const mem0 = process.memoryUsage();
  const big = setup(1 << 20);
  const mem1 = process.memoryUsage();
  const FLOWS = 1_000_000;
  const f = big.pool.acquire();
  const tpl = tcpFrame('0e:00:c6:13:ff:01', CLIENT_MAC, '198.19.0.1', VIP, 1, 80, 0x10);
  const bd = big.pool.data;
  const bo = big.pool.off[f];
  const open = (k: number, flags: number) => {
    bd.set(tpl, bo);
    big.pool.len[f] = tpl.length;
    // client 198.19.x.y with x.y from k >> 10, port 32768 + (k & 1023): a distinct 5-tuple per k
    bd[bo + 28] = 1 + (k >>> 18);
    bd[bo + 29] = (k >>> 10) & 0xff;
    bd[bo + 34] = 0x80 | ((k >>> 8) & 3);
    bd[bo + 35] = k & 0xff;
    bd[bo + 47] = flags;
    big.ctx.view(f);
    return big.t.inside(big.ctx, f);
  };
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < FLOWS; k++) open(k, 0x10);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  gc?.();
  const mem2 = process.memoryUsage();
  const st = big.t.stats();
  const tracked = (mem2.heapUsed + mem2.arrayBuffers - mem0.heapUsed - mem0.arrayBuffers) / 2 ** 20;
  console.log(`\n3. memory: capacity ${st.capacity.toLocaleString('en')}, ${st.flows.toLocaleString('en')} flows tracked (opened at ${(FLOWS / secs / 1e6).toFixed(2)} M flows/s): heap + array buffers +${tracked.toFixed(1)} MiB (tables preallocated: +${((mem1.heapUsed + mem1.arrayBuffers - mem0.heapUsed - mem0.arrayBuffers) / 2 ** 20).toFixed(1)} MiB at creation), RSS ${(mem2.rss / 2 ** 20).toFixed(0)} MiB, ${((tracked * 2 ** 20) / st.flows).toFixed(0)} B per flow`);
  if (st.flows !== FLOWS) throw new Error(`expected ${FLOWS} flows, got ${st.flows}`);
  // Fill to the cap, then flood.
  const cap = st.capacity;
  for (let k = FLOWS; k < cap; k++) open(k, 0x10);
  const FLOOD = 100_000;
  const refused0 = big.t.stats().drops.table_full;
  let passed = 0;
  for (let k = 0; k < FLOOD; k++) if (open(cap + 5 + k * 3, 0x02) === PASS) passed++;
  const refused = big.t.stats().drops.table_full - refused0;
  let still = 0;
  for (let k = 0; k < 100_000; k++) if (open(k * 7, 0x10) === PASS) still++;
  console.log(`4. flood: ${FLOOD.toLocaleString('en')} new flows on a full table (${big.t.stats().flows.toLocaleString('en')}/${cap.toLocaleString('en')}): ${refused.toLocaleString('en')} refused (table_full), ${passed} admitted; 100,000 established flows sampled after: ${still.toLocaleString('en')} still translated, ${big.t.stats().conntrack.expired} expired`);

  // ------------------------------------------------------------ 5. 10^6 mutated frames
  const fz = setup(4096);
  const rnd = seededRandom(0xbee);
  const tpls = [syn, data, tcpFrame('0e:00:c6:13:ff:01', CLIENT_MAC, '198.19.0.1', VIP, 40001, 80, 0x11), buildArpRequest({ srcMac: CLIENT_MAC, srcIp: '198.19.0.1', targetIp: VIP }), reply, ack, tag8021q(syn), tag8021q(reply)];
  const slot = fz.pool.acquire();
  const fd = fz.pool.data;
  const fo = fz.pool.off[slot];
  const M = quick ? 100_000 : 1_000_000;
  let throws = 0;
  let passes = 0;
  let replies = 0;
  let drops = 0;
  let other = 0;
  let oob = 0;
  for (let i = 0; i < M; i++) {
    const tp = tpls[Math.floor(rnd() * tpls.length)];
    let len = tp.length;
    fd.set(tp, fo);
    if (rnd() < 0.5) fd[fo + 34 + (tp[12] === 0x81 ? 4 : 0)] = Math.floor(rnd() * 256); // new flows
    const n = Math.floor(rnd() * 5);
    for (let j = 0; j < n; j++) fd[fo + Math.floor(rnd() * Math.min(len, 64))] = Math.floor(rnd() * 256);
    const r = rnd();
    if (r < 0.1) len = Math.max(14, Math.floor(rnd() * len));
    else if (r < 0.15) {
      const extra = Math.floor(rnd() * 1500);
      fd.fill(Math.floor(rnd() * 256), fo + len, fo + len + extra);
      len += extra;
    }
    fz.pool.len[slot] = len;
    fz.ctx.view(slot);
    try {
      const v = i & 1 ? fz.t.outside(fz.ctx, slot) : fz.t.inside(fz.ctx, slot);
      if (v === PASS) passes++;
      else if (v === REPLY) replies++;
      else if (v < 0 && -1 - v < VIP_DROP_REASONS.length) drops++;
      else other++;
      if (fz.pool.len[slot] < 14 || fz.pool.off[slot] !== fo || fo + fz.pool.len[slot] > fz.pool.limit(slot)) oob++;
    } catch {
      throws++;
    }
    if ((i & 1023) === 0) fz.advance(100);
  }
  const fs = fz.t.stats();
  const dropCount = Object.values(fs.drops).reduce((a, b) => a + b, 0);
  const ok = throws === 0 && other === 0 && oob === 0 && passes + replies + drops === M && dropCount === drops && fs.counters.arp_answered === replies;
  console.log(`5. ${M.toLocaleString('en')} mutated frames through the stage: ${throws} throws, ${other} unknown verdicts, ${oob} frames out of bounds; PASS ${passes.toLocaleString('en')} (translated ${(fs.counters.translated_inside + fs.counters.translated_outside).toLocaleString('en')}), REPLY ${replies.toLocaleString('en')}, drops ${drops.toLocaleString('en')} (counters ${dropCount.toLocaleString('en')}: ${Object.entries(fs.drops).map(([k, v]) => `${k} ${v}`).join(', ')}); accounted: ${ok ? 'all' : 'NO'}`);
  if (!ok) process.exitCode = 1;
}

await main();
