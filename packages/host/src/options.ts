/**
 * What openHost takes, and its validation: every bad value is an InvalidConfigError naming the
 * field path (`networks[1].tap`), thrown before anything is opened.
 */
import { isIP } from 'node:net';
import { InvalidConfigError } from '@overlay/dataplane';

export interface UnderlayOptions {
  /**
   * Local VXLAN address to bind. Its family picks the VXLAN overhead (50 over IPv4, 70 over
   * IPv6); '::' binds dual-stack and budgets for IPv6, which never overflows.
   */
  address: string;
  /** UDP port. Default 4789 (IANA VXLAN); 0 picks a free one. */
  port?: number;
  /** Link whose MTU gives the overlay MTU. Default: the link holding `address` (name it for a wildcard address). */
  device?: string;
  /** SO_RCVBUF / SO_SNDBUF. Default 4 MiB each: a burst of GSO messages fits without drops. */
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  /** UDP GSO on send (UdpTransport `gso`). Default true. */
  gso?: boolean;
  /** UDP GRO on receive (UdpTransport `gro`). Default true. */
  gro?: boolean;
}

export interface WireGuardPeerOptions {
  publicKey: string;
  presharedKey?: string;
  /** The peer's VTEP: an address (port: underlay.port) or address and port. */
  endpoint?: string | { address: string; port?: number };
}

/** Encrypt the underlay with the WireGuard protocol (@overlay/crypto, overlay mode). */
export interface WireGuardOptions {
  /** Our static private key, WireGuard base64. */
  privateKey: string;
  /** Peers known up front (the agent adds its peers from gossip through `tunnel.setPeer`). */
  peers?: WireGuardPeerOptions[];
}

/** TAP settings; per network they override the host's `tap` defaults. */
export interface TapTuning {
  /** Take 64 KiB TCP segments from the TAP and cut them here (TapDevice `tso`). Default true. */
  tso?: boolean;
  /** Merge TCP segments into GSO writes to the TAP (TapDevice `gro`). Default true. */
  gro?: boolean;
  /** TAP transmit queue length. Default 4096: no TCP retransmits from TAP overflow on a busy machine. */
  txQueueLen?: number;
}

export interface HostNetworkOptions extends TapTuning {
  vni: number;
  /** TAP name (≤ 15 bytes). An existing persistent TAP (e.g. enslaved to a bridge) is opened as is. */
  tap: string;
  /** MAC of the TAP. Default: the kernel's random one. */
  mac?: string;
  /** Addresses with prefix ('198.19.0.1/24', '2001:db8:1::1/64'; IPv6 without DAD). None: unnumbered. */
  addresses?: string[];
  /** Overlay MTU. Default: the MTU rule (`overlayMtu`) on the underlay link. */
  mtu?: number;
  /** Learn inner source MAC → VTEP from received traffic. Default false. */
  learning?: boolean;
  /** BUM and unknown unicast: head-end replication to the flood list, or drop. Default 'flood'. */
  unknownUnicast?: 'flood' | 'drop';
  /** Answer ARP and neighbour solicitations for known neighbours locally. Default true. */
  arpSuppression?: boolean;
  /** Learned entries age out after this long idle. Default 300 000 ms. */
  ageingMs?: number;
  /**
   * UDP port of learned VTEPs: 'source' (default) for peers that send from their VXLAN port, as
   * ours do; 4789 for Linux kernel VTEPs, which send from flow-hashed source ports.
   */
  learnPort?: 'source' | number;
  /** VXLAN Group Policy: send and take Group Policy IDs (NetworkOptions.gbp). Default false. */
  gbp?: boolean;
  /** Static forwarding (e.g. a configuration without agents). */
  fdb?: Array<{ mac: string; vtep: string; port?: number }>;
  neighbours?: Array<{ ip: string; mac: string }>;
  flood?: Array<string | { address: string; port?: number }>;
}

export interface HostOptions {
  underlay: UnderlayOptions;
  wireguard?: WireGuardOptions;
  networks: HostNetworkOptions[];
  /** Packets per recvmmsg/sendmmsg, TAP read and pipeline batch. Default 64. */
  batchSize?: number;
  /**
   * Pool slots (9 KiB each) shared by the socket, the TAPs and the pipeline. Default 1024 (a 9 MiB
   * slab, the bound on what the pool can make resident): slots are held only while a batch passes
   * through, and a 5 s TCP stream with TSO/GRO and UDP GSO/GRO exhausted none of 512. At least
   * 4 × batchSize per device plus the socket. Running out is counted (`pool_exhausted`,
   * `rxNoBufferDrops`), never fatal.
   */
  poolSlots?: number;
  /** TAP defaults for every network. */
  tap?: TapTuning;
  /**
   * Worker threads for the plain data path (docs/multicore.md): each owns one queue of every
   * TAP (IFF_MULTI_QUEUE), a pipeline with its own pool of `poolSlots` (+ source-port sockets),
   * a receive socket on `underlay.port` (SO_REUSEPORT) and the shared flow-hashed source ports.
   * Default 1: everything on the calling thread, as before. More than 1 refuses `wireguard`.
   */
  workers?: number;
}

export const DEFAULT_PORT = 4789;
export const DEFAULT_BATCH = 64;
export const DEFAULT_POOL_SLOTS = 1024;
export const DEFAULT_SOCKET_BUFFER = 4 << 20;
export const DEFAULT_TX_QUEUE_LEN = 4096;
/** The most worker threads openHost starts (a TAP has at most 256 queues; more threads than cores only cost). */
export const MAX_WORKERS = 64;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function fail(field: string, msg: string): never {
  throw new InvalidConfigError(field, msg);
}
function int(v: unknown, field: string, min: number, max: number): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)) fail(field, `must be an integer in ${min}..${max}, got ${String(v)}`);
}
function bool(v: unknown, field: string): void {
  if (v !== undefined && typeof v !== 'boolean') fail(field, `must be true or false, got ${String(v)}`);
}
function address(v: unknown, field: string): void {
  if (typeof v !== 'string' || isIP(v) === 0) fail(field, `must be an IPv4 or IPv6 address, got ${JSON.stringify(v)}`);
}
function tuning(t: TapTuning | undefined, field: string): void {
  if (t === undefined) return;
  if (t === null || typeof t !== 'object') fail(field, 'must be an object');
  bool(t.tso, `${field}.tso`);
  bool(t.gro, `${field}.gro`);
  int(t.txQueueLen, `${field}.txQueueLen`, 1, 1 << 20);
}

/** Address with prefix length, e.g. '198.19.0.1/24'. */
function cidr(v: unknown, field: string): void {
  const m = typeof v === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(v) : null;
  const fam = m ? isIP(m[1]) : 0;
  if (!m || fam === 0 || Number(m[2]) > (fam === 4 ? 32 : 128)) fail(field, `must be an address with prefix length, e.g. 198.19.0.1/24, got ${JSON.stringify(v)}`);
}

/** Validate everything openHost reads. Throws InvalidConfigError naming the field. */
export function validateHostOptions(o: HostOptions): void {
  if (o === null || typeof o !== 'object') fail('options', 'must be an object');
  const u = o.underlay;
  if (u === null || typeof u !== 'object') fail('underlay', 'must be an object with an address');
  address(u.address, 'underlay.address');
  int(u.port, 'underlay.port', 0, 65535);
  if (u.device !== undefined && (typeof u.device !== 'string' || u.device.length < 1 || Buffer.byteLength(u.device) > 15)) fail('underlay.device', 'must be a link name of 1..15 bytes');
  int(u.recvBufferBytes, 'underlay.recvBufferBytes', 4096, 1 << 30);
  int(u.sendBufferBytes, 'underlay.sendBufferBytes', 4096, 1 << 30);
  bool(u.gso, 'underlay.gso');
  bool(u.gro, 'underlay.gro');
  int(o.batchSize, 'batchSize', 1, 1024);
  tuning(o.tap, 'tap');
  if (!Array.isArray(o.networks)) fail('networks', 'must be a list');
  const batch = o.batchSize ?? DEFAULT_BATCH;
  const minSlots = 4 * batch * (o.networks.length + 1);
  int(o.poolSlots, 'poolSlots', minSlots, 1 << 20);
  int(o.workers, 'workers', 1, MAX_WORKERS);
  if ((o.workers ?? 1) > 1 && o.wireguard !== undefined) fail('workers', 'the encrypted path runs on one thread: use workers 1 with wireguard');
  if (o.wireguard !== undefined) {
    const w = o.wireguard;
    if (w === null || typeof w !== 'object' || typeof w.privateKey !== 'string') fail('wireguard.privateKey', 'must be a WireGuard base64 key');
    if (w.peers !== undefined && !Array.isArray(w.peers)) fail('wireguard.peers', 'must be a list');
    (w.peers ?? []).forEach((p, i) => {
      const f = `wireguard.peers[${i}]`;
      if (p === null || typeof p !== 'object' || typeof p.publicKey !== 'string') fail(`${f}.publicKey`, 'must be a WireGuard base64 key');
      if (p.endpoint !== undefined) {
        if (typeof p.endpoint === 'string') address(p.endpoint, `${f}.endpoint`);
        else {
          address(p.endpoint?.address, `${f}.endpoint.address`);
          int(p.endpoint.port, `${f}.endpoint.port`, 1, 65535);
        }
      }
    });
  }
  const vnis = new Set<number>();
  const taps = new Set<string>();
  o.networks.forEach((n, i) => {
    const f = `networks[${i}]`;
    if (n === null || typeof n !== 'object') fail(f, 'must be an object');
    int(n.vni, `${f}.vni`, 0, (1 << 24) - 1);
    if (n.vni === undefined) fail(`${f}.vni`, 'required');
    if (vnis.has(n.vni)) fail(`${f}.vni`, `VNI ${n.vni} appears twice`);
    vnis.add(n.vni);
    if (typeof n.tap !== 'string' || n.tap.length < 1 || Buffer.byteLength(n.tap) > 15 || /[\s/]/.test(n.tap)) fail(`${f}.tap`, `must be a link name of 1..15 bytes, got ${JSON.stringify(n.tap)}`);
    if (taps.has(n.tap)) fail(`${f}.tap`, `${n.tap} appears twice`);
    taps.add(n.tap);
    if (n.mac !== undefined && (typeof n.mac !== 'string' || !MAC_RE.test(n.mac) || (parseInt(n.mac.slice(0, 2), 16) & 1) !== 0)) {
      fail(`${f}.mac`, `must be a unicast MAC like 02:00:00:00:00:01, got ${JSON.stringify(n.mac)}`);
    }
    if (n.addresses !== undefined && !Array.isArray(n.addresses)) fail(`${f}.addresses`, 'must be a list');
    (n.addresses ?? []).forEach((a, j) => cidr(a, `${f}.addresses[${j}]`));
    int(n.mtu, `${f}.mtu`, 68, 65521);
    bool(n.learning, `${f}.learning`);
    bool(n.arpSuppression, `${f}.arpSuppression`);
    bool(n.gbp, `${f}.gbp`);
    if (n.unknownUnicast !== undefined && n.unknownUnicast !== 'flood' && n.unknownUnicast !== 'drop') fail(`${f}.unknownUnicast`, `must be 'flood' or 'drop'`);
    int(n.ageingMs, `${f}.ageingMs`, 1, 2 ** 31 - 1);
    if (n.learnPort !== 'source') int(n.learnPort, `${f}.learnPort`, 1, 65535);
    tuning(n, f);
    for (const k of ['fdb', 'neighbours', 'flood'] as const) if (n[k] !== undefined && !Array.isArray(n[k])) fail(`${f}.${k}`, 'must be a list');
  });
}
