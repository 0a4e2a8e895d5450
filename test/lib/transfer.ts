/** Helpers for system tests: checksummed TCP transfers and pings between namespaces. */
import { fileURLToPath } from 'node:url';
import type { TestHost } from './testbed.js';
import { waitForLine } from './testbed.js';
import { repoRoot } from './vtep.js';

const tcpCheck = fileURLToPath(new URL('./tcp-check.ts', import.meta.url));
const node = (script: string, args: string[]): [string, string[]] => [process.execPath, ['--conditions=source', '--import', 'tsx', script, ...args]];

/** Where a command runs: a testbed host or a bare namespace name. */
export type Place = TestHost | { name: string; spawn: TestHost['spawn'] };

export interface TransferResult {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
}

/**
 * Send `bytes` over TCP from `from` to `to` at address:port; returns what each end hashed.
 * Both processes are bounded by `timeoutMs`. A `marker` is written every 4096 bytes of the
 * stream (for captures that must, or must not, see it).
 */
export async function tcpTransfer(from: Place, to: Place, address: string, port: number, bytes: number, timeoutMs = 60_000, marker = ''): Promise<TransferResult> {
  const sink = to.spawn(...node(tcpCheck, ['sink', address, String(port)]), { cwd: repoRoot });
  try {
    await waitForLine(sink, /^LISTENING/, 20_000);
    const done = waitForLine(sink, /^DONE /, timeoutMs);
    const source = from.spawn(...node(tcpCheck, ['source', address, String(port), String(bytes), `seed-${port}`, ...(marker ? [marker] : [])]), { cwd: repoRoot });
    try {
      const sentLine = await waitForLine(source, /^SENT /, timeoutMs);
      const [, sb, ss] = sentLine.trim().split(' ');
      const [, rb, rs] = (await done).trim().split(' ');
      return { sent: { bytes: Number(sb), sha256: ss }, received: { bytes: Number(rb), sha256: rs } };
    } finally {
      source.kill('SIGKILL');
    }
  } finally {
    sink.kill('SIGKILL');
  }
}

/** Ping `count` times (`interval` s apart); returns packets received. */
export async function ping(from: TestHost, address: string, count = 3, extra: string[] = [], interval = 0.2): Promise<number> {
  // -W 2: a reply delayed by a loaded machine still counts.
  const r = await from.run('ping', ['-c', String(count), '-i', String(interval), '-W', '2', '-q', ...extra, address], { timeoutMs: count * 1000 * Math.max(1, interval) + 8000 });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}
