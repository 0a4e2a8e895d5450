/**
 * The static host configuration the system tests, the demo and the benchmark hand to the VTEP
 * runner (vtep-host.ts), and its translation into openHost's options. Anything left out takes
 * openHost's default, so a runner host is the same assembly as the agent's.
 */
import type { HostNetworkOptions, HostOptions } from '@overlay/host';

/** A network of the runner: openHost's network options as they are (TAP tuning left out takes HostConfig's). */
export type HostNetworkConfig = HostNetworkOptions;

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
  /** Data-path worker threads (openHost's `workers`, plain path only). Default 1. */
  workers?: number;
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
    workers: c.workers,
  };
}
