// The overlay use: a Transport that encrypts per destination VTEP, over the dataplane's
// in-memory testnet, so the dataplane's own Transport contract is what is exercised.
import { describe, expect, it } from 'vitest';
import { BufferPool, PacketBatch } from '@overlay/dataplane';
import { createTestnet } from '@overlay/dataplane/testing';
import { vtepSide } from './helpers/vtep.js';
import { ipBytes } from './helpers/wire.js';
import { WireGuardDevice, createSecureTransport, generatePrivateKey } from '../src/index.js';

const settle = () => new Promise((r) => setTimeout(r, 50));

describe('createSecureTransport', () => {
  it('carries datagrams encrypted between VTEPs and hands them on with the VTEP as source', async () => {
    const net = createTestnet({});
    const a = vtepSide(net, '198.18.0.1');
    const b = vtepSide(net, '198.18.0.2');
    a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: '198.18.0.2', port: 4789 } });
    b.dev.setPeer({ publicKey: a.dev.publicKey, endpoint: { address: '198.18.0.1', port: 4789 } });
    expect(a.send('198.18.0.2', 'vxlan-frame-1')).toBe(1);
    for (let i = 0; i < 20 && b.got.length === 0; i++) await settle();
    expect(b.got.map(({ from, port, text }) => ({ from, port, text }))).toEqual([{ from: '198.18.0.1', port: 4789, text: 'vxlan-frame-1' }]);
    b.send('198.18.0.1', 'reply');
    for (let i = 0; i < 20 && a.got.length === 0; i++) await settle();
    expect(a.got.map((g) => g.text)).toEqual(['reply']);
    // A datagram to a VTEP that is no peer is dropped and counted, never sent in clear.
    a.send('198.18.0.99', 'secret');
    expect(a.dev.stats().drops.no_peer).toBe(1);
    await a.t.close();
    await b.t.close();
  });
});

describe('the dataplane over createSecureTransport', () => {
  it('carries VXLAN frames encrypted between two dataplanes; the wire never sees the frame', async () => {
    const { createDataplane } = await import('@overlay/dataplane');
    const { createMemoryDevice, buildFrame } = await import('@overlay/dataplane/testing');
    const net = createTestnet({});
    const wire: Buffer[] = [];
    const mk = (address: string, mac: string) => {
      const dev = new WireGuardDevice({ privateKey: generatePrivateKey(), mode: 'overlay', tickMs: 0 });
      const inner = net.transport(address, 4789);
      const origSend = inner.send.bind(inner);
      inner.send = (p, b) => {
        for (let i = 0; i < b.count; i++) wire.push(p.copyOut(b.slots[i]));
        return origSend(p, b);
      };
      const tap = createMemoryDevice({ name: `m${address.slice(-1)}`, mtu: 1400 });
      const dp = createDataplane({ transport: createSecureTransport({ inner, device: dev }), networks: [{ vni: 42, device: tap }] });
      dp.start();
      return { dev, dp, tap, address, mac };
    };
    const a = mk('198.18.0.1', '02:00:00:00:00:01');
    const b = mk('198.18.0.2', '02:00:00:00:00:02');
    a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: b.address, port: 4789 } });
    b.dev.setPeer({ publicKey: a.dev.publicKey, endpoint: { address: a.address, port: 4789 } });
    a.dp.setFdb(42, b.mac, { address: b.address });
    b.dp.setFdb(42, a.mac, { address: a.address });
    const marker = Buffer.from('SECRET-OVERLAY-PAYLOAD-0123456789');
    const frame = buildFrame({ dst: b.mac, src: a.mac, payload: Buffer.concat([marker, Buffer.alloc(40)]) });
    expect(a.tap.inject(frame)).toBe(true);
    for (let i = 0; i < 40 && b.tap.received.length === 0; i++) await settle();
    expect(b.tap.received.map((f) => f.toString('hex'))).toEqual([frame.toString('hex')]);
    expect(wire.length).toBeGreaterThanOrEqual(3); // initiation, response, data (+ keepalive)
    expect(wire.some((d) => d.includes(marker))).toBe(false);
    await a.dp.close();
    await b.dp.close();
  });
});

describe('createSecureTransport over an IPv6 underlay', () => {
  it('routes by IPv6 VTEP endpoints and presents them as the source', async () => {
    const net = createTestnet({});
    const mk = (address: string) => {
      const dev = new WireGuardDevice({ privateKey: generatePrivateKey(), mode: 'overlay', tickMs: 0 });
      const t = createSecureTransport({ inner: net.transport(address, 4789), device: dev });
      const pool = new BufferPool({ count: 256, frameCapacity: 2048 });
      const got: { from: string; text: string }[] = [];
      t.start(pool, (batch) => {
        for (let i = 0; i < batch.count; i++) {
          const s = batch.slots[i];
          got.push({ from: pool.addr.subarray(s * 16, s * 16 + 16).toString('hex'), text: pool.copyOut(s).toString() });
          pool.release(s);
        }
      });
      const send = (to: string, text: string) => {
        const slot = pool.acquire();
        pool.fill(slot, Buffer.from(text));
        pool.setEndpoint(slot, 6, ipBytes(to), 4789);
        const b = new PacketBatch(1);
        b.push(slot);
        const n = t.send(pool, b);
        pool.release(slot);
        return n;
      };
      return { dev, t, got, send };
    };
    const a = mk('2001:db8::1');
    const b = mk('2001:db8::2');
    a.dev.setPeer({ publicKey: b.dev.publicKey, endpoint: { address: '2001:db8::2', port: 4789 } });
    b.dev.setPeer({ publicKey: a.dev.publicKey, endpoint: { address: '2001:db8::1', port: 4789 } });
    expect(a.send('2001:db8::2', 'over v6')).toBe(1);
    for (let i = 0; i < 40 && b.got.length === 0; i++) await settle();
    expect(b.got).toEqual([{ from: ipBytes('2001:db8::1').toString('hex'), text: 'over v6' }]);
    a.send('2001:db8::3', 'nobody');
    expect(a.dev.stats().drops.no_peer).toBe(1);
    await a.t.close();
    await b.t.close();
  });
});
