/**
 * The runner's services wiring (cli.ts runAgent): health → records → directory → DNS.
 *
 * - the service kind and its `ServiceView` (services.ts), given to the Agent as a record kind;
 * - this host's instances from the config, published and checked by `LocalServices`
 *   (services-local.ts);
 * - the embedded DNS of @overlay/services: a `ServiceDirectory` fed by the view (directorySink);
 *   per network with a device and a resolver address, the `DnsResponder` stage answering that
 *   address inside the dataplane (ARP/ND for it answered with `resolverMac(vni)`); a socket for
 *   host processes when the config has `dns`; forwarding of other names when `dns.forward`;
 * - VIPs: per network with a device, `ServiceVips` programmed from the view (services-vip.ts);
 *   the directory answers a vip-mode service without a declared VIP with the allocated one;
 * - the services part of `agent status`.
 */
import { formatMac, type Dataplane } from '@overlay/dataplane';
import { DnsResponder, DnsServer, Forwarder, ServiceDirectory, ServiceVips, createDnsCounters } from '@overlay/services';
import { type AgentConfig } from './config.js';
import { ENDPOINTS, type EndpointRecord } from './endpoints.js';
import type { MemberState } from './membership.js';
import type { SignedRecord } from './records.js';
import { LocalServices, type RecordPublisher } from './services-local.js';
import { ServiceVipSync } from './services-vip.js';
import { ServiceView, describeInstance, directorySink, serviceKind, type DirectoryLike } from './services.js';
import type { ServicesStatus } from './status.js';
import type { Logger } from './log.js';

/** The MAC the resolver address answers ARP/ND with in a network: locally administered, from the VNI (02:53:vv:vv:vv:53). */
export function resolverMac(vni: number): number {
  return 0x02_53_00_00_00_53 + (vni & 0xffffff) * 0x100;
}

/** What the VIP sync reads of the agent besides publishing (the `Agent` satisfies it). */
export interface RecordLookups {
  endpoint(network: string, id: string): EndpointRecord | undefined;
  readonly table: { ofKind<D>(kind: { code: number }, network?: string): Iterable<SignedRecord<D>> };
  readonly membership: { stateOf(name: string): MemberState | undefined };
}

/**
 * The directory as the sink sees it: a vip-mode service whose records declare no VIP gets the
 * address the VIP sync allocated (re-set when that changes); without one yet it is answered as
 * dnsrr, so the directory never refuses it.
 */
function vipAwareDirectory(dir: ServiceDirectory, allocated: (network: string, service: string) => string | undefined) {
  const wanted = new Map<string, Parameters<DirectoryLike['setService']>[0]>();
  const set = (spec: Parameters<DirectoryLike['setService']>[0]) => {
    if (spec.endpointMode !== 'vip' || (spec.vip && spec.vip.length)) return dir.setService(spec);
    const vip = allocated(spec.network, spec.name);
    dir.setService(vip ? { ...spec, vip: [vip] } : { ...spec, endpointMode: 'dnsrr', vip: [] });
  };
  const like: DirectoryLike = {
    setService(spec) {
      wanted.set(`${spec.network}\u0000${spec.name}`, spec);
      set(spec);
    },
    removeService(network, name) {
      wanted.delete(`${network}\u0000${name}`);
      return dir.removeService(network, name);
    },
    updateInstance: (n, s, i) => dir.updateInstance(n, s, i),
    removeInstance: (n, s, id) => dir.removeInstance(n, s, id),
    instanceCount: (n, s) => dir.instanceCount(n, s),
  };
  /** The allocation of (network, service) changed: set the directory's spec again. */
  const refresh = (network: string, service: string) => {
    const spec = wanted.get(`${network}\u0000${service}`);
    if (spec) set(spec);
  };
  return { like, refresh };
}

export class ServicesRuntime {
  readonly view = new ServiceView();
  readonly kind = serviceKind(this.view);
  readonly directory = new ServiceDirectory();
  readonly dnsCounters = createDnsCounters();
  local: LocalServices | undefined;
  vips: ServiceVipSync | undefined;
  private readonly dirView = vipAwareDirectory(this.directory, (n, s) => this.vips?.address(n, s));
  private server: DnsServer | undefined;
  private vipControl: ServiceVips | undefined;
  private forwarder: Forwarder | undefined;
  private readonly responders: { dp: Dataplane; vni: number }[] = [];

  constructor(
    private readonly cfg: AgentConfig,
    private readonly log: Logger,
  ) {
    this.view.attach(directorySink(this.dirView.like));
  }

  /**
   * Once the agent runs: the resolver of every network with a device and a resolver address
   * (DnsResponder stage + its ARP/ND entry), the DNS socket when configured, then our instances.
   * `mtus`: the TAP MTU per VNI (answers never exceed it).
   */
  async start(agent: RecordPublisher & Partial<RecordLookups>, dataplane: Dataplane | undefined, mtus: ReadonlyMap<number, number> = new Map()): Promise<void> {
    const dns = this.cfg.dns;
    if (dns?.forward && dataplane) this.forwarder = new Forwarder({ counters: this.dnsCounters, exclude: [`${dns.listen.ip}:${dns.listen.port}`] });
    if (dataplane) {
      for (const n of this.cfg.networks) {
        if (!n.resolver || !n.device) continue;
        const v6 = n.resolver.includes(':');
        dataplane.addStage(n.vni, new DnsResponder({
          directory: this.directory, networks: [n.name], address4: v6 ? undefined : n.resolver, address6: v6 ? n.resolver : undefined,
          forwarder: this.forwarder, counters: this.dnsCounters, mtu: mtus.get(n.vni),
        }));
        dataplane.setNeighbour(n.vni, n.resolver, resolverMac(n.vni));
        this.responders.push({ dp: dataplane, vni: n.vni });
        this.log.info({ network: n.name, resolver: n.resolver, mac: formatMac(resolverMac(n.vni)) }, 'resolver answering in the dataplane');
      }
    }
    if (dataplane && agent.endpoint && agent.table && agent.membership) {
      const a = agent as RecordPublisher & RecordLookups;
      this.vips = new ServiceVipSync({
        view: this.view,
        control: (this.vipControl = new ServiceVips(dataplane)),
        networks: this.cfg.networks.filter((n) => n.device).map((n) => ({ name: n.name, vni: n.vni, subnet: n.subnet, resolver: n.resolver })),
        endpoint: (n, id) => a.endpoint(n, id),
        endpoints: (n) => a.table.ofKind(ENDPOINTS, n) as Iterable<EndpointRecord>,
        ownerState: (o) => (o === this.cfg.name ? 'alive' : a.membership.stateOf(o)),
        self: this.cfg.name,
        onAddress: (n, s) => this.dirView.refresh(n, s),
        log: (s) => this.log.info(s),
      });
    }
    if (dns) {
      // The host socket reads and answers in batches (recvmmsg/sendmmsg) on @overlay/native's
      // transport: 1.4× dnsmasq's qps where node:dgram gave 0.44× (docs/services-dns-speed-tcp.md).
      const { UdpTransport } = await import('@overlay/native');
      this.server = await DnsServer.listen({
        directory: this.directory, networks: this.cfg.networks.map((n) => n.name), address: dns.listen.ip, port: dns.listen.port, counters: this.dnsCounters, forward: dns.forward ? {} : false,
        udpTransport: (address, port) => UdpTransport.bind({ address, port }),
      });
      this.log.info({ listen: `${dns.listen.ip}:${this.server.port}` }, 'dns socket listening');
    }
    const local = new LocalServices({ agent, kind: this.kind });
    this.local = local;
    for (const s of this.cfg.services) {
      for (const i of s.instances) {
        local.add({
          network: s.network, service: s.name, id: i.id, endpoint: i.endpoint, ipv4: i.ipv4, ipv6: i.ipv6, ports: i.ports,
          mode: s.endpointMode, vip: s.vip, ttl: s.ttl, health: s.healthcheck,
        });
      }
    }
  }

  status(): ServicesStatus {
    const resolvers: Record<string, string> = {};
    for (const n of this.cfg.networks) if (n.resolver) resolvers[n.name] = n.resolver;
    const listen = this.cfg.dns?.listen;
    return {
      resolvers,
      dnsListen: this.server && listen ? `${listen.ip.includes(':') ? `[${listen.ip}]` : listen.ip}:${this.server.port}` : undefined,
      dnsBatched: this.server?.udpBatched,
      instances: [...this.view.all()].map((i) => ({ network: i.network, ...describeInstance(i) })),
      local: this.local?.list() ?? [],
      vips: this.vips?.list() ?? [],
      counters: { ...this.view.counters.snapshot(), ...prefixed('vip_', this.vips?.counters.snapshot()), ...this.local?.counters.snapshot(), ...this.local?.checker.counters.snapshot(), ...prefixed('dns_', this.dnsCounters.snapshot()) },
    };
  }

  /** Per network with VIPs: the translator's counters, drops and flows (metrics.ts). */
  vipStats(): ReturnType<ServiceVips['stats']> {
    return this.vipControl?.stats() ?? [];
  }

  /** Stop the checks (records stay until the leave), close the DNS socket and responders. */
  async stop(): Promise<void> {
    await this.local?.stop();
    this.vips?.close();
    for (const r of this.responders.splice(0)) r.dp.removeStage(r.vni, 'dns');
    this.forwarder?.close();
    await this.server?.close();
    this.server = undefined;
  }
}

function prefixed(p: string, o: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o ?? {})) out[p + k] = v;
  return out;
}
