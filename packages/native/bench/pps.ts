/**
 * dgram vs @overlay/native UdpTransport: datagrams per second at 1400 bytes between two
 * namespace hosts, one process each side, same run, alternating, medians of N rounds; with the
 * third argument `offloads`, also native with UDP GSO on send, and GSO + UDP GRO on receive,
 * with each side's CPU time per datagram.
 * Run as root: node --conditions=source --import tsx packages/native/bench/pps.ts [rounds] [seconds] [offloads]
 */
import { fileURLToPath } from 'node:url';
import { createTestbed, waitForLine } from '../../../test/lib/testbed.js';
import { repoRoot } from '../../../test/lib/vtep.js';

const peer = fileURLToPath(new URL('./pps-peer.ts', import.meta.url));
const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 3);
const SIZE = 1400;
const modes = process.argv[4] === 'offloads' ? ['dgram', 'native', 'gso', 'gro'] : ['dgram', 'native'];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const tb = await createTestbed({ hosts: 2, prefix: 'bpps' });
const [a, b] = tb.hosts;
const results: Record<string, { tx: number[]; rx: number[]; txCpu: number[]; rxCpu: number[] }> = Object.fromEntries(
  modes.map((m) => [m, { tx: [], rx: [], txCpu: [], rxCpu: [] }]),
);
try {
  for (let r = 0; r < rounds; r++) {
    for (const [mi, mode] of modes.entries()) {
      const port = 6000 + r * modes.length + mi;
      const args = (xs: string[]) => ['--conditions=source', '--import', 'tsx', peer, ...xs];
      const rx = b.spawn(process.execPath, args(['recv', mode, String(port), String(seconds + 2)]), { cwd: repoRoot });
      await waitForLine(rx, /LISTENING/);
      const tx = a.spawn(process.execPath, args(['send', mode, b.underlay, String(port), String(seconds), String(SIZE)]), { cwd: repoRoot });
      const txLine = await waitForLine(tx, /^TX /, (seconds + 30) * 1000);
      const rxLine = await waitForLine(rx, /^RX /, (seconds + 30) * 1000);
      const [, , txPps, txCpu] = txLine.split(' ');
      const [, , rxPps, rxCpu] = rxLine.split(' ');
      results[mode].tx.push(Number(txPps));
      results[mode].rx.push(Number(rxPps));
      results[mode].txCpu.push(Number(txCpu));
      results[mode].rxCpu.push(Number(rxCpu));
      process.stdout.write(`round ${r + 1} ${mode}: sent ${txPps} pps (${txCpu} µs CPU each), received ${rxPps} pps (${rxCpu} µs CPU each)\n`);
    }
  }
} finally {
  await tb.destroy();
}
const med = Object.fromEntries(
  modes.map((m) => [m, { tx: median(results[m].tx), rx: median(results[m].rx), txCpu: median(results[m].txCpu), rxCpu: median(results[m].rxCpu) }]),
);
const d = med.dgram;
const n = med.native;
process.stdout.write(`\nmedian of ${rounds} rounds, ${SIZE}-byte datagrams, ${seconds} s each:\n`);
for (const m of modes) {
  const x = med[m];
  process.stdout.write(`${m.padEnd(6)}: send ${x.tx} pps (${x.txCpu} µs CPU each), receive ${x.rx} pps (${x.rxCpu} µs CPU each)\n`);
}
process.stdout.write(`ratio native/dgram: send ${(n.tx / d.tx).toFixed(2)}x, receive ${(n.rx / d.rx).toFixed(2)}x\n`);
