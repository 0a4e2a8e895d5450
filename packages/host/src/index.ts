/**
 * @overlay/host: one overlay host (underlay socket, optional WireGuard transport, TAP devices,
 * dataplane) assembled in one place, with the overlay MTU rule. Used by the agent, the test
 * runner, the demo and the throughput benchmark.
 */
export { openHost, type Host, type HostDevice, type HostStats, type HostTransport } from './host.js';
export {
  validateHostOptions,
  DEFAULT_PORT,
  DEFAULT_BATCH,
  DEFAULT_POOL_SLOTS,
  DEFAULT_SOCKET_BUFFER,
  DEFAULT_TX_QUEUE_LEN,
  MAX_WORKERS,
  type HostOptions,
  type HostNetworkOptions,
  type UnderlayOptions,
  type WireGuardOptions,
  type WireGuardPeerOptions,
  type TapTuning,
} from './options.js';
export { UnderlayNotFoundError, LinkSetupError } from './errors.js';
export { WorkerStartError, WorkersUnsupportedError } from './worker-errors.js';
export { linkHolding } from './link.js';
export { overlayMtu, VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 } from '@overlay/native';
