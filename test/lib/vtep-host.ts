/**
 * A VTEP host process: runs inside one network namespace (`ip netns exec NS node ... vtep-host.ts
 * CONFIG_JSON`) and runs our dataplane over real TAP devices and a recvmmsg/sendmmsg UDP socket,
 * configured statically from the JSON (see HostConfig).
 *
 * Protocol on stdio, one line each:
 *   stdout `READY {"port":4789,"networks":[{"vni":..,"tap":..,"mac":..,"mtu":..}]}` when running;
 *   stdin `stats` → stdout `STATS {dataplane stats, transport and device counters}`;
 *   SIGTERM (or stdin closing) → closes everything, prints `BYE`, exits 0.
 * Errors at start go to stderr with exit code 1.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { BufferPool, createDataplane, type Dataplane, type Transport } from '@overlay/dataplane';
import { createSecureTransport, SECURE_TRANSPORT_OVERHEAD, WireGuardDevice } from '@overlay/crypto';
import { linkMtu, TapDevice, UdpTransport, VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 } from '@overlay/native';

export interface HostNetworkConfig {
  vni: number;
  /** TAP name; an existing persistent TAP (e.g. already enslaved to a bridge) is opened as is. */
  tap: string;
  /** Overlay MAC of the TAP. Default: the kernel's random one. */
  mac?: string;
  /** Overlay addresses with prefix, e.g. '198.19.0.1/24'. None: the TAP stays unnumbered. */
  addresses?: string[];
  /** Default: underlay MTU − 50 (− 70 over IPv6). */
  mtu?: number;
  /** Coalesce TCP segments into GSO writes on the TAP (TapDevice `gro`). Default: HostConfig.gro. */
  gro?: boolean;
  /** Take 64 KiB TCP segments from the TAP and cut them here (TapDevice `tso`). Default: HostConfig.tso. */
  tso?: boolean;
  /** TAP transmit queue length. Default: HostConfig.txQueueLen. */
  txQueueLen?: number;
  unknownUnicast?: 'flood' | 'drop';
  learning?: boolean;
  arpSuppression?: boolean;
  fdb?: Array<{ mac: string; vtep: string; port?: number }>;
  neighbours?: Array<{ ip: string; mac: string }>;
  flood?: Array<string | { address: string; port?: number }>;
}

export interface HostConfig {
  /** Local underlay address to bind ('0.0.0.0' or '::' for any). */
  address: string;
  port?: number;
  /** Underlay interface, for the default overlay MTU. Default 'ul0'. */
  underlayDevice?: string;
  batchSize?: number;
  poolSlots?: number;
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  /** UDP GSO on the underlay socket (UdpTransport `gso`). Default true. */
  gso?: boolean;
  /** UDP GRO on the underlay socket (UdpTransport `gro`). Default true. */
  udpGro?: boolean;
  /** Default `gro` for every TAP. Default true (the plain path: set false). */
  gro?: boolean;
  /** Default `tso` for every TAP. Default true (the plain path: set false). */
  tso?: boolean;
  /** Default transmit queue length for every TAP. Default 4096: no TCP retransmits from TAP overflow on a busy machine. */
  txQueueLen?: number;
  networks: HostNetworkConfig[];
  /**
   * Encrypt the underlay with the WireGuard protocol (@overlay/crypto, overlay mode): one peer
   * per remote VTEP, its endpoint being that VTEP's underlay address. Keys in WireGuard base64.
   */
  encryption?: { privateKey: string; peers: Array<{ publicKey: string; endpoint: string; port?: number; presharedKey?: string }> };
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function main(): void {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: vtep-host.ts CONFIG_JSON|@FILE');
  const cfg = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as HostConfig;
  const batchSize = cfg.batchSize ?? 64;
  const pool = new BufferPool({ count: cfg.poolSlots ?? 4096 });
  const udp = UdpTransport.bind({
    address: cfg.address,
    port: cfg.port ?? 4789,
    batchSize,
    recvBufferBytes: cfg.recvBufferBytes ?? 4 << 20,
    gso: cfg.gso ?? true,
    gro: cfg.udpGro ?? true,
    sendBufferBytes: cfg.sendBufferBytes ?? 4 << 20,
  });
  let transport: Transport = udp;
  let wg: WireGuardDevice | undefined;
  if (cfg.encryption) {
    wg = new WireGuardDevice({ privateKey: cfg.encryption.privateKey, mode: 'overlay' });
    for (const p of cfg.encryption.peers) {
      wg.setPeer({ publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint: { address: p.endpoint, port: p.port ?? cfg.port ?? 4789 } });
    }
    transport = createSecureTransport({ inner: udp, device: wg });
  }
  const dp: Dataplane = createDataplane({ transport, pool, batchSize });
  const underlayMtu = linkMtu(cfg.underlayDevice ?? 'ul0');
  const overhead = (udp.family === 6 && cfg.address !== '::' ? VXLAN_OVERHEAD_IPV6 : VXLAN_OVERHEAD_IPV4) + (wg ? SECURE_TRANSPORT_OVERHEAD : 0);
  const taps: TapDevice[] = [];
  const info: Array<{ vni: number; tap: string; mac: string; mtu: number }> = [];
  for (const n of cfg.networks) {
    const tap = TapDevice.open({ name: n.tap, mtu: n.mtu ?? underlayMtu - overhead, txQueueLen: n.txQueueLen ?? cfg.txQueueLen ?? 4096, gro: n.gro ?? cfg.gro ?? true, tso: n.tso ?? cfg.tso ?? true, batchSize, up: false });
    taps.push(tap);
    if (n.mac) ip(['link', 'set', 'dev', tap.name, 'address', n.mac]);
    for (const a of n.addresses ?? []) ip(['addr', 'add', a, 'dev', tap.name]);
    ip(['link', 'set', 'dev', tap.name, 'up']);
    dp.addNetwork({ vni: n.vni, device: tap, unknownUnicast: n.unknownUnicast, learning: n.learning, arpSuppression: n.arpSuppression });
    for (const f of n.fdb ?? []) dp.setFdb(n.vni, f.mac, { address: f.vtep, port: f.port });
    for (const nb of n.neighbours ?? []) dp.setNeighbour(n.vni, nb.ip, nb.mac);
    for (const v of n.flood ?? []) dp.addFloodVtep(n.vni, typeof v === 'string' ? { address: v } : v);
    const mac = readFileSync(`/sys/class/net/${tap.name}/address`, 'utf8').trim();
    info.push({ vni: n.vni, tap: tap.name, mac, mtu: tap.mtu });
  }
  dp.start();

  const stats = () => ({
    dataplane: dp.stats(),
    transport: udp.counters.snapshot(),
    ...(wg ? { tunnel: wg.stats() } : {}),
    devices: Object.fromEntries(taps.map((t) => [t.name, t.counters.snapshot()])),
    tso: Object.fromEntries(
      taps.map((t) => {
        const g = t.segmenter;
        return [t.name, { superFrames: g?.superFrames ?? 0, segments: g?.segments ?? 0, checksummed: g?.checksummed ?? 0, poolDrops: g?.poolDrops ?? 0, malformed: g?.malformed ?? 0 }];
      }),
    ),
    gro: Object.fromEntries(taps.map((t) => [t.name, { merged: t.coalescer?.merged ?? 0, segments: t.coalescer?.segments ?? 0, badChecksum: t.coalescer?.badChecksum ?? 0 }])),
    pool: { available: pool.available, exhausted: pool.exhausted },
  });

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    try {
      await dp.close();
    } finally {
      process.stdout.write('BYE\n', () => process.exit(0));
    }
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === 'stats') process.stdout.write(`STATS ${JSON.stringify(stats())}\n`);
  });
  rl.on('close', () => void shutdown());
  process.stdout.write(`READY ${JSON.stringify({ port: udp.localPort, networks: info })}\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`vtep-host: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
}
