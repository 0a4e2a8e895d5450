/**
 * Idle connections through the VIP with the real default conntrack timeouts (slow: 30+ min).
 * Topology: test/lib/vip-topology.ts (host 1 the client host with VIP 198.19.0.100:80 in its
 * dataplane, hosts 2 and 3 two backends each). 50 connections are opened and greeted, left idle
 * for `--minutes` (30), then each sends one line: the answer must come from the backend that
 * greeted it. Prints the flows tracked before and after the idle time (the established entries
 * outlive 30 min with the default 1 h timeout), the per-backend split, and OK or FAIL.
 *
 * Root; `bash bench/run.sh vip-idle [--minutes 30] [--save]` or
 * `node --conditions=source --import tsx bench/vip-idle.ts [--minutes N] [--save]`.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_TIMEOUTS } from '@overlay/services';
import { VipTopology } from '../test/lib/vip-topology.js';
import { until } from '../test/lib/wait.js';
import { saveResult } from './lib/save.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '30' }, connections: { type: 'string', default: '50' }, save: { type: 'boolean', default: false } } });
const MINUTES = Number(values.minutes);
const N = Number(values.connections);
if (!(MINUTES > 0 && MINUTES <= 240) || !(N > 0 && N <= 1000)) throw new Error('--minutes in (0, 240], --connections in 1..1000');

const lines: string[] = [];
const say = (s: string) => {
  const l = `${new Date().toISOString()} ${s}`;
  lines.push(l);
  console.log(l);
};
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

say(`vip-idle: ${N} connections idle ${MINUTES} min; default tcpEstablishedMs ${DEFAULT_TIMEOUTS.tcpEstablishedMs}; load ${load()}`);
const t = await VipTopology.open({ prefix: 'vidl' });
let code = 1;
try {
  const c = t.spawnClient(['hold', t.vip, String(t.port), String(N)]);
  const held = await until('HELD', () => c.out.find((l) => l.startsWith('HELD ')), 30_000);
  const names = (JSON.parse(held.slice(5)) as { names: string[] }).names;
  const split = Object.fromEntries(t.backends.map((b) => [b.id, names.filter((n) => n === b.id).length]));
  const before = await t.stats();
  say(`held ${names.length}: ${JSON.stringify(split)}; flows tracked ${before.flows}`);
  const end = Date.now() + MINUTES * 60_000;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, Math.min(5 * 60_000, end - Date.now())));
    say(`idle ${((MINUTES * 60_000 - (end - Date.now())) / 60_000).toFixed(1)} min; flows tracked ${(await t.stats()).flows}; load ${load()}`);
  }
  const from = c.out.length;
  c.child.stdin!.write('use\n');
  const used = JSON.parse((await until('USED', () => c.out.slice(from).find((l) => l.startsWith('USED ')), 30_000)).slice(5)) as { ok: number; same: number; failed: number };
  const after = await t.stats();
  say(`after ${MINUTES} min idle: ${used.ok}/${N} answered, ${used.same}/${N} by the same backend, ${used.failed} failed; flows tracked ${after.flows}; counters ${JSON.stringify(after.counters)}`);
  code = used.same === N ? 0 : 1;
  say(code === 0 ? 'OK' : 'FAIL');
  c.child.stdin!.end();
} finally {
  await t.close();
}
saveResult(new URL('./results/vip-idle.txt', import.meta.url), `${lines.join('\n')}\n`);
process.exit(code);
