/**
 * Embedded DNS, in process (no sockets):
 *
 *   node --expose-gc --conditions=source --import tsx bench/dns-micro.ts [--quick]
 *
 * 1. memory: heap + array buffers with 10 000 service instances known (1 000 services × 10,
 *    every name of them indexed, and once each name's A answer encoded) above an empty
 *    directory. Goal ≤ 20 MiB.
 * 2. allocation proof and rate: 10^6 answers (90 % hits over 10 000 names, 10 % NXDOMAIN)
 *    through DnsAnswerer.answer, heap growth and GC count during the loop, answers per second
 *    on one core (the socket server's and the responder stage's own cost, without I/O).
 * 2b. the same through the responder stage's inside() on pool slots (frame in, reply frame out:
 *    parse, answer in place, MAC/IP/port swap, checksums): heap growth, GCs, frames per second.
 * 2c. the same through the socket server's batched UDP side (DnsServer with an in-memory
 *    batched transport in place of native UdpTransport): heap growth, GCs, answers per second.
 * 3. fuzz: 10^6 random and mutated queries (the CI test keeps 10^5): throws, and queries
 *    neither answered, forwarded nor counted as a drop (both must be 0).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { BufferPool, PacketBatch, REPLY, type StageContext, type Transport } from '@overlay/dataplane';
import { buildUdpFrame } from '@overlay/dataplane/testing';
import { DnsAnswerer, DnsResponder, DnsServer, FORWARD, ServiceDirectory, createDnsCounters, textToName } from '@overlay/services';

const quick = process.argv.includes('--quick');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with --expose-gc');
  process.exit(2);
}

function heapMiB(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return (m.heapUsed + m.arrayBuffers) / 2 ** 20;
}

const TYPES = { A: 1, PTR: 12, AAAA: 28, SRV: 33 } as const;

/** A query with RD set (no dns-packet here: bench/ does not depend on it). */
function q(name: string, type: keyof typeof TYPES = 'A'): Buffer {
  const n = textToName(name);
  const m = Buffer.alloc(12 + n.length + 4);
  m.writeUInt16BE(1, 0);
  m[2] = 1;
  m.writeUInt16BE(1, 4);
  m.set(n, 12);
  m.writeUInt16BE(TYPES[type], 12 + n.length);
  m.writeUInt16BE(1, 14 + n.length);
  return m;
}

// ---------------------------------------------------------------- 1. memory
const base = heapMiB();
const dir = new ServiceDirectory();
for (let s = 0; s < 1000; s++) {
  dir.setService({ name: `svc${s}`, network: 'blue' });
  for (let i = 0; i < 10; i++) {
    const n = s * 10 + i;
    dir.updateInstance('blue', `svc${s}`, { id: `i${i}`, addresses: [`198.19.${n >> 8}.${n & 255}`], ports: [{ name: 'http', port: 8080, proto: 'tcp' }], healthy: true });
  }
}
const counters = createDnsCounters();
const answerer = new DnsAnswerer({ directory: dir, networks: ['blue'], counters, forwarding: false });
const out = new Uint8Array(1232);
dir.lookupText('blue', 'svc0'); // brings the name index up to date
const indexed = heapMiB();
console.log(`memory: 10 000 instances (1 000 services × 10) known and indexed: ${(indexed - base).toFixed(1)} MiB above an empty directory (goal ≤ 20 MiB)`);
// Encode: one query per service name and per instance name.
for (let s = 0; s < 1000; s++) {
  const m = q(`svc${s}`);
  answerer.answer(m, 0, m.length, out, 0, out.length, false);
  for (let i = 0; i < 10; i++) {
    const mi = q(`i${i}.tasks.svc${s}`);
    answerer.answer(mi, 0, mi.length, out, 0, out.length, false);
  }
}
const loaded = heapMiB();
console.log(`memory: the same after every service and instance name was asked once (answers encoded): ${(loaded - base).toFixed(1)} MiB above an empty directory`);

// ---------------------------------------------------------------- 2. allocation and rate
const names: Buffer[] = [];
for (let i = 0; i < 10_000; i++) names.push(i % 10 === 9 ? q(`nx${i}`) : q(`i${i % 10}.tasks.svc${Math.floor(i / 10) % 1000}`));
// Shuffle deterministically.
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
for (let i = names.length - 1; i > 0; i--) {
  const j = Math.floor(rnd() * (i + 1));
  [names[i], names[j]] = [names[j], names[i]];
}
const N = quick ? 200_000 : 1_000_000;
for (let i = 0; i < 20_000; i++) {
  const m = names[i % names.length];
  answerer.answer(m, 0, m.length, out, 0, out.length, false);
}
let gcs = 0;
const obs = new PerformanceObserver((l) => (gcs += l.getEntries().length));
obs.observe({ entryTypes: ['gc'] });
gc();
const h0 = process.memoryUsage().heapUsed;
const t0 = process.hrtime.bigint();
let bytes = 0;
for (let i = 0; i < N; i++) {
  const m = names[i % 10_000];
  bytes += answerer.answer(m, 0, m.length, out, 0, out.length, false);
}
const t1 = process.hrtime.bigint();
const h1 = process.memoryUsage().heapUsed;
await new Promise((r) => setTimeout(r, 50));
obs.disconnect();
const secs = Number(t1 - t0) / 1e9;
console.log(`answer(): ${N} queries (90 % hits, 10 % NXDOMAIN) in ${secs.toFixed(3)} s = ${Math.round(N / secs)} answers/s on one core, ${(secs / N * 1e9).toFixed(0)} ns each; heap growth ${((h1 - h0) / 1024).toFixed(1)} KiB, GCs ${gcs} (${bytes > 0 ? 'ok' : 'no output'})`);

// ---------------------------------------------------------------- 2b. the responder stage
{
  const pool = new BufferPool({ count: 4 });
  const responder = new DnsResponder({ directory: dir, networks: ['blue'], address4: '198.19.0.53', counters: createDnsCounters() });
  const frames = names.map((m) => buildUdpFrame({ src: '198.19.0.1', dst: '198.19.0.53', srcPort: 40000, dstPort: 53, payload: m }));
  const ctx = { pool, vni: 1, etherType: 0x0800, l3: 0, group: false, toDevice() {}, toNetwork() {}, drop() {} } as unknown as StageContext & { l3: number };
  const slot = pool.acquire();
  const base = pool.off[slot];
  const run = (count: number): number => {
    let replies = 0;
    for (let i = 0; i < count; i++) {
      const f = frames[i % frames.length];
      pool.off[slot] = base;
      pool.fill(slot, f);
      ctx.l3 = pool.off[slot] + 14;
      if (responder.inside(ctx, slot) === REPLY) replies++;
    }
    return replies;
  };
  run(20_000);
  let g = 0;
  const o2 = new PerformanceObserver((l) => (g += l.getEntries().length));
  o2.observe({ entryTypes: ['gc'] });
  gc();
  const a0 = process.memoryUsage().heapUsed;
  const s0 = process.hrtime.bigint();
  const replies = run(N);
  const s1 = process.hrtime.bigint();
  const a1 = process.memoryUsage().heapUsed;
  await new Promise((r) => setTimeout(r, 50));
  o2.disconnect();
  const sec = Number(s1 - s0) / 1e9;
  console.log(`responder stage inside(): ${N} query frames → ${replies} reply frames in ${sec.toFixed(3)} s = ${Math.round(N / sec)} frames/s on one core; heap growth ${((a1 - a0) / 1024).toFixed(1)} KiB, GCs ${g}`);
}

// ---------------------------------------------------------------- 2c. the socket server, batched UDP side
{
  // DnsServer on an in-memory batched transport (what the agent gives it: native UdpTransport):
  // batches of 64 queries written into its pool as recvmmsg would, answered in place, one send
  // per batch. Counts replies; measures heap growth and GCs (the hot path: none). Service names
  // (svc<i>, as bench/dns.ts asks) and 10 % NXDOMAIN.
  const svcNames: Buffer[] = [];
  for (let i = 0; i < 1000; i++) svcNames.push(i % 10 === 9 ? q(`nx${i}`) : q(`svc${(i * 7) % 1000}`));
  let pool: BufferPool | undefined;
  let sink: ((b: PacketBatch) => void) | undefined;
  let replies = 0;
  const transport: Transport = {
    localPort: 0,
    start(p, s) {
      pool = p;
      sink = s;
    },
    send(_p, b) {
      replies += b.count;
      return b.count;
    },
    async close() {},
  };
  const server = await DnsServer.listen({ directory: dir, networks: ['blue'], address: '127.0.0.1', port: 0, forward: false, udpTransport: () => transport });
  const batch = new PacketBatch(64);
  const run = (count: number) => {
    const p = pool!;
    for (let i = 0; i < count; ) {
      batch.clear();
      for (let k = 0; k < 64 && i < count; k++, i++) {
        const m = svcNames[i % svcNames.length];
        const slot = p.acquire();
        p.data.set(m, p.off[slot]);
        p.len[slot] = m.length;
        p.family[slot] = 4;
        p.port[slot] = 40000;
        batch.push(slot);
      }
      sink!(batch);
    }
  };
  run(50_000); // warm: every name's answers encoded, the batch path compiled
  let g = 0;
  const o3 = new PerformanceObserver((l) => (g += l.getEntries().length));
  o3.observe({ entryTypes: ['gc'] });
  gc();
  replies = 0;
  const a0 = process.memoryUsage().heapUsed;
  const s0 = process.hrtime.bigint();
  run(N);
  const s1 = process.hrtime.bigint();
  const a1 = process.memoryUsage().heapUsed;
  await new Promise((r) => setTimeout(r, 50));
  o3.disconnect();
  await server.close();
  const sec = Number(s1 - s0) / 1e9;
  console.log(`socket server, batched UDP side: ${N} queries (service names, 10 % NXDOMAIN) in batches of 64 → ${replies} replies in ${sec.toFixed(3)} s = ${Math.round(N / sec)} answers/s on one core (no syscalls); heap growth ${((a1 - a0) / 1024).toFixed(1)} KiB, GCs ${g}`);
}

// ---------------------------------------------------------------- 3. fuzz
const F = quick ? 100_000 : 1_000_000;
const fc = createDnsCounters();
const fz = new DnsAnswerer({ directory: dir, networks: ['blue'], counters: fc });
const seeds = [q('svc1'), q('all.tasks.svc2', 'SRV'), q('i3.tasks.svc4', 'AAAA'), q('1.0.19.198.in-addr.arpa', 'PTR'), q('example.org'), Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 11, 0, 1, 0, 1])];
let throws = 0;
let forwarded = 0;
let answered = 0;
let slowest = 0;
let slowestInput: Uint8Array | undefined;
const fout = new Uint8Array(1232);
for (let i = 0; i < F; i++) {
  let msg: Uint8Array;
  if (i % 4 === 0) {
    msg = new Uint8Array(Math.floor(rnd() * 400));
    for (let j = 0; j < msg.length; j++) msg[j] = rnd() * 256;
    if (msg.length > 5 && rnd() < 0.7) {
      msg[2] &= 0x7f;
      msg[4] = 0;
      msg[5] = 1;
    }
  } else {
    msg = Uint8Array.from(seeds[i % seeds.length]);
    const flips = 1 + Math.floor(rnd() * 4);
    for (let f = 0; f < flips; f++) {
      const r = rnd();
      const at = Math.floor(rnd() * msg.length);
      if (r < 0.6) msg[at] = rnd() * 256;
      else if (r < 0.8) msg = msg.subarray(0, at);
      else msg = Uint8Array.from([...msg.subarray(0, at), ...Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => Math.floor(rnd() * 256)), ...msg.subarray(at)]);
    }
  }
  const s = process.hrtime.bigint();
  try {
    const n = fz.answer(msg, 0, msg.length, fout, 0, fout.length, false);
    if (n === FORWARD) forwarded++;
    else if (n > 0) answered++;
  } catch {
    throws++;
  }
  const d = Number(process.hrtime.bigint() - s);
  if (d > slowest) {
    slowest = d;
    slowestInput = msg;
  }
}
const c = fc.snapshot();
const drops = c.drop_short + c.drop_not_query + c.drop_no_room;
const answeredCounted = Object.entries(c).filter(([k]) => k.startsWith('answered_')).reduce((a, [, v]) => a + v, 0);
const unaccounted = F - (answeredCounted + drops + forwarded);
// Time the slowest input again to tell a deschedule from a slow input.
let again = 0;
if (slowestInput) {
  const s = process.hrtime.bigint();
  fz.answer(slowestInput, 0, slowestInput.length, fout, 0, fout.length, false);
  again = Number(process.hrtime.bigint() - s);
}
console.log(`fuzz: ${F} random/mutated queries: throws ${throws}, unaccounted ${unaccounted} (answered ${answered}, forwarded ${forwarded}, dropped ${drops}: short ${c.drop_short}, response ${c.drop_not_query}); FORMERR ${c.answered_formerr}, NOTIMP ${c.answered_notimp}, REFUSED ${c.answered_refused}, BADVERS ${c.answered_badvers}; slowest ${(slowest / 1000).toFixed(0)} µs (again: ${(again / 1000).toFixed(1)} µs)`);
if (throws !== 0 || unaccounted !== 0 || answered !== answeredCounted) process.exit(1);
