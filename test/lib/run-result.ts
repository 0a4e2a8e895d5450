import type { TestHost } from './testbed.js';

/**
 * Run node (with tsx, source conditions) and `args` in `host`'s namespace and return the JSON of
 * the `RESULT {...}` line it prints; throws `<what> failed (<exit>): <stderr>` without one.
 */
export async function runForResult<T = Record<string, unknown>>(host: TestHost, args: string[], timeoutMs: number, what = 'fixture'): Promise<T> {
  const out = await host.run(process.execPath, ['--conditions=source', '--import', 'tsx', ...args], { timeoutMs });
  const line = out.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`${what} failed (${out.code}): ${out.stderr}`);
  return JSON.parse(line.slice(7)) as T;
}
