export { PolicyError, validatePolicy, parseCidr4, TIERS, MAX_RULES, type Policy, type PolicyRule, type PolicyAction, type PolicyProto, type EndpointSelector, type Tier, type NormalPolicy, type NormalRule, type Cidr4 } from './rules.js';
export { CompiledPolicy, ACTION_ALLOW, ACTION_DENY } from './compile.js';
export { IdentityTable } from './identity.js';
export { PolicyFilter, POLICY_DROP_REASONS, POLICY_COUNTERS, POLICY_CHANNEL, type PolicyDropReason, type PolicyCounter, type PolicyFilterOptions, type PolicyLogEntry, type FlowQuery, type Explanation, type Direction } from './filter.js';
