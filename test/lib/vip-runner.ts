/**
 * The client host of the VIP topology (vip-topology.ts): openHost (the agent's assembly) plus
 * the VIP control API (ServiceVips) in one namespace, driven on stdio:
 *   vip-runner.ts HOST_CONFIG_JSON VNI SPEC_JSON OPTIONS_JSON
 * stdout `READY` once the VIP is installed; stdin, one command a line, each answered by one line:
 *   `state <id> <healthy|draining|down>` → `SET <Date.now() after setVip>` (what the agent does
 *       when a record changes a backend's health)
 *   `options <VipTranslatorOptions JSON>` → `OPTIONS` (the VIP is removed, its flows reset, and
 *       set again on a new ServiceVips with these options: e.g. shorter conntrack timeouts)
 *   `stats` → `STATS <ServiceVips.stats() JSON>`
 * SIGTERM or stdin closing: closes the host and exits 0.
 */
import { createInterface } from 'node:readline';
import { openHost } from '@overlay/host';
import { ServiceVips, type VipSpec, type VipTranslatorOptions } from '@overlay/services';
import { hostOptions, type HostConfig } from './host-config.js';

const [cfgArg, vniArg, specArg, optArg = '{}'] = process.argv.slice(2);
if (!cfgArg || !vniArg || !specArg) {
  process.stderr.write('usage: vip-runner.ts HOST_CONFIG_JSON VNI SPEC_JSON [OPTIONS_JSON]\n');
  process.exit(2);
}
const cfg = JSON.parse(cfgArg) as HostConfig;
const vni = Number(vniArg);
const spec = JSON.parse(specArg) as { vip: string; ports?: number[]; backends: Array<{ id: string; ip: string; mac: string; state: VipSpec['backends'][number]['state'] }> };
const host = await openHost(hostOptions(cfg));
let vips = new ServiceVips(host.dataplane, JSON.parse(optArg) as VipTranslatorOptions);
vips.setVip(vni, spec);

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, a, b] = line.trim().split(' ');
  try {
    if (cmd === 'state') {
      const be = spec.backends.find((x) => x.id === a);
      if (!be) throw new Error(`no backend ${a}`);
      be.state = b as typeof be.state;
      vips.setVip(vni, spec);
      process.stdout.write(`SET ${Date.now()}\n`);
    } else if (cmd === 'options') {
      vips.removeVip(vni, spec.vip);
      vips = new ServiceVips(host.dataplane, JSON.parse(line.slice('options '.length)) as VipTranslatorOptions);
      vips.setVip(vni, spec);
      process.stdout.write('OPTIONS\n');
    } else if (cmd === 'stats') {
      process.stdout.write(`STATS ${JSON.stringify(vips.stats())}\n`);
    } else throw new Error(`unknown command ${cmd}`);
  } catch (err) {
    process.stdout.write(`FAIL ${(err as Error).message}\n`);
  }
});
let closing = false;
const stop = async () => {
  if (closing) return;
  closing = true;
  await host.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
rl.on('close', () => void stop());
process.stdout.write('READY\n');
