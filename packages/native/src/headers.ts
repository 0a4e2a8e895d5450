/** Header sizes and virtio-net header values for the TAP offload paths (checksums: @overlay/dataplane). */
export { ETHERNET_HEADER_LENGTH as ETH, IPV4_HEADER_LENGTH as IPV4 } from '@overlay/dataplane';

/** virtio_net_hdr as asked for with TUNSETVNETHDRSZ: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (LE), num_buffers. */
export const VNET_HDR_LEN = 12;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_ECN = 0x80;
