/**
 * Memory of service instances known to one agent: RSS (and heap) of a real Agent with the
 * service kind, its ServiceView and the DNS ServiceDirectory (as runAgent assembles them), before
 * and after 10 000 signed instance records from 100 owners arrive through the record path
 * (open, verify, store, reconcile → view → directory), with every service's DNS answers built.
 * Target (Services issue): ≤ 20 MiB above the empty table.
 *
 * The records are signed once, in this process, and written to a file; each run is a fresh
 * process (--runs, default 3) that reads them as one buffer (so its empty-table baseline holds
 * the input and none of the signing's garbage), measures after forced GCs before and after the
 * feed, and reports; this process prints every run and the medians, and exits 1 when the
 * median RSS rise is over the target.
 *
 *   node --expose-gc --conditions=source --import tsx bench/services-memory.ts [--instances N] [--owners N] [--services N] [--runs N] [--no-directory | --no-kind] [--cold] [--snapshot PREFIX]
 */
import nacl from 'tweetnacl';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { encodeRecordBody } from '../packages/agent/src/wire.js';
import { Agent, PlainSealer, SERVICE_KIND, ServiceView, VirtualClock, VirtualNetwork, directorySink, serviceKind, type ServiceInstanceData } from '@overlay/agent';
import { ServiceDirectory, createDnsCounters, DnsAnswerer } from '@overlay/services';

const options = {
  instances: { type: 'string', default: '10000' },
  owners: { type: 'string', default: '100' },
  services: { type: 'string', default: '1000' },
  runs: { type: 'string', default: '3' },
  'no-directory': { type: 'boolean' },
  'no-kind': { type: 'boolean' },
  cold: { type: 'boolean' },
  snapshot: { type: 'string' },
  child: { type: 'string' },
} as const;
const { values } = parseArgs({ options });
// Breakdown: --no-directory (table + view only), --no-kind (table only: the kind unknown, records stored undecoded).
const withDirectory = !values['no-directory'] && !values['no-kind'];
const N = Number(values.instances);
const OWNERS = Number(values.owners);
const SERVICES_N = Number(values.services);
const TARGET_MIB = 20;
const mib = (b: number) => (b / 1048576).toFixed(1);
const ownerSeed = (i: number) => new Uint8Array(32).fill(i + 1);

interface RunResult {
  rss: number;
  heap: number;
  external: number;
  committed: number;
  beyond: number;
  spaces: [string, number][];
  baseRss: number;
  /** Physical size of the young generation at the baseline. */
  baseNew: number;
  feedMs: number;
  buildMs: number;
}

if (values.child) {
  console.log(JSON.stringify(measure(values.child)));
} else {
  parent();
}

/** Sign the records once, run each measurement in a fresh process, print the runs and medians. */
function parent(): void {
  const dir = mkdtempSync(join(tmpdir(), 'bench-svcmem-'));
  try {
    const file = join(dir, 'records.bin');
    writeFileSync(file, signAll());
    const runs: RunResult[] = [];
    const argv = process.argv.slice(2);
    for (let i = 0; i < Number(values.runs); i++) {
      const p = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...argv, '--child', file], { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (p.status !== 0) throw new Error(`run ${i + 1} failed (${p.status}): ${p.stderr.slice(-2000)}`);
      const r = JSON.parse(p.stdout.trim().split('\n').at(-1)!) as RunResult;
      runs.push(r);
      const sp = r.spaces.filter(([k, d]) => Math.abs(d) >= 262144 && !k.endsWith('(phys)')).map(([k, d]) => `${k.replace('_space', '')} ${d > 0 ? '+' : ''}${mib(d)}`);
      console.log(`run ${i + 1}: RSS +${mib(r.rss)} MiB (empty ${mib(r.baseRss)}, young generation touched ${mib(r.baseNew)} MiB), heap +${mib(r.heap)} MiB, external +${mib(r.external)} MiB (Node's count: JS ArrayBuffers such as the record slab are not in it), heap physical +${mib(r.committed)} MiB (committed by space: ${sp.join(', ')}), RSS beyond heap physical and external ${mib(r.beyond)} MiB; feed ${r.feedMs.toFixed(0)} ms (${((r.feedMs * 1000) / N).toFixed(0)} µs/record incl. Ed25519 verify), answers built ${r.buildMs.toFixed(0)} ms`);
    }
    const med = (f: (r: RunResult) => number) => {
      const v = runs.map(f).sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    };
    const rss = med((r) => r.rss);
    console.log(`service instances known: ${N} (${OWNERS} owners, ${SERVICES_N} services), all verified${values['no-kind'] ? ' (kind unknown: table only)' : withDirectory ? ' and in the DNS directory' : ' and in the view (no directory)'}`);
    console.log(`median of ${runs.length} fresh processes: RSS +${mib(rss)} MiB above the empty table (target ≤ ${TARGET_MIB} MiB), heap +${mib(med((r) => r.heap))} MiB, external +${mib(med((r) => r.external))} MiB`);
    process.exitCode = rss <= TARGET_MIB * 1048576 ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every record as [u16 body length][body][64-byte signature]. */
function signAll(): Buffer {
  const out: Buffer[] = [];
  const keys = Array.from({ length: OWNERS }, (_, i) =>
    // Node's Ed25519 (the same keys as tweetnacl's, ~50× faster to sign): PKCS#8 around the seed.
    createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), ownerSeed(i)]), format: 'der', type: 'pkcs8' }),
  );
  for (let k = 0; k < N; k++) {
    const d: ServiceInstanceData = {
      service: `svc-${k % SERVICES_N}`, ipv4: Uint8Array.of(198, 19, (k >> 8) & 255, k & 255), ipv6: new Uint8Array(0),
      ports: [{ port: 8080, proto: 0, name: 'http' }], health: 1, since: 1_700_000_000_000, reason: '', mode: 0, vip: new Uint8Array(0), ttl: 5, endpoint: `ep-${k}`,
    };
    const body = encodeRecordBody({ kind: SERVICE_KIND, network: 'blue', id: `i-${k}`, owner: `host-${k % OWNERS}`, version: k + 1, deleted: false }, 'service', d);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(body.length);
    out.push(len, Buffer.from(body), sign(null, body, keys[k % OWNERS]));
  }
  return Buffer.concat(out);
}

/** One run: the agent empty, then fed every record of `file`; memory after forced GCs each time. */
function measure(file: string): RunResult {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const settle = () => {
    for (let i = 0; i < 4; i++) gc();
    return { m: process.memoryUsage(), phys: getHeapStatistics().total_physical_size, spaces: new Map(getHeapSpaceStatistics().flatMap((s) => [[s.space_name, s.space_size], [`${s.space_name}(phys)`, s.physical_space_size]])) };
  };
  const clock = new VirtualClock();
  const net = new VirtualNetwork(clock, { loss: 0, seed: 1 });
  const me = { ip: '198.18.0.1', port: 7946 };
  const io = net.endpoint(me);
  const view = new ServiceView();
  const directory = new ServiceDirectory();
  if (withDirectory) view.attach(directorySink(directory));
  const agent = new Agent({ name: 'observer', advertise: me, signingKey: nacl.sign.keyPair().secretKey, sealer: new PlainSealer(), clock, packets: io, streams: io, networks: [{ name: 'blue', vni: 100 }], kinds: values['no-kind'] ? [] : [serviceKind(view)] });
  net.attach(me, agent);
  agent.start();
  // Owners known to membership with their signing keys, as gossip would make them.
  for (let i = 0; i < OWNERS; i++) {
    const kp = nacl.sign.keyPair.fromSeed(ownerSeed(i));
    agent.membership.merge({ name: `host-${i}`, incarnation: 1, ip: `198.18.1.${i}`, port: 7946, meta: { signKey: kp.publicKey, vtep: `198.18.1.${i}`, vtepPort: 4789, wgKey: '', wgPort: 0, pmin: 2, pmax: 2 } }, 0, true);
  }
  // The input, held through the run as views of one buffer (the baseline holds it too).
  const all = readFileSync(file);
  const raw: { body: Uint8Array; sig: Uint8Array }[] = [];
  for (let o = 0; o < all.length; ) {
    const n = all.readUInt16BE(o);
    raw.push({ body: all.subarray(o + 2, o + 2 + n), sig: all.subarray(o + 2 + n, o + 2 + n + 64) });
    o += 2 + n + 64;
  }
  if (raw.length !== N) throw new Error(`${raw.length} records in ${file}, expected ${N}`);
  const sync = (agent as unknown as { sync: { receive(r: { body: Uint8Array; sig: Uint8Array }): unknown } }).sync;

  // The young generation at its working size before the baseline: a fresh process has touched
  // either half or all of its semi-spaces (16 MiB apart: empty tables at 129 or 153 MiB RSS in
  // one series), where a running agent's gossip and DNS touch all of them within seconds.
  // Garbage only: nothing of it survives the GCs below.
  // --cold skips this (the figure then includes the young generation's pages first touched by the feed).
  let junk: unknown;
  for (let i = 0; i < (values.cold ? 0 : 1_000_000); i++) junk = { i, list: [i, i] };
  void junk;
  if (values.snapshot) writeHeapSnapshot(`${values.snapshot}.before.heapsnapshot`);
  const before = settle();
  const t0 = performance.now();
  for (const r of raw) sync.receive(r);
  const feedMs = performance.now() - t0;
  // Build every service's encoded answers, as the first query for each would.
  const answerer = new DnsAnswerer({ directory, networks: ['blue'], counters: createDnsCounters() });
  void answerer;
  const t1 = performance.now();
  for (let s = 0; s < (withDirectory ? SERVICES_N : 0); s++) {
    const e = directory.lookupText('blue', `svc-${s}`);
    if (!e) throw new Error(`svc-${s} missing`);
    directory.answers(e, 1);
  }
  const buildMs = performance.now() - t1;
  const after = settle();
  if ((!values['no-kind'] && view.size !== N) || agent.table.count() !== N) throw new Error(`view ${view.size}, table ${agent.table.count()}, expected ${N}`);
  if (values.snapshot) writeHeapSnapshot(`${values.snapshot}.after.heapsnapshot`);
  agent.stop();
  // `external` includes `arrayBuffers` (Node's documentation): counted once.
  const a = after.m;
  const b = before.m;
  const external = a.external - b.external;
  const committed = after.phys - before.phys;
  return {
    rss: a.rss - b.rss, heap: a.heapUsed - b.heapUsed, external, committed, beyond: a.rss - b.rss - committed - external,
    spaces: [...after.spaces].map(([k, v]) => [k, v - (before.spaces.get(k) ?? 0)]),
    baseRss: b.rss, baseNew: before.spaces.get('new_space(phys)') ?? 0, feedMs, buildMs,
  };
}
