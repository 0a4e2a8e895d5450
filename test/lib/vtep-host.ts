/**
 * A VTEP host process: runs inside one network namespace (`ip netns exec NS node ... vtep-host.ts
 * CONFIG_JSON`) and runs openHost (@overlay/host, the agent's assembly) configured statically
 * from the JSON (HostConfig in host-config.ts). A thin stdio wrapper: nothing is assembled here.
 *
 * Protocol on stdio, one line each:
 *   stdout `READY {"port":4789,"networks":[{"vni":..,"tap":..,"mac":..,"mtu":..}]}` when running;
 *   stdin `stats` → stdout `STATS {host.stats(): dataplane, transport, tunnel, devices, tso, gro, pool}`;
 *   SIGTERM (or stdin closing) → closes everything, prints `BYE`, exits 0.
 * Errors at start go to stderr with exit code 1.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { PolicyFilter, type Policy } from '@overlay/services';
import { hostOptions, type HostConfig } from './host-config.js';

export type { HostConfig, HostNetworkConfig } from './host-config.js';

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: vtep-host.ts CONFIG_JSON|@FILE');
  const cfg = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as HostConfig & { policyFile?: string };
  const host = await openHost(hostOptions(cfg));
  // A policy filter stage on every network, the policy a JSON file (bench/throughput.ts's encrypted+policy path).
  if (cfg.policyFile) {
    const policy = JSON.parse(readFileSync(cfg.policyFile, 'utf8')) as Policy;
    for (const n of cfg.networks) host.dataplane.addStage(n.vni, new PolicyFilter({ policy, log: () => {} }));
  }

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    try {
      await host.close();
    } finally {
      process.stdout.write('BYE\n', () => process.exit(0));
    }
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === 'stats') process.stdout.write(`STATS ${JSON.stringify(host.stats())}\n`);
  });
  rl.on('close', () => void shutdown());
  const networks = host.devices.map((d) => ({ vni: d.vni, tap: d.name, mac: d.mac, mtu: d.mtu }));
  process.stdout.write(`READY ${JSON.stringify({ port: host.transport.localPort, networks })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`vtep-host: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
