/**
 * The agent's counters, in the one counter discipline of every package (CounterSet from
 * @overlay/dataplane): append-only lists of stable snake_case names. Never reorder or rename:
 * the names are what `agent status` and metrics show.
 */
import { CounterSet } from '@overlay/dataplane';

/** Why a packet, exchange or record was refused. Published on 'overlay.agent.drop'. */
export const AGENT_DROP_REASONS = [
  // gossip datagrams (envelope.ts)
  'oversized',
  'auth_failed',
  'malformed',
  'protocol_mismatch',
  'bad_sender',
  'stale_timestamp',
  'replayed',
  'old_session',
  'handler_error',
  // records (records.ts): as received, not stale
  'record_malformed',
  'record_bad_signature',
  'record_unknown_owner',
  // membership meta and tunnel programming
  'bad_member_meta',
  'sign_key_changed',
  'tunnel_program_failed',
  // push-pull exchanges (pushpull.ts)
  'pushpull_bad_stream',
  'pushpull_oversized',
  'pushpull_auth_failed',
  'pushpull_malformed',
  'pushpull_protocol_mismatch',
  'pushpull_bad_sender',
  'pushpull_stale_timestamp',
  'pushpull_replayed',
  'pushpull_old_session',
  'pushpull_state_too_big',
  // admission by certificate (pki-admission.ts; only with `pki:`): the refusal's code is counted
  // in the PKI counters (PKI_EVENTS) as well
  'member_not_admitted',
  'gossip_not_admitted',
  'record_not_admitted',
  'record_claim_refused',
  'record_revocation_invalid',
] as const;
export type AgentDropReason = (typeof AGENT_DROP_REASONS)[number];

/** What the agent did (no channel). */
export const AGENT_EVENTS = [
  'packets_sent',
  'bytes_sent',
  'packets_received',
  'bytes_received',
  'push_pulls',
  'push_pull_failures',
  'records_applied',
  'join_attempts',
] as const;
export type AgentEvent = (typeof AGENT_EVENTS)[number];

/** What membership did (membership.ts; no channel). bad_alive: alive entries (gossip or push-pull) refused for an empty or over-long name or a bad address. */
export const MEMBERSHIP_EVENTS = [
  'probes',
  'probes_failed',
  'indirect_probes',
  'nacks_sent',
  'nacks_received',
  'refutations',
  'suspicions',
  'declared_dead',
  'bad_alive',
  'members_refused', // a new name beyond Membership's maxMembers cap (membership.ts)
  'alive_sent_direct', // our alive sent straight back to whoever sent us a suspicion or death of ours
  'deaths_held', // a suspicion timed out but the suspect had answered a probe since: not declared dead
] as const;
export type MembershipEvent = (typeof MEMBERSHIP_EVENTS)[number];

export const AGENT_DROP_CHANNEL = 'overlay.agent.drop';

export type AgentDrops = CounterSet<AgentDropReason>;
export type AgentCounters = CounterSet<AgentEvent>;
export type MembershipCounters = CounterSet<MembershipEvent>;

export function createAgentDrops(): AgentDrops {
  return new CounterSet(AGENT_DROP_REASONS, AGENT_DROP_CHANNEL);
}
export function createAgentCounters(): AgentCounters {
  return new CounterSet(AGENT_EVENTS);
}
export function createMembershipCounters(): MembershipCounters {
  return new CounterSet(MEMBERSHIP_EVENTS);
}
