import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, waitForLine, type Testbed } from './lib/testbed.js';
import { ping } from './lib/transfer.js';
import { repoRoot, startVtep, type VtepProcess } from './lib/vtep.js';

// The README's embedding example, run as printed on testbed host 1 (198.18.0.1), against a
// mirror-image host 2 (198.18.0.2): an embedder who copies it gets a working overlay, reachable
// from the host itself (the TAP has its address).
function readmeExample(): string {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Embedding the dataplane'));
  const block = section && /```ts\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('README: no ts example under "Embedding the dataplane"');
  return block[1];
}

describe("the README's embedding example", () => {
  let tb: Testbed;
  let example: ChildProcess | undefined;
  let peer: VtepProcess | undefined;
  let out = '';

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'rdme' });
    const [h1, h2] = tb.hosts;
    peer = await startVtep(h2, {
      address: h2.underlay,
      networks: [
        {
          vni: 42, tap: 'vx0', mac: '02:00:00:00:00:02', addresses: ['198.19.0.2/24'],
          fdb: [{ mac: '02:00:00:00:00:01', vtep: h1.underlay }], neighbours: [{ ip: '198.19.0.1', mac: '02:00:00:00:00:01' }], flood: [h1.underlay],
        },
      ],
    });
    // Keep the example's host running until SIGTERM: the example itself ends after setting up.
    const code = `${readmeExample()}\nprocess.on('SIGTERM', () => process.exit(0));\nsetInterval(() => {}, 1000);\nconsole.log('EXAMPLE UP');\n`;
    // cwd test/: '@overlay/host' resolves through this workspace package's dependencies.
    example = h1.spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', code], { cwd: `${repoRoot}/test` });
    example.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    let err = '';
    example.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await waitForLine(example, /^EXAMPLE UP/, 30_000).catch((e: Error) => {
      throw new Error(`${e.message}: ${err}`);
    });
  });
  afterAll(async () => {
    example?.kill('SIGTERM');
    await peer?.stop();
    await tb?.destroy();
  });

  it('brings up an overlay both hosts reach each other over', async () => {
    const [h1, h2] = tb.hosts;
    expect(await ping(h1, '198.19.0.2')).toBe(3);
    expect(await ping(h2, '198.19.0.1')).toBe(3);
  });

  it('prints the MTU the rule gives over a 1500-byte IPv4 underlay', () => {
    expect(out).toMatch(/^1450\b/m);
  });
});
