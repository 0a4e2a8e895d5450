export { PolicyError, validatePolicy, parseCidr4, parseCidr, TIERS, MAX_RULES, type Policy, type PolicyRule, type PolicyAction, type PolicyProto, type EndpointSelector, type Tier, type NormalPolicy, type NormalRule, type Cidr4, type Cidr } from './rules.js';
export { CompiledPolicy, ACTION_ALLOW, ACTION_DENY, MAX_CELLS_PER_RULE, type CompileOptions, type GroupLists } from './compile.js';
export { IdentityTable } from './identity.js';
export { PolicyFilter, POLICY_DROP_REASONS, POLICY_COUNTERS, POLICY_CHANNEL, type PolicyDropReason, type PolicyCounter, type PolicyFilterOptions, type PolicyLogEntry, type FlowQuery, type Explanation, type Direction } from './filter.js';
export { PolicyCompileError, OFF_THREAD_MIN_RULES, preparePolicy, type PreparedPolicy } from './compile-off-thread.js';
