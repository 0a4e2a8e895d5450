/**
 * The static host configuration the system tests, the demo and the benchmark hand to the VTEP
 * runner (vtep-host.ts), and its translation into openHost's options. Anything left out takes
 * openHost's default, so a runner host is the same assembly as the agent's.
 */
import type { HostOptions } from '@overlay/host';

export interface HostNetworkConfig {
  vni: number;
  /** TAP name; an existing persistent TAP (e.g. already enslaved to a bridge) is opened as is. */
  tap: string;
  /** Overlay MAC of the TAP. Default: the kernel's random one. */
  mac?: string;
  /** Overlay addresses with prefix, e.g. '198.19.0.1/24'. None: the TAP stays unnumbered. */
  addresses?: string[];
  /** Default: the MTU rule (underlay MTU − 50, − 70 over IPv6, − 32 encrypted). */
  mtu?: number;
  /** Coalesce TCP segments into GSO writes on the TAP. Default: HostConfig.gro. */
  gro?: boolean;
  /** Take 64 KiB TCP segments from the TAP and cut them here. Default: HostConfig.tso. */
  tso?: boolean;
  /** TAP transmit queue length. Default: HostConfig.txQueueLen. */
  txQueueLen?: number;
  unknownUnicast?: 'flood' | 'drop';
  learning?: boolean;
  arpSuppression?: boolean;
  ageingMs?: number;
  fdb?: Array<{ mac: string; vtep: string; port?: number }>;
  neighbours?: Array<{ ip: string; mac: string }>;
  flood?: Array<string | { address: string; port?: number }>;
}

export interface HostConfig {
  /** Local underlay address to bind. */
  address: string;
  port?: number;
  /** Underlay interface for the overlay MTU. Default: the one holding `address`. */
  underlayDevice?: string;
  batchSize?: number;
  poolSlots?: number;
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  /** UDP GSO on the underlay socket. Default (openHost's): true. */
  gso?: boolean;
  /** UDP GRO on the underlay socket. Default true. */
  udpGro?: boolean;
  /** Default `gro` for every TAP. Default true (the plain path: set false). */
  gro?: boolean;
  /** Default `tso` for every TAP. Default true (the plain path: set false). */
  tso?: boolean;
  /** Default transmit queue length for every TAP. Default 4096. */
  txQueueLen?: number;
  networks: HostNetworkConfig[];
  /**
   * Encrypt the underlay with the WireGuard protocol (@overlay/crypto, overlay mode): one peer
   * per remote VTEP, its endpoint being that VTEP's underlay address. Keys in WireGuard base64.
   */
  encryption?: { privateKey: string; peers: Array<{ publicKey: string; endpoint: string; port?: number; presharedKey?: string }> };
}

/** openHost's options for a runner configuration (only what the configuration sets). */
export function hostOptions(c: HostConfig): HostOptions {
  return {
    underlay: { address: c.address, port: c.port, device: c.underlayDevice, recvBufferBytes: c.recvBufferBytes, sendBufferBytes: c.sendBufferBytes, gso: c.gso, gro: c.udpGro },
    batchSize: c.batchSize,
    poolSlots: c.poolSlots,
    tap: { tso: c.tso, gro: c.gro, txQueueLen: c.txQueueLen },
    wireguard: c.encryption && {
      privateKey: c.encryption.privateKey,
      peers: c.encryption.peers.map((p) => ({ publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint: { address: p.endpoint, port: p.port } })),
    },
    networks: c.networks,
  };
}
