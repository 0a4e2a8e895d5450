// What an embedder of the agent needs. Codec internals (wire.ts, envelope.ts) stay private:
// tests import them from their files.

// The agent and what it is built from
export { Agent, type AgentEvents, type AgentOptions, type AgentStatus, type LocalEndpoint, type NetworkSpec, type TunnelPeers } from './agent.js';
export { addrKey, realClock, type Addr, type Clock, type ExchangeDone, type PacketNet, type StreamNet, type TimerHandle } from './env.js';
export { LAN, LOCAL, PRESETS, WAN, pushPullScale, suspicionTimeoutMs, type MembershipConfig, type PresetName } from './presets.js';
export type { Member, MemberState, Membership, MembershipEvents } from './membership.js';
export { BroadcastQueue } from './broadcast.js';
export { JOIN_RETRY_BASE_MS, JOIN_RETRY_MAX_MS } from './join.js';

// Signed records: the table, its kinds, signing
export { RecordTable, compareRecords, generateSigningKey, recordKey, signRecord, verifyRecord, verifyRecordNacl, type ApplyResult, type KindContext, type RecordBytes, type RecordHead, type RecordKind, type SignedRecord, type TableEntry } from './records.js';
export { ENDPOINTS, ENDPOINT_KIND, endpointKind, type EndpointData, type EndpointRecord } from './endpoints.js';
export { Programmer, type DataplaneControl, type Programmed, type Vtep } from './program.js';
export { SERVICES, SERVICE_KIND, SERVICE_VIEW_EVENTS, ServiceView, describeInstance, directorySink, serviceKind, type DirectoryLike, type EndpointMode, type PortProtocol, type ServiceAnswer, type ServiceInstance, type ServiceInstanceData, type ServiceInstanceStatus, type ServiceRecord, type ServiceSink } from './services.js';
export { LOCAL_SERVICE_EVENTS, LocalServices, type LocalInstance, type LocalServicesOptions, type RecordPublisher } from './services-local.js';

// Sealing, counters, errors, protocol
export { InvalidClusterKeyError, Keyring, PlainSealer, SEAL_OVERHEAD, SEAL_VERSION, type Sealer } from './keyring.js';
export { AGENT_DROP_CHANNEL, AGENT_DROP_REASONS, AGENT_EVENTS, MEMBERSHIP_EVENTS, type AgentCounters, type AgentDropReason, type AgentDrops, type AgentEvent, type MembershipCounters, type MembershipEvent } from './counters.js';
export { MAX_CHUNKS, MAX_CHUNK_BYTES, MAX_NAME_LEN, PROTOCOL_MAX, PROTOCOL_MIN, WireDecodeError, type NodeMeta } from './wire.js';
export { PushPullError } from './pushpull.js';

// The in-process simulation (the embedder-facing fake)
export { VirtualClock, VirtualNetwork, seededRandom, type SimHost, type VirtualNetworkOptions } from './sim.js';
export { SimCluster, type SimClusterOptions } from './simcluster.js';

// Configuration, real I/O and the CLI (their owners' files)
export * from './config.js';
export { plan, planView, formatPlan, type Plan, type PlanView, type Change } from './plan.js';
export { LiveConfig, identityEntries, type LiveConfigOptions } from './apply.js';
export { importCompose, type ComposeImport, type ComposeWarning } from './compose.js';
export { controlCommand } from './config-commands.js';
export * from './runtime.js';
export { main, keygen, runAgent, formatStatus } from './cli.js';
