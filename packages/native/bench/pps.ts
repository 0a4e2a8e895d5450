/**
 * dgram vs @overlay/native UdpTransport: datagrams per second at 1400 bytes between two
 * namespace hosts, one process each side, same run, alternating, medians of N rounds.
 * Run as root: node --conditions=source --import tsx packages/native/bench/pps.ts [rounds] [seconds]
 */
import { fileURLToPath } from 'node:url';
import { createTestbed, waitForLine } from '../../../test/lib/testbed.js';
import { repoRoot } from '../../../test/lib/vtep.js';

const peer = fileURLToPath(new URL('./pps-peer.ts', import.meta.url));
const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 3);
const SIZE = 1400;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const tb = await createTestbed({ hosts: 2, prefix: 'bpps' });
const [a, b] = tb.hosts;
const results: Record<string, { tx: number[]; rx: number[] }> = { dgram: { tx: [], rx: [] }, native: { tx: [], rx: [] } };
try {
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['dgram', 'native']) {
      const port = 6000 + r * 2 + (mode === 'native' ? 1 : 0);
      const args = (xs: string[]) => ['--conditions=source', '--import', 'tsx', peer, ...xs];
      const rx = b.spawn(process.execPath, args(['recv', mode, String(port), String(seconds + 2)]), { cwd: repoRoot });
      await waitForLine(rx, /LISTENING/);
      const tx = a.spawn(process.execPath, args(['send', mode, b.underlay, String(port), String(seconds), String(SIZE)]), { cwd: repoRoot });
      const txLine = await waitForLine(tx, /^TX /, (seconds + 30) * 1000);
      const rxLine = await waitForLine(rx, /^RX /, (seconds + 30) * 1000);
      results[mode].tx.push(Number(txLine.split(' ')[2]));
      results[mode].rx.push(Number(rxLine.split(' ')[2]));
      process.stdout.write(`round ${r + 1} ${mode}: sent ${txLine.split(' ')[2]} pps, received ${rxLine.split(' ')[2]} pps\n`);
    }
  }
} finally {
  await tb.destroy();
}
const d = { tx: median(results.dgram.tx), rx: median(results.dgram.rx) };
const n = { tx: median(results.native.tx), rx: median(results.native.rx) };
process.stdout.write(`\nmedian of ${rounds} rounds, ${SIZE}-byte datagrams, ${seconds} s each:\n`);
process.stdout.write(`dgram : send ${d.tx} pps, receive ${d.rx} pps\n`);
process.stdout.write(`native: send ${n.tx} pps, receive ${n.rx} pps\n`);
process.stdout.write(`ratio native/dgram: send ${(n.tx / d.tx).toFixed(2)}x, receive ${(n.rx / d.rx).toFixed(2)}x\n`);
