export { MAGLEV_SIZE, maglevTable, flowHash } from './maglev.js';
export { Conntrack, CONNTRACK_COUNTERS, DEFAULT_TIMEOUTS, STATE_NAMES, type ConntrackOptions, type ConntrackTimeouts, type ConntrackCounter } from './conntrack.js';
export { TimerWheel } from './wheel.js';
export { VipTranslator, VIP_COUNTERS, VIP_DROP_REASONS, type VipTranslatorOptions, type VipCounter, type VipDropReason } from './translator.js';
export { VipConfigError, type VipSpec, type VipBackend } from './service.js';
export { ServiceVips, type VipNetworkStats } from './service-vip.js';
