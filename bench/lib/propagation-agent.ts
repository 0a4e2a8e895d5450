/**
 * `agent run --config FILE` for bench/propagation.ts, instrumented. The agent runs with
 * `store: {kind: etcd}`; each change's id says which path may carry it, so the three ways of
 * spreading an endpoint are measured in one run, on the same agents, under the same load:
 *
 * - `g-*`: gossip only: every agent ignores the store for it (its puts, deletes and resyncs);
 * - `e-*`: etcd only: no agent queues it for gossip (push-pull anti-entropy could still bring it;
 *   such arrivals are labelled `gossip`);
 * - `b-*`: both, as the shipped etcd mode does: whichever path is first.
 *
 * stdout: `A <ms> <id> <deleted 0|1> <via gossip|etcd>` when the table applies such a record,
 * `W <ms> <id>` when the store's delete withdraws one, `E <id>` the first time an `ep-*` endpoint
 * is applied (convergence), `READY` once running. stdin: `pub <id> <k>` / `unpub <id>`, answered
 * with `P <ms read just before the call> <id> <0|1>`.
 *
 *   node --conditions=source --import tsx bench/lib/propagation-agent.ts --config FILE
 */
import { createInterface } from 'node:readline';
import { loadConfig, runAgent, type SignedRecord } from '@overlay/agent';

const argv = process.argv.slice(2);
const cfg = loadConfig(argv[argv.indexOf('--config') + 1]);
const { agent, stop } = await runAgent(cfg);
const out = (s: string) => process.stdout.write(s + '\n');
const table = agent.table;
const measured = /^[geb]-/;
let via: 'gossip' | 'etcd' = 'gossip';
const seenEp = new Set<string>();

const apply = table.apply.bind(table);
table.apply = (r: SignedRecord) => {
  const res = apply(r);
  if (res === 'applied') {
    if (measured.test(r.id)) out(`A ${Date.now()} ${r.id} ${r.deleted ? 1 : 0} ${via}`);
    else if (r.id.startsWith('ep-') && !seenEp.has(r.id)) out(`E ${(seenEp.add(r.id), r.id)}`);
  }
  return res;
};
const withdraw = table.withdraw.bind(table);
table.withdraw = (kind, network, id, owner) => {
  if (id.startsWith('g-')) return undefined;
  const r = withdraw(kind, network, id, owner);
  if (r && measured.test(id)) out(`W ${Date.now()} ${id}`);
  return r;
};
const receive = agent.receiveRecord.bind(agent);
agent.receiveRecord = (raw) => {
  if (table.open(raw)?.id.startsWith('g-')) return false;
  via = 'etcd';
  try {
    return receive(raw);
  } finally {
    via = 'gossip';
  }
};
// (runAgent resolved after joining: what the join brought is already in the table.)
for (const r of table.records()) if (r.id.startsWith('ep-') && r.owner !== agent.name && !r.deleted && !seenEp.has(r.id)) out(`E ${(seenEp.add(r.id), r.id)}`);
const queue = agent.queue.queue.bind(agent.queue);
agent.queue.queue = ((key: string, field: Uint8Array) => (key.startsWith('r:') && key.includes('\u0000e-') ? undefined : queue(key, field))) as typeof agent.queue.queue;

const net = cfg.networks[0];
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, id, k] = line.trim().split(' ');
  const at = Date.now();
  if (cmd === 'pub') {
    const n = Number(k);
    agent.publish({ name: net.name, vni: net.vni }, { id, mac: Uint8Array.of(2, 0, 0, 2, (n >> 8) & 0xff, n & 0xff), ipv4: Uint8Array.of(198, 19, 0, 100 + (n % 150)) });
  } else if (cmd === 'unpub') agent.unpublish(net.name, id);
  else return;
  out(`P ${at} ${id} ${cmd === 'pub' ? 0 : 1}`);
});
const onSig = () => void stop().then(() => process.exit(0));
process.once('SIGTERM', onSig);
process.once('SIGINT', onSig);
out('READY');
