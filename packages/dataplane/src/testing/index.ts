/**
 * @overlay/dataplane/testing: in-memory devices and a virtual underlay, so an embedder can
 * build a multi-host overlay in one process without root, plus a pcap writer for captures.
 *
 *     const net = createTestnet({ loss: 0.01, seed: 7 });
 *     const dev = createMemoryDevice({ name: 'a0', mtu: 1450 });
 *     const dp = createDataplane({ transport: net.transport('198.18.0.1'), networks: [{ vni: 42, device: dev }] });
 *     dp.start();
 *     dev.inject(frame);                // as if the host wrote a frame to its TAP device
 *     await net.idle();                 // everything delivered or dropped
 */
export { createTestnet, Testnet, MemoryTransport, type TestnetOptions, type TestnetStats, type WireDatagram, type Endpoint } from './testnet.js';
export { createMemoryDevice, MemoryDevice, type MemoryDeviceOptions } from './memory-device.js';
export { encodePcap, buildUdpFrame, pcapFromWire, LINKTYPE_ETHERNET, type PcapRecord, type UdpFrameOptions } from './pcap.js';
export { seededRandom } from './rng.js';
export { buildFrame, buildArpRequest, buildNeighborSolicitation, type FrameOptions } from './frames.js';
export { CountingDevice, CountingTransport } from './counting.js';
