import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { createTestbed, type Testbed } from '../../../test/lib/testbed.js';

// A frame without headroom for the virtio-net header costs that frame (counted), not the batch.
const fixture = fileURLToPath(new URL('./fixtures/tap-headroom.ts', import.meta.url));

describe('TAP write of a frame without headroom', () => {
  let tb: Testbed;
  let r: Record<string, unknown>;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 1, prefix: 'nhead' });
    const out = await tb.hosts[0].run(process.execPath, ['--conditions=source', '--import', 'tsx', fixture], { timeoutMs: 50_000 });
    const line = out.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`fixture failed (${out.code}): ${out.stderr}`);
    r = JSON.parse(line.slice(7)) as Record<string, unknown>;
  }, 60_000);
  afterAll(async () => {
    await tb?.destroy();
  });

  it('skips and counts that frame, writes the others, and touches no byte before its slot', () => {
    expect(r).toEqual({
      written: 2,
      prevTailUntouched: true,
      received: ['first', 'third'],
      noHeadroom: 1,
      txErrors: 1,
      txErrorsOther: 1,
      txUnsent: 1,
    });
  });
});
