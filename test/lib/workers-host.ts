/**
 * A VTEP host process with data-path workers, for test/host-workers.test.ts: openHost (the same
 * HostConfig as vtep-host.ts, `workers` set) plus the control plane on stdin, so a test can change
 * the tables of a running multi-worker host and ask each worker what it holds.
 *
 *   stdout `READY {"port":..,"workers":N}` when running;
 *   stdin `stats` → `STATS {host.statsAsync()}` (the sum, and `workers`: each worker's own);
 *   stdin `fdb VNI` → `FDB [[entries of worker 0], [worker 1], ...]`;
 *   stdin `peer {"vni","mac","ip","vtep"}` → FDB entry, neighbour and flood VTEP through
 *   host.dataplane, then `OK` (or `ERR <code>` for input the dataplane refuses);
 *   SIGTERM or stdin closing → close, `BYE`, exit 0.
 */
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { hostOptions, type HostConfig } from './host-config.js';

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '') as HostConfig;
  const host = await openHost(hostOptions(cfg));
  const out = (s: string) => process.stdout.write(`${s}\n`);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= host.close().finally(() => process.stdout.write('BYE\n', () => process.exit(0))));
  process.once('SIGTERM', stop);
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, ...rest] = line.trim().split(' ');
    const arg = rest.join(' ');
    void (async () => {
      if (cmd === 'stats') out(`STATS ${JSON.stringify(await host.statsAsync())}`);
      else if (cmd === 'fdb') out(`FDB ${JSON.stringify(await host.fdbPerWorker(Number(arg)))}`);
      else if (cmd === 'peer') {
        const p = JSON.parse(arg) as { vni: number; mac: string; ip: string; vtep: string };
        try {
          host.dataplane.setFdb(p.vni, p.mac, { address: p.vtep });
          host.dataplane.setNeighbour(p.vni, p.ip, p.mac);
          host.dataplane.addFloodVtep(p.vni, { address: p.vtep });
          out('OK');
        } catch (err) {
          out(`ERR ${(err as { code?: string }).code ?? 'UNKNOWN'}`);
        }
      }
    })();
  });
  rl.once('close', stop);
  out(`READY ${JSON.stringify({ port: host.transport.localPort, workers: host.workers })}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`workers-host: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
