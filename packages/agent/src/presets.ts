/**
 * Timing presets. Every default is explained where it is defined; numbers follow the profiles of
 * HashiCorp memberlist (DefaultLANConfig/WAN/Local), which production clusters have tuned for
 * years, so our behaviour is comparable with serf/consul side by side.
 */
export interface MembershipConfig {
  /** Time between probes of one member by this node. */
  probeIntervalMs: number;
  /** Wait for a direct ack before asking others for indirect probes. */
  probeTimeoutMs: number;
  /** Members asked to probe on our behalf when the direct probe fails. */
  indirectChecks: number;
  /** Wait for indirect (and TCP) answers before the verdict; capped at probeInterval − probeTimeout. */
  indirectTimeoutMs: number;
  /** Time between gossip rounds of piggybacked broadcasts. */
  gossipIntervalMs: number;
  /** Members each gossip round sends to. */
  gossipNodes: number;
  /** Dead members still receive gossip this long, so they learn they were declared dead. */
  gossipToTheDeadMs: number;
  /** Broadcast budget: each item is sent retransmitMult × ceil(log10(N+1)) times. */
  retransmitMult: number;
  /** Suspicion timeout = suspicionMult × max(1, log10(N)) × probeInterval at least (may be fractional). */
  suspicionMult: number;
  /** Suspicion timeout without confirmations = this × the minimum timeout. */
  suspicionMaxTimeoutMult: number;
  /** Independent confirmations (Lifeguard k) that shrink the suspicion timeout to its minimum. */
  suspicionConfirmations: number;
  /** On hearing another member's suspicion, probe the suspect now (about k+1 members do). */
  confirmationProbes: boolean;
  /** Lifeguard local health: probe timeouts stretch up to this multiple when we look slow. */
  awarenessMaxMultiplier: number;
  /** Full state exchange with a random member, scaled up for clusters above 32 nodes. */
  pushPullIntervalMs: number;
  /** Largest UDP payload we send (sealed), within the underlay MTU. */
  maxPacketBytes: number;
}

/**
 * LAN: a data centre network with sub-millisecond RTT. Tuned for issue 16 (kill -9 seen by all
 * in a median ≤ 3 s at N = 5, no false deaths at 10 % loss, no more bytes than serf): the
 * trade-off curve behind these numbers is bench/sim-detect.ts, written up in
 * docs/failure-detection.md.
 * - probe 1 s: each member probes one other a second, ~2 small packets/s/node (a faster probe
 *   would detect sooner but costs bytes linearly: 500 ms doubles them, above serf's).
 * - probe timeout 300 ms, then 300 ms for indirect and TCP answers: a verdict 600 ms after the
 *   probe instead of at the next probe; still hundreds of LAN RTTs, and Lifeguard stretches both
 *   when this node itself is slow.
 * - 3 indirect checks: three other paths must fail before we suspect, which rules out one bad link
 *   (5 were no faster in the simulation at N = 50 and sent 18 % more bytes).
 * - gossip every 200 ms to 3 members: news reaches N nodes in about log3(N) rounds (1 000 nodes
 *   in ~7 rounds ≈ 1.4 s) while a quiet cluster sends no gossip at all.
 * - gossip to the dead 30 s: a falsely declared node hears it and refutes.
 * - retransmit mult 4: ×ceil(log10(N+1)) transmissions reach everyone with high probability even
 *   at 10 % loss; push-pull repairs the rest.
 * - suspicion mult 1, max mult 6, 2 confirmations: dead after 1×max(1, log10 N) s (1 s at N ≤ 10,
 *   3 s at N = 1000) once two other members confirm, up to 6× that with no confirmation, so one
 *   slow observer cannot kill a node.
 * - confirmation probes on: whoever hears a suspicion probes the suspect at once (about k+1
 *   members), so confirmations of a real failure come within one probe instead of one probe
 *   pass over the members; without them the short minimum above would rarely be reached.
 * - awareness max 8: a node under load stretches its own timeouts up to 8×, rather than accusing
 *   healthy peers (Lifeguard).
 * - push-pull 30 s: anti-entropy with one random member; scaled with log2(N/32) above 32. Deltas
 *   (pushpull.ts) send digests and only what the peer lacks: in a quiet 50-node cluster with 5
 *   endpoints each, 140 bytes/node/s in all with deltas every 30 s against 698 with full
 *   exchanges every 60 s (bench/sim-scale.ts, docs/gossip-scale.md), so the interval is back to
 *   30 s, which had no false deaths in the lossy-TCP stress where 60 s had 2.
 * - max packet 1400: a 1500-byte MTU minus IPv6 (40) + UDP (8) headers and margin for tunnels.
 */
export const LAN: Readonly<MembershipConfig> = Object.freeze({
  probeIntervalMs: 1000,
  probeTimeoutMs: 300,
  indirectChecks: 3,
  indirectTimeoutMs: 300,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  gossipToTheDeadMs: 30_000,
  retransmitMult: 4,
  suspicionMult: 1,
  suspicionMaxTimeoutMult: 6,
  suspicionConfirmations: 2,
  confirmationProbes: true,
  awarenessMaxMultiplier: 8,
  pushPullIntervalMs: 30_000,
  maxPacketBytes: 1400,
});

/**
 * WAN: RTTs of 100+ ms and occasional loss between regions.
 * - probe 5 s / timeout 3 s, 2 s for indirect answers: several RTTs per probe, fewer packets
 *   over expensive links.
 * - gossip 500 ms to 4 members: fewer rounds but wider fan-out for high latency.
 * - gossip to the dead 60 s, suspicion mult 6 with 4 confirmations and no confirmation probes:
 *   more time to refute across slow paths.
 * - push-pull 60 s: state exchange is bigger relative to WAN bandwidth.
 */
export const WAN: Readonly<MembershipConfig> = Object.freeze({
  ...LAN,
  probeIntervalMs: 5000,
  probeTimeoutMs: 3000,
  indirectTimeoutMs: 2000,
  gossipIntervalMs: 500,
  gossipNodes: 4,
  gossipToTheDeadMs: 60_000,
  suspicionMult: 6,
  suspicionConfirmations: 4,
  confirmationProbes: false,
  pushPullIntervalMs: 60_000,
});

/**
 * Local: one host or a loopback test bed, RTT ~0.
 * - probe timeout 200 ms: no real latency to wait for; indirect answers until the next probe.
 * - 1 indirect check, suspicion mult 3 with 1 confirmation: few nodes, detect faster.
 * - gossip 100 ms, gossip to the dead 15 s, push-pull 15 s: quick convergence in tests.
 */
export const LOCAL: Readonly<MembershipConfig> = Object.freeze({
  ...LAN,
  probeTimeoutMs: 200,
  indirectChecks: 1,
  indirectTimeoutMs: 800,
  gossipIntervalMs: 100,
  gossipToTheDeadMs: 15_000,
  suspicionMult: 3,
  suspicionConfirmations: 1,
  confirmationProbes: false,
  pushPullIntervalMs: 15_000,
});

export const PRESETS = { lan: LAN, wan: WAN, local: LOCAL } as const;
export type PresetName = keyof typeof PRESETS;

/** memberlist's push-pull scaling: ×(ceil(log2(N) − log2(32)) + 1) above 32 members. */
export function pushPullScale(intervalMs: number, n: number): number {
  const threshold = 32;
  if (n <= threshold) return intervalMs;
  const mult = Math.ceil(Math.log2(n) - Math.log2(threshold)) + 1;
  return intervalMs * mult;
}

/** Minimum suspicion timeout: suspicionMult × max(1, log10(N)) × probeInterval. */
export function suspicionTimeoutMs(c: MembershipConfig, n: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return Math.round(c.suspicionMult * nodeScale * c.probeIntervalMs);
}
