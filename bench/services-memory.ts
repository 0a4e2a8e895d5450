/**
 * Memory of service instances known to one agent: RSS (and heap) of a real Agent with the
 * service kind, its ServiceView and the DNS ServiceDirectory (as runAgent assembles them), before
 * and after 10 000 signed instance records from 100 owners arrive through the record path
 * (open, verify, store, reconcile → view → directory), with every service's DNS answers built.
 * Target (Services issue): ≤ 20 MiB above the empty table.
 *
 *   node --expose-gc --conditions=source --import tsx bench/services-memory.ts [--instances N] [--owners N] [--services N] [--no-directory | --no-kind]
 */
import nacl from 'tweetnacl';
import { createPrivateKey, sign } from 'node:crypto';
import { parseArgs } from 'node:util';
import { encodeRecordBody } from '../packages/agent/src/wire.js';
import { Agent, PlainSealer, SERVICE_KIND, ServiceView, VirtualClock, VirtualNetwork, directorySink, serviceKind, type ServiceInstanceData } from '@overlay/agent';
import { ServiceDirectory, createDnsCounters, DnsAnswerer } from '@overlay/services';

const { values } = parseArgs({ options: { instances: { type: 'string', default: '10000' }, owners: { type: 'string', default: '100' }, services: { type: 'string', default: '1000' }, 'no-directory': { type: 'boolean' }, 'no-kind': { type: 'boolean' } } });
// Breakdown: --no-directory (table + view only), --no-kind (table only: the kind unknown, records stored undecoded).
const withDirectory = !values['no-directory'] && !values['no-kind'];
const N = Number(values.instances);
const OWNERS = Number(values.owners);
const SERVICES_N = Number(values.services);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function settle(): NodeJS.MemoryUsage {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage();
}

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
const owners = Array.from({ length: OWNERS }, (_, i) => {
  const seed = new Uint8Array(32).fill(i + 1);
  const kp = nacl.sign.keyPair.fromSeed(seed);
  const name = `host-${i}`;
  // Node's Ed25519 (the same keys as tweetnacl's, ~50× faster to sign): PKCS#8 around the seed.
  const key = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
  agent.membership.merge({ name, incarnation: 1, ip: `198.18.1.${i}`, port: 7946, meta: { signKey: kp.publicKey, vtep: `198.18.1.${i}`, vtepPort: 4789, wgKey: '', wgPort: 0, pmin: 2, pmax: 2 } }, 0, true);
  return { name, key };
});
// Sign everything first (kept as bytes only), so the baseline holds the same input buffers.
const raw: { body: Uint8Array; sig: Uint8Array }[] = [];
for (let k = 0; k < N; k++) {
  const o = owners[k % OWNERS];
  const d: ServiceInstanceData = {
    service: `svc-${k % SERVICES_N}`, ipv4: Uint8Array.of(198, 19, (k >> 8) & 255, k & 255), ipv6: new Uint8Array(0),
    ports: [{ port: 8080, proto: 0, name: 'http' }], health: 1, since: 1_700_000_000_000, reason: '', mode: 0, vip: new Uint8Array(0), ttl: 5, endpoint: `ep-${k}`,
  };
  const body = encodeRecordBody({ kind: SERVICE_KIND, network: 'blue', id: `i-${k}`, owner: o.name, version: k + 1, deleted: false }, 'service', d);
  raw.push({ body, sig: sign(null, body, o.key) });
}
const sync = (agent as unknown as { sync: { receive(r: { body: Uint8Array; sig: Uint8Array }): unknown } }).sync;

const before = settle();
const t0 = performance.now();
for (const r of raw) sync.receive(r);
const tFeed = performance.now() - t0;
// Build every service's encoded answers, as the first query for each would.
const answerer = new DnsAnswerer({ directory, networks: ['blue'], counters: createDnsCounters() });
void answerer;
const t1 = performance.now();
for (let s = 0; s < (withDirectory ? SERVICES_N : 0); s++) {
  const e = directory.lookupText('blue', `svc-${s}`);
  if (!e) throw new Error(`svc-${s} missing`);
  directory.answers(e, 1);
}
const tBuild = performance.now() - t1;
const after = settle();
if ((!values['no-kind'] && view.size !== N) || agent.table.count() !== N) throw new Error(`view ${view.size}, table ${agent.table.count()}, expected ${N}`);

const mib = (b: number) => (b / 1048576).toFixed(1);
console.log(`service instances known: ${N} (${OWNERS} owners, ${SERVICES_N} services), all verified${values['no-kind'] ? ' (kind unknown: table only)' : withDirectory ? ' and in the DNS directory' : ' and in the view (no directory)'}`);
console.log(`RSS  empty ${mib(before.rss)} MiB → ${mib(after.rss)} MiB: +${mib(after.rss - before.rss)} MiB (target ≤ 20 MiB)`);
console.log(`heap empty ${mib(before.heapUsed)} MiB → ${mib(after.heapUsed)} MiB: +${mib(after.heapUsed - before.heapUsed)} MiB; external +${mib(after.external + after.arrayBuffers - before.external - before.arrayBuffers)} MiB`);
console.log(`feed ${tFeed.toFixed(0)} ms (${((tFeed * 1000) / N).toFixed(0)} µs/record incl. Ed25519 verify), answers built ${tBuild.toFixed(0)} ms`);
agent.stop();
process.exit(after.rss - before.rss <= 20 * 1048576 ? 0 : 1);
