import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { runForResult } from '../../../test/lib/run-result.js';
import { createTestbed, type Testbed } from '../../../test/lib/testbed.js';

// A frame without headroom for the virtio-net header costs that frame (counted), not the batch.
const fixture = fileURLToPath(new URL('./fixtures/tap-headroom.ts', import.meta.url));

describe('TAP write of a frame without headroom', () => {
  let tb: Testbed;
  let r: Record<string, unknown>;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 1, prefix: 'nhead' });
    r = await runForResult(tb.hosts[0], [fixture], 50_000);
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
