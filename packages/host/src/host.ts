/**
 * One overlay host, assembled in one place: the underlay UDP socket (recvmmsg/sendmmsg, GSO/GRO,
 * socket buffers), the optional WireGuard secure transport over it, one TAP per network with the
 * overlay MTU rule, its MAC and addresses, and the dataplane that joins them. The agent, the test
 * runner, the demo and the throughput benchmark all run this assembly.
 */
import { BufferPool, createDataplane, type Dataplane, type DataplaneStats, type FdbEntry, type FrameDevice, type Transport } from '@overlay/dataplane';
import { createSecureTransport, SECURE_TRANSPORT_OVERHEAD, WireGuardDevice, type DeviceStats } from '@overlay/crypto';
import { linkMtu, overlayMtu, resolveAead, TapDevice, UdpTransport, type IoCounterSnapshot } from '@overlay/native';
import { addLinkAddress, linkExists, linkHolding, linkMac, removeLinkAddress, setLinkMac, setLinkUp } from './link.js';
import {
  DEFAULT_BATCH,
  DEFAULT_POOL_SLOTS,
  DEFAULT_PORT,
  DEFAULT_SOCKET_BUFFER,
  DEFAULT_TX_QUEUE_LEN,
  validateHostOptions,
  type HostNetworkOptions,
  type HostOptions,
} from './options.js';
import { openWorkerHost } from './worker-host.js';

/** One network's device as set up. */
export interface HostDevice {
  readonly vni: number;
  /** Link name (the kernel's, which equals the requested one). */
  readonly name: string;
  readonly mac: string;
  readonly mtu: number;
  /** The TAP; undefined with `workers` > 1, where each worker owns one queue of it. */
  readonly tap: TapDevice | undefined;
}

export interface HostStats {
  dataplane: DataplaneStats;
  /** Underlay socket counters (rxPackets, txGsoFallbacks, ...). */
  transport: IoCounterSnapshot;
  /** WireGuard counters, with `wireguard`. */
  tunnel?: DeviceStats;
  /** Per TAP name: native I/O counters. */
  devices: Record<string, IoCounterSnapshot>;
  /** Per TAP: 64 KiB segments read, frames cut from them, partial checksums completed, drops. */
  tso: Record<string, { superFrames: number; segments: number; checksummed: number; poolDrops: number; malformed: number }>;
  /** Per TAP: frames merged into GSO writes, merged writes, TCP segments refused for a bad checksum. */
  gro: Record<string, { merged: number; segments: number; badChecksum: number }>;
  pool: { available: number; exhausted: number };
  /** With `workers` > 1: each worker's own counters, by worker index (every field above is their sum). */
  workers?: HostStats[];
}

/** What a host says about its underlay socket (with workers, the first worker's receive socket; counters summed over every socket). */
export interface HostTransport {
  readonly localPort: number;
  readonly address: string;
  readonly family: 4 | 6;
  readonly counters: { snapshot(): IoCounterSnapshot };
}

export interface Host {
  readonly dataplane: Dataplane;
  /** The WireGuard device when `wireguard` was given (add peers with setPeer). */
  readonly tunnel: WireGuardDevice | undefined;
  /** The underlay socket (localPort, family, counters). */
  readonly transport: HostTransport;
  readonly devices: readonly HostDevice[];
  /** Underlay link and family the MTU rule used. */
  readonly underlay: { readonly device: string; readonly family: 4 | 6; readonly mtu: number };
  /** Data-path threads (HostOptions.workers). */
  readonly workers: number;
  /** Counters now; with workers, as the workers last reported them (every 250 ms; statsAsync asks them). */
  stats(): HostStats;
  /** Counters as of this call (with workers: asked of every worker). */
  statsAsync(): Promise<HostStats>;
  /** The network's FDB in each worker (learned entries are per worker), by worker index. */
  fdbPerWorker(vni: number): Promise<FdbEntry[][]>;
  /** Close the dataplane, socket and TAPs; remove the addresses added to TAPs that outlive it. Idempotent. */
  close(): Promise<void>;
}

/**
 * Open and start an overlay host. Options are validated first (InvalidConfigError naming the
 * field, nothing opened); a failure part-way (NativeError from a syscall, LinkSetupError, UnderlayNotFoundError,
 * the dataplane's InvalidAddressError for a static entry) closes what was opened and rethrows.
 * Needs CAP_NET_ADMIN. Everything lives in the calling process's network namespace.
 * With `workers` > 1 the data path runs in worker threads (worker-host.ts, docs/multicore.md).
 */
export async function openHost(o: HostOptions): Promise<Host> {
  validateHostOptions(o);
  const u = o.underlay;
  // '::' binds dual-stack: budget for IPv6, the larger overhead.
  const family: 4 | 6 = u.address.includes(':') ? 6 : 4;
  const device = u.device ?? linkHolding(u.address);
  const ulMtu = linkMtu(device);
  const batchSize = o.batchSize ?? DEFAULT_BATCH;
  const tunnelOverhead = o.wireguard ? SECURE_TRANSPORT_OVERHEAD : 0;
  const defaultMtu = overlayMtu(ulMtu, family, tunnelOverhead);
  const port = u.port ?? DEFAULT_PORT;
  if ((o.workers ?? 1) > 1) return openWorkerHost(o, { device, family, mtu: ulMtu, defaultMtu, port, batchSize });

  // The addon's AEAD opens transport data where it was received (UdpOptions.deferSealed).
  const aead = o.wireguard ? resolveAead() : undefined;
  const udp = UdpTransport.bind({
    address: u.address,
    port,
    batchSize,
    recvBufferBytes: u.recvBufferBytes ?? DEFAULT_SOCKET_BUFFER,
    sendBufferBytes: u.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER,
    gso: u.gso ?? true,
    gro: u.gro ?? true,
    deferSealed: aead !== undefined,
  });
  let tunnel: WireGuardDevice | undefined;
  let dp: Dataplane | undefined;
  const devices: HostDevice[] = [];
  const taps: TapDevice[] = [];
  const added: Array<{ link: string; cidr: string }> = [];
  let pending: TapDevice | undefined;
  try {
    let transport: Transport = udp;
    if (o.wireguard) {
      tunnel = new WireGuardDevice({ privateKey: o.wireguard.privateKey, mode: 'overlay', aead });
      for (const p of o.wireguard.peers ?? []) {
        const ep = p.endpoint === undefined ? undefined : typeof p.endpoint === 'string' ? { address: p.endpoint, port } : { address: p.endpoint.address, port: p.endpoint.port ?? port };
        tunnel.setPeer({ publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint: ep });
      }
      transport = createSecureTransport({ inner: udp, device: tunnel });
    }
    dp = createDataplane({ transport, pool: new BufferPool({ count: o.poolSlots ?? DEFAULT_POOL_SLOTS }), batchSize });
    for (const n of o.networks) {
      pending = openTap(n, o, batchSize, n.mtu ?? defaultMtu);
      const tap = pending;
      if (n.mac) setLinkMac(tap.name, n.mac);
      for (const a of n.addresses ?? []) {
        addLinkAddress(tap.name, a);
        added.push({ link: tap.name, cidr: a });
      }
      setLinkUp(tap.name);
      attachNetwork(dp, n, tap);
      pending = undefined; // the dataplane owns it now
      devices.push({ vni: n.vni, name: tap.name, mac: linkMac(tap.name), mtu: tap.mtu, tap });
      taps.push(tap);
    }
    dp.start();
  } catch (err) {
    // Undo what was opened, then report the cause (not a failure of the cleanup).
    try {
      await pending?.close();
      if (dp) await dp.close();
      else await udp.close();
      for (const a of added) if (linkExists(a.link)) removeLinkAddress(a.link, a.cidr);
    } catch {
      // already reporting err
    }
    throw err;
  }
  const plane = dp;
  let closing: Promise<void> | undefined;
  return {
    dataplane: plane,
    tunnel,
    transport: udp,
    devices,
    underlay: { device, family, mtu: ulMtu },
    workers: 1,
    stats: () => hostStats(plane, udp.counters.snapshot(), tunnel, taps),
    statsAsync: async () => hostStats(plane, udp.counters.snapshot(), tunnel, taps),
    fdbPerWorker: async (vni) => [plane.fdb(vni)],
    close: () =>
      (closing ??= (async () => {
        await plane.close();
        // A non-persistent TAP is gone with its descriptor; a persistent one keeps its link.
        for (const a of added) if (linkExists(a.link)) removeLinkAddress(a.link, a.cidr);
      })()),
  };
}

/** Attach network `n` on `device` with its dataplane options, then program its static entries. */
export function attachNetwork(dp: Dataplane, n: HostNetworkOptions, device: FrameDevice): void {
  dp.addNetwork({ vni: n.vni, device, learning: n.learning, unknownUnicast: n.unknownUnicast, arpSuppression: n.arpSuppression, ageingMs: n.ageingMs, learnPort: n.learnPort, gbp: n.gbp });
  for (const f of n.fdb ?? []) dp.setFdb(n.vni, f.mac, { address: f.vtep, port: f.port });
  for (const nb of n.neighbours ?? []) dp.setNeighbour(n.vni, nb.ip, nb.mac);
  for (const v of n.flood ?? []) dp.addFloodVtep(n.vni, typeof v === 'string' ? { address: v } : v);
}

/** Open network `n`'s TAP (or, with `multiQueue`, one more queue of it), down until its MAC and addresses are set. */
export function openTap(n: HostNetworkOptions, o: HostOptions, batchSize: number, mtu: number, multiQueue = false, name = n.tap): TapDevice {
  return TapDevice.open({
    name,
    mtu,
    batchSize,
    tso: n.tso ?? o.tap?.tso ?? true,
    gro: n.gro ?? o.tap?.gro ?? true,
    txQueueLen: n.txQueueLen ?? o.tap?.txQueueLen ?? DEFAULT_TX_QUEUE_LEN,
    multiQueue,
    // Down until its MAC and addresses are set.
    up: false,
  });
}

/** The host's counters from its parts (a worker's too: `transport` then sums its sockets). */
export function hostStats(dp: Dataplane, transport: IoCounterSnapshot, tunnel: WireGuardDevice | undefined, taps: readonly TapDevice[]): HostStats {
  return {
    dataplane: dp.stats(),
    transport,
    ...(tunnel ? { tunnel: tunnel.stats() } : {}),
    devices: Object.fromEntries(taps.map((t) => [t.name, t.counters.snapshot()])),
    tso: Object.fromEntries(
      taps.map((t) => {
        const g = t.segmenter;
        return [t.name, { superFrames: g?.superFrames ?? 0, segments: g?.segments ?? 0, checksummed: g?.checksummed ?? 0, poolDrops: g?.poolDrops ?? 0, malformed: g?.malformed ?? 0 }];
      }),
    ),
    gro: Object.fromEntries(taps.map((t) => [t.name, { merged: t.coalescer?.merged ?? 0, segments: t.coalescer?.segments ?? 0, badChecksum: t.coalescer?.badChecksum ?? 0 }])),
    pool: { available: dp.pool.available, exhausted: dp.pool.exhausted },
  };
}
