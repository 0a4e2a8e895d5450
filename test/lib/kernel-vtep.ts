import type { TestHost } from './testbed.js';

export interface KernelVtepOptions {
  vni: number;
  /** Underlay address the kernel device sends from (IPv4 or IPv6 of `host`). */
  local: string;
  /** MAC and MTU of the device, and its overlay address with prefix length (e.g. 198.19.0.2/24). */
  mac: string;
  mtu: number;
  address: string;
  /** Underlay address of the one peer VTEP: flood (all-zero MAC) entry and each of `macs`. */
  peer: string;
  /** Overlay MACs reached at `peer` (static `bridge fdb` entries). */
  macs: string[];
  /** VXLAN Group Policy (`gbp`): the packet mark travels as the Group Policy ID both ways. */
  gbp?: boolean;
}

/**
 * A Linux kernel VXLAN device `vxk` on `host` (port 4789, learning off, static entries towards one
 * peer) for interop tests against our dataplane. The host's `ul0` has TX checksum offload turned
 * off: veth hands checksum-offloaded packets across namespaces unfinished (a real NIC would finish
 * them on the wire) and our socket reads raw bytes, so they are finished in software here.
 */
export async function addKernelVtep(host: TestHost, o: KernelVtepOptions): Promise<void> {
  await host.exec('ip', ['-batch', '-'], {
    input:
      [
        `link add vxk type vxlan id ${o.vni} dstport 4789 local ${o.local} dev ul0 nolearning${o.gbp ? ' gbp' : ''}`,
        `link set vxk address ${o.mac} mtu ${o.mtu}`,
        `addr add ${o.address} dev vxk`,
        'link set vxk up',
      ].join('\n') + '\n',
  });
  await host.exec('ethtool', ['-K', 'ul0', 'tx', 'off']);
  await host.exec('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', 'vxk', 'dst', o.peer]);
  for (const mac of o.macs) await host.exec('bridge', ['fdb', 'add', mac, 'dev', 'vxk', 'dst', o.peer]);
}
