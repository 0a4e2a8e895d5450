/**
 * The agent's public option and event types (agent.ts holds the class; it re-exports these).
 */
import type { WireGuardDevice } from '@overlay/crypto';
import type { Addr, Clock, PacketNet, StreamNet } from './env.js';
import type { MembershipEvents } from './membership.js';
import type { MembershipConfig } from './presets.js';
import type { RecordKind, SignedRecord } from './records.js';
import type { DataplaneControl } from './program.js';
import type { Sealer } from './keyring.js';
import type { PkiOptions } from './pki-admission.js';

/**
 * WireGuard peer programming: the crypto package's `WireGuardDevice` satisfies this directly.
 * Each live member that advertises a WireGuard key becomes a peer at its VTEP address and
 * advertised port; a dead or departed member's peer is removed. `peers()` feeds `agent status`.
 */
export type TunnelPeers = Pick<WireGuardDevice, 'setPeer' | 'removePeer'> & Partial<Pick<WireGuardDevice, 'peers'>>;

/** Record change events; `rec` is the stored record (treat as read-only). */
export interface AgentEvents extends MembershipEvents {
  onRecord?(rec: SignedRecord): void;
}

export interface LocalEndpoint {
  id: string;
  mac: Uint8Array;
  ipv4?: Uint8Array;
  ipv6?: Uint8Array;
}

export interface NetworkSpec {
  name: string;
  vni: number;
}

export interface AgentOptions {
  name: string;
  /** Address peers reach our gossip (UDP) and push-pull (TCP) on. */
  advertise: Addr;
  /** Underlay address of our VXLAN endpoint; default the advertise ip. */
  vtep?: string;
  vtepPort?: number;
  /** Ed25519 secret key (64 bytes, tweetnacl format). Persist it: it is the node's identity. */
  signingKey: Uint8Array;
  wireguard?: { publicKey: string; port: number };
  sealer: Sealer;
  config?: MembershipConfig;
  clock: Clock;
  random?: () => number;
  packets: PacketNet;
  streams: StreamNet;
  /** Networks this node is attached to; records of other networks are kept but not programmed. */
  networks?: NetworkSpec[];
  dataplane?: DataplaneControl;
  tunnel?: TunnelPeers;
  events?: AgentEvents;
  /** Record kinds besides endpoints (one RecordKind each, e.g. service instances). */
  kinds?: RecordKind<unknown>[];
  /** Members kept at most, any state, self included (membership.ts DEFAULT_MAX_MEMBERS). */
  maxMembers?: number;
  /** Deleted records are forgotten this long after they arrived. Default 30 min. */
  tombstoneReapMs?: number;
  /** Dead/left members and their records are forgotten after this. Default 1 h. */
  deadNodeReapMs?: number;
  /** Packets whose send time is farther than this from ours are dropped. Default 120 s. */
  maxClockSkewMs?: number;
  /**
   * Every this many ms, push-pull with one random member declared dead (not left), as serf's
   * reconnect does: the only way two sides of a healed partition find each other again once
   * gossip-to-the-dead has expired. Default 30 s.
   */
  reconnectIntervalMs?: number;
  /** Session id; default clock.now(). Must grow across restarts of the same node. */
  session?: number;
  /**
   * Encoded protobuf fields appended to the body of every record this node signs, as a newer
   * version that added fields would: for wire-compatibility tests only.
   */
  recordExtension?: Uint8Array;
  /**
   * 'network': take and spread endpoint and service records of our `networks` only, advertised in
   * our meta (networks-gossip.ts); 'cluster': every record, as protocol 2. Default: 'network'
   * when `networks` is given, else 'cluster'.
   */
  gossipScope?: 'network' | 'cluster';
  /** Delta push-pull with peers that speak it (pushpull.ts); default true. */
  deltaPushPull?: boolean;
  /** Admission by certificate (pki-admission.ts); absent: every cluster-key holder takes part. */
  pki?: PkiOptions;
}
