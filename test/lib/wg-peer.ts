/**
 * Our WireGuard L3 peer as a process inside one network namespace, for interop tests:
 * a real TUN device (@overlay/native), a recvmmsg/sendmmsg UDP socket, and a WireGuardDevice.
 *
 *   ip netns exec NS node --conditions=source --import tsx test/lib/wg-peer.ts
 *
 * The first stdin line is the JSON config (WgPeerConfig): keys travel on stdin, never argv.
 * stdout, one line each: `READY {"publicKey":..}`, `EVENT {"type":"peer-up"|"peer-down"|"rekey"}`,
 * `STATS {...}` in answer to stdin `stats`; stdin `connect` starts a handshake; stdin closing or
 * SIGTERM closes everything and exits 0.
 */
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { BufferPool } from '@overlay/dataplane';
import { resolveAead, TapDevice, UdpTransport } from '@overlay/native';
import { WireGuardDevice, createTunnel, type PeerConfig, type Tunnel } from '@overlay/crypto';

export interface WgPeerConfig {
  privateKey: string;
  listenAddress: string;
  port: number;
  tun: string;
  /** Overlay address with prefix, e.g. '198.19.0.2/24'. */
  address: string;
  mtu?: number;
  /** Our protocol clock runs this many times faster than real time (1 = real). */
  clockSpeed?: number;
  peers: PeerConfig[];
}

const rl = createInterface({ input: process.stdin });
let tunnel: Tunnel | null = null;
let device: WireGuardDevice | null = null;
let tun: TapDevice | null = null;
let transport: UdpTransport | null = null;
let closing = false;

async function shutdown(code: number): Promise<void> {
  if (closing) return;
  closing = true;
  try {
    if (tunnel) await tunnel.close();
  } finally {
    process.stdout.write('BYE\n', () => process.exit(code));
  }
}

function start(cfg: WgPeerConfig): void {
  const mtu = cfg.mtu ?? 1420;
  tun = TapDevice.open({ name: cfg.tun, mode: 'tun', mtu });
  execFileSync('ip', ['addr', 'add', cfg.address, 'dev', cfg.tun]);
  execFileSync('ip', ['link', 'set', cfg.tun, 'up']);
  transport = UdpTransport.bind({ address: cfg.listenAddress, port: cfg.port, recvBufferBytes: 4 << 20, sendBufferBytes: 4 << 20 });
  const speed = cfg.clockSpeed ?? 1;
  const t0 = performance.now();
  device = new WireGuardDevice({ privateKey: cfg.privateKey, mode: 'l3', aead: resolveAead(), now: () => t0 + (performance.now() - t0) * speed, tickMs: speed > 1 ? 20 : 100 });
  for (const p of cfg.peers) device.setPeer(p);
  for (const type of ['peer-up', 'peer-down', 'rekey']) device.on(type, () => process.stdout.write(`EVENT ${JSON.stringify({ type })}\n`));
  const pool = new BufferPool({ count: 4096, frameCapacity: 2048 });
  tunnel = createTunnel({ device, tun, transport, pool });
  tunnel.start();
  process.stdout.write(`READY ${JSON.stringify({ publicKey: device.publicKey, port: transport.localPort })}\n`);
}

rl.on('line', (line) => {
  try {
    if (!device) return start(JSON.parse(line) as WgPeerConfig);
    const cmd = line.trim();
    if (cmd === 'stats') {
      process.stdout.write(`STATS ${JSON.stringify({ device: device.stats(), peers: device.peers() })}\n`);
    } else if (cmd === 'connect') {
      for (const p of device.peers()) device.connect(p.publicKey);
    }
  } catch (err) {
    // Error messages of this package never carry key material.
    process.stderr.write(`wg-peer: ${(err as Error).message}\n`);
    void shutdown(1);
  }
});
rl.on('close', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
