/**
 * Shared by the simulated PKI tests (pki-agent, pki-renew, pki-revocation-persist): a tunnel
 * double that records peers, SimCluster's signing seed of a node, and a cluster of certificate
 * holders (one CA; optionally a rogue node with another CA's certificate).
 */
import nacl from 'tweetnacl';
import { createCa, generateWireGuardKey, signCert, TrustedCas, type CaKeyPair } from '@overlay/pki';
import { SimCluster, type SimClusterOptions } from '../src/simcluster.js';
import { VirtualClock } from '../src/sim.js';
import type { TunnelPeers } from '../src/agent.js';

export const NET = { name: 'blue', vni: 100 };
export const START = new VirtualClock().now();

export class FakeTunnel implements TunnelPeers {
  readonly set = new Map<string, string>();
  /** removePeer calls (a renewal must cause none). */
  removed = 0;
  setPeer(p: { publicKey: string; endpoint?: { address: string; port: number } }): void {
    this.set.set(p.publicKey, p.endpoint?.address ?? '');
  }
  removePeer(k: string): void {
    this.removed++;
    this.set.delete(k);
  }
}

/** SimCluster's signing seed of node i (simcluster.ts: (i + 1, cluster seed) big-endian). */
export function simSeed(i: number, clusterSeed: number): Uint8Array {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, i + 1);
  new DataView(seed.buffer).setUint32(4, clusterSeed);
  return seed;
}

export interface PkiSetup {
  c: SimCluster;
  ca: CaKeyPair;
  trusted: TrustedCas;
  wg: string[];
  wgKeys: { publicKey: Uint8Array }[];
  tunnels: FakeTunnel[];
  signPub: Uint8Array[];
}

/**
 * n agents with certificates of one CA, each covering its own 198.19.0.(i+1)/32; node `rogue` (if
 * any) holds one of another CA; `lifetime(i)` is node i's lifetime (default 7 days); `cert(i)`
 * replaces node i's certificate bytes.
 */
export function pkiCluster(n: number, o: { seed: number; rogue?: number; lifetime?: (i: number) => number | undefined; cert?: (i: number, s: Omit<PkiSetup, 'c'>) => Uint8Array | undefined; cluster?: Partial<SimClusterOptions> }): PkiSetup {
  const ca = createCa({ name: 'sim-ca', now: START - 1000 });
  const other = createCa({ name: 'other-ca', now: START - 1000 });
  const trusted = new TrustedCas([ca.cert]);
  const wgKeys = Array.from({ length: n }, () => generateWireGuardKey());
  const wg = wgKeys.map((k) => Buffer.from(k.publicKey).toString('base64'));
  const tunnels = Array.from({ length: n }, () => new FakeTunnel());
  const signPub = Array.from({ length: n }, (_, i) => nacl.sign.keyPair.fromSeed(simSeed(i, o.seed)).publicKey);
  const base = { ca, trusted, wg, wgKeys, tunnels, signPub };
  const certs: Uint8Array[] = [];
  const c: SimCluster = new SimCluster({
    n,
    seed: o.seed,
    networks: [NET],
    ...o.cluster,
    agent: (i) => {
      certs[i] ??= o.cert?.(i, base) ?? signCert(i === o.rogue ? other : ca, { name: SimCluster.nameOf(i), prefixes: [`198.19.0.${i + 1}/32`], groups: ['web'], wgKey: wgKeys[i].publicKey, signKey: signPub[i], now: START - 500, lifetimeMs: o.lifetime?.(i) }).bytes;
      return { pki: { trusted: i === o.rogue ? new TrustedCas([other.cert]) : trusted, cert: certs[i] }, wireguard: { publicKey: wg[i], port: 4789 }, tunnel: tunnels[i] };
    },
  });
  return { c, ...base };
}

export const epMac = (i: number) => new Uint8Array([2, 0, 0, 0, 1, i + 1]);
export const epIp = (i: number) => new Uint8Array([198, 19, 0, i + 1]);
