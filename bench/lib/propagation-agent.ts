/**
 * `agent run --config FILE` for bench/propagation.ts, instrumented: every endpoint record whose id
 * starts with `chg-` that this agent's table applies (or withdraws, store-bridge.ts) is printed on
 * stdout as `A <ms since epoch> <id> <deleted 0|1> <via gossip|etcd>` (`W <ms> <id>` for a
 * withdrawal), so the bench reads exact arrival times instead of polling 50 status sockets.
 * stdin takes `pub <id> <k>` / `unpub <id>` (the publishing host), answered with `P <ms before the call> <id> <0|1>`.
 * `--no-record-gossip`: this agent queues no record for gossip (membership still gossips), so its
 * records reach the others only through the store (and push-pull anti-entropy).
 *
 *   node --conditions=source --import tsx bench/lib/propagation-agent.ts --config FILE [--no-record-gossip]
 */
import { createInterface } from 'node:readline';
import { loadConfig, runAgent, type SignedRecord } from '@overlay/agent';

const argv = process.argv.slice(2);
const cfg = loadConfig(argv[argv.indexOf('--config') + 1]);
const { agent, stop } = await runAgent(cfg);
const out = (s: string) => process.stdout.write(s + '\n');
const table = agent.table;
let via: 'gossip' | 'etcd' = 'gossip';

const apply = table.apply.bind(table);
table.apply = (r: SignedRecord) => {
  const res = apply(r);
  if (res === 'applied' && r.id.startsWith('chg-')) out(`A ${Date.now()} ${r.id} ${r.deleted ? 1 : 0} ${via}`);
  return res;
};
const withdraw = table.withdraw.bind(table);
table.withdraw = (kind, network, id, owner) => {
  const r = withdraw(kind, network, id, owner);
  if (r && id.startsWith('chg-')) out(`W ${Date.now()} ${id}`);
  return r;
};
const receive = agent.receiveRecord.bind(agent);
agent.receiveRecord = (raw) => {
  via = 'etcd';
  try {
    return receive(raw);
  } finally {
    via = 'gossip';
  }
};
if (argv.includes('--no-record-gossip')) {
  const queue = agent.queue.queue.bind(agent.queue);
  agent.queue.queue = ((key: string, field: Uint8Array) => (key.startsWith('r:') ? undefined : queue(key, field))) as typeof agent.queue.queue;
}

const net = cfg.networks[0];
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, id, k] = line.trim().split(' ');
  const at = Date.now();
  if (cmd === 'pub') {
    const n = Number(k);
    agent.publish({ name: net.name, vni: net.vni }, { id, mac: Uint8Array.of(2, 0, 0, 0, 2, n & 0xff), ipv4: Uint8Array.of(198, 19, 0, 100 + (n % 150)) });
  } else if (cmd === 'unpub') agent.unpublish(net.name, id);
  else return;
  out(`P ${at} ${id} ${cmd === 'pub' ? 0 : 1}`);
});
const onSig = () => void stop().then(() => process.exit(0));
process.once('SIGTERM', onSig);
process.once('SIGINT', onSig);
out('READY');
