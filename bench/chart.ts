/**
 * Draw bench/results/throughput.svg again from a saved run (default: the JSON that
 * throughput-latest.md names, else the newest), without measuring anything:
 *
 *   node --import tsx bench/chart.ts [bench/results/throughput-<stamp>.json] [--out FILE]
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { throughputChart, type ThroughputJson } from './lib/chart.js';

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = outAt >= 0 ? args[outAt + 1] : new URL('./results/throughput.svg', import.meta.url).pathname;
let json = args.find((a, i) => !a.startsWith('--') && i !== outAt + 1);
if (!json) {
  const latest = readFileSync(new URL('./results/throughput-latest.md', import.meta.url), 'utf8');
  // Older runs' throughput-latest.md did not name their JSON: then the newest saved one.
  const name = /throughput-[0-9TZ-]+\.json/.exec(latest)?.[0] ?? readdirSync(new URL('./results/', import.meta.url)).filter((f) => /^throughput-.*\.json$/.test(f)).sort().at(-1);
  if (!name) throw new Error('no saved throughput JSON in bench/results; give the file');
  json = new URL(`./results/${name}`, import.meta.url).pathname;
}
writeFileSync(out, throughputChart(JSON.parse(readFileSync(json, 'utf8')) as ThroughputJson));
console.log(`${out} from ${json}`);
