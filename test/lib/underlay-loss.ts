/**
 * Random loss on a testbed host's underlay in both directions with nftables `numgen random`
 * (works without sch_netem), plus byte and packet counters of the agent's gossip port (UDP and
 * TCP 7946) and of what the rules dropped. One table per host (`ulloss`), removed by `clear`
 * (and with the namespace by the testbed's destroy).
 */
import type { TestHost } from './testbed.js';

const TABLE = 'ulloss';

export interface LossCounters {
  /** Packets and bytes dropped on the way in / out. */
  droppedIn: number;
  droppedOut: number;
  /** Packets that reached the loss rule (so the drop fraction is dropped / seen). */
  seenIn: number;
  seenOut: number;
  /** Gossip port bytes (L3) sent and received that survived the rules. */
  gossipBytesOut: number;
  gossipBytesIn: number;
}

/** Drop `percent` of the packets entering and, independently, of those leaving `h`'s underlay. */
export async function setUnderlayLoss(h: TestHost, percent: number, port = 7946): Promise<void> {
  if (!(percent >= 0 && percent < 100)) throw new RangeError(`loss ${percent}% out of [0, 100)`);
  const perMillion = Math.round(percent * 10_000);
  const dev = h.underlayDevice;
  const chain = (hook: 'input' | 'output', dir: 'in' | 'out', match: string) => [
    ` chain ${hook} {`,
    `  type filter hook ${hook} priority -10; policy accept;`,
    `  ${match} "${dev}" counter name seen_${dir}`,
    `  ${match} "${dev}" numgen random mod 1000000 < ${perMillion} counter name dropped_${dir} drop`,
    `  ${match} "${dev}" meta l4proto { tcp, udp } th ${dir === 'in' ? 'dport' : 'sport'} ${port} counter name gossip_${dir}`,
    ` }`,
  ];
  const script = [
    `table inet ${TABLE} {`,
    ...['seen_in', 'seen_out', 'dropped_in', 'dropped_out', 'gossip_in', 'gossip_out'].map((c) => ` counter ${c} {}`),
    ...chain('input', 'in', 'iifname'),
    ...chain('output', 'out', 'oifname'),
    '}',
  ];
  await clearUnderlayLoss(h);
  await h.exec('nft', ['-f', '-'], { input: script.join('\n') + '\n' });
}

export async function clearUnderlayLoss(h: TestHost): Promise<void> {
  await h.run('nft', ['delete', 'table', 'inet', TABLE]);
}

export async function readUnderlayLoss(h: TestHost): Promise<LossCounters> {
  const out = await h.exec('nft', ['-j', 'list', 'counters', 'table', 'inet', TABLE]);
  const c: Record<string, { packets: number; bytes: number }> = {};
  for (const o of (JSON.parse(out) as { nftables: { counter?: { name: string; packets: number; bytes: number } }[] }).nftables) if (o.counter) c[o.counter.name] = o.counter;
  return {
    droppedIn: c.dropped_in?.packets ?? 0,
    droppedOut: c.dropped_out?.packets ?? 0,
    seenIn: c.seen_in?.packets ?? 0,
    seenOut: c.seen_out?.packets ?? 0,
    gossipBytesOut: c.gossip_out?.bytes ?? 0,
    gossipBytesIn: c.gossip_in?.bytes ?? 0,
  };
}
