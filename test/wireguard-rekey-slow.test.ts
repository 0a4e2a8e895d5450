// Slow (about 2.5 min, run in CI): wireguard-go initiates the session, then its own real
// REKEY_AFTER_TIME (120 s) timer starts a new handshake while pings keep flowing; our device
// must answer it, switch keypairs without losing a packet, and report the rekey.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { latestHandshake } from './lib/wg-go.js';
import { ping } from './lib/transfer.js';
import { OUR_INNER, startPair, type Pair } from './lib/wg-interop.js';

describe('interop with wireguard-go: its real 120 s rekey (slow)', () => {
  let tb: Testbed;
  let pair: Pair | null = null;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'wgs' });
  });
  afterAll(async () => {
    await pair?.close();
    await tb?.destroy();
  });

  it('follows a rekey initiated by wireguard-go after 120 s of traffic', async () => {
    pair = await startPair(tb, {});
    const p = pair;
    expect(await ping(p.them, OUR_INNER, 2, [], 0.5)).toBeGreaterThanOrEqual(1);
    const h0 = await latestHandshake(p.them, p.iface);
    // 135 s of pings at 2/s: past REKEY_AFTER_TIME, with margin for the jittered initiation.
    const received = await ping(p.them, OUR_INNER, 270, [], 0.5);
    const s = await p.ours.stats();
    expect(s.device.rx.handshakeInitiations).toBeGreaterThanOrEqual(2);
    expect(s.device.tx.handshakeInitiations).toBe(0);
    expect(p.ours.events).toEqual(['peer-up', 'rekey']);
    expect(await latestHandshake(p.them, p.iface)).toBeGreaterThanOrEqual(h0 + 120);
    expect(received).toBe(270);
  }, 240_000);
});
