import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { ping, tcpTransfer } from './lib/transfer.js';
import { meshConfig, startVtep, type HostConfig, type VtepProcess } from './lib/vtep.js';
import { capture } from './lib/wg-interop.js';

function keypair(): { priv: string; pub: string } {
  const priv = execFileSync('wg', ['genkey']).toString().trim();
  return { priv, pub: execFileSync('wg', ['pubkey'], { input: priv + '\n' }).toString().trim() };
}

// Two namespace hosts running our dataplane over the WireGuard-protocol secure transport: the
// overlay works, and nothing of the inner traffic (not even the VXLAN header) is on the wire.
describe('two hosts over our encrypted VXLAN dataplane', () => {
  let tb: Testbed;
  let vteps: VtepProcess[] = [];
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 2, prefix: 'dpe' });
    // Keys made with `wg genkey`: the format is WireGuard's own.
    const keys = tb.hosts.map(() => keypair());
    const cfg: HostConfig[] = meshConfig(tb.hosts).map((c, i) => ({
      ...c,
      encryption: {
        privateKey: keys[i].priv,
        peers: tb.hosts.filter((_, j) => j !== i).map((h) => ({ publicKey: keys[h.index - 1].pub, endpoint: h.underlay })),
      },
    }));
    vteps = await Promise.all(tb.hosts.map((h, i) => startVtep(h, cfg[i])));
  });
  afterAll(async () => {
    await Promise.all(vteps.map((v) => v.stop()));
    await tb?.destroy();
  });

  it('leaves room for the tunnel header and tag in the overlay MTU', () => {
    expect(vteps.map((v) => v.networks[0].mtu)).toEqual([1500 - 50 - 32, 1500 - 50 - 32]);
  });

  it('pings both ways and moves 20 MB of TCP intact', async () => {
    const [a, b] = tb.hosts;
    expect(await ping(a, '198.19.0.2')).toBe(3);
    expect(await ping(b, '198.19.0.1')).toBe(3);
    const r = await tcpTransfer(a, b, '198.19.0.2', 5011, 20 * 1024 * 1024, 90_000);
    expect(r.received).toEqual(r.sent);
    const s = (await vteps[0].stats()) as unknown as { tunnel: { tx: Record<string, number> } };
    expect(Object.values(s.tunnel.tx).some((n) => n > 0)).toBe(true);
  }, 120_000);

  it('puts no plaintext and no VXLAN on the underlay (the TAP side shows the marker)', async () => {
    const [a] = tb.hosts;
    const marker = 'ENCRYPTME-' + (process.pid % 100000).toString().padStart(5, '0');
    const hex = Buffer.from(marker.slice(0, 16)).toString('hex');
    let inner: Buffer = Buffer.alloc(0);
    const outer = await capture(a, 'ul0', ['udp', 'port', '4789'], async () => {
      inner = await capture(a, 'vx0', ['icmp'], async () => {
        // Long enough that tcpdump's capture ring hands over its packets before it is stopped.
        expect(await ping(a, '198.19.0.2', 10, ['-p', hex])).toBe(10);
      });
    });
    const needle = Buffer.from(marker.slice(0, 16));
    expect(inner.includes(needle)).toBe(true); // positive control: the marker was sent
    expect(outer.length).toBeGreaterThan(24 + 6 * 16); // the capture saw the datagrams
    expect(outer.includes(needle)).toBe(false);
    // Nor the inner MAC addresses that a VXLAN header would be followed by.
    expect(outer.includes(Buffer.from('0200c6130102', 'hex'))).toBe(false);
  }, 60_000);
});
