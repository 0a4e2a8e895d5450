/**
 * @overlay/native: Linux TAP/TUN devices and batched UDP (recvmmsg/sendmmsg) behind the
 * dataplane's FrameDevice and Transport interfaces, through a thin N-API addon (csrc/).
 * Off Linux, opening anything throws UnsupportedPlatformError.
 */
export { TapDevice, VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6, VNET_HDR_LEN, type TapOptions } from './tap.js';
export { UdpTransport, type UdpOptions } from './udp.js';
export { NativeError, NativeAddonMissingError, UnsupportedPlatformError } from './errors.js';
export { IoCounters, COUNTER_NAMES, type CounterName, type IoCounterSnapshot } from './counters.js';
export { linkMtu, setLinkMtu, overlayMtu, linkFamily } from './link.js';
export { nativeAead, resolveAead, type AeadImpl, type NativeAead } from './aead.js';
