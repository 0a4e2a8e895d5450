/**
 * The runner's services wiring (cli.ts runAgent): health → records → directory → DNS.
 *
 * - the service kind and its `ServiceView` (services.ts), given to the Agent as a record kind;
 * - this host's instances from the config, published and checked by `LocalServices`
 *   (services-local.ts);
 * - the embedded DNS of @overlay/services: a `ServiceDirectory` fed by the view (directorySink), a
 *   socket for host processes when the config has `dns.listen`, and the responder stage that
 *   answers each network's resolver address inside the dataplane (when the build has it);
 * - the services part of `agent status`.
 */
import * as services from '@overlay/services';
import { type AgentConfig } from './config.js';
import { LocalServices } from './services-local.js';
import { type DirectoryLike, ServiceView, describeInstance, directorySink, serviceKind } from './services.js';
import type { RecordPublisher } from './services-local.js';
import type { ServicesStatus } from './status.js';

/** What the DNS parts of @overlay/services look like to us; checked at run time (they land separately). */
interface DnsParts {
  ServiceDirectory?: new () => DirectoryLike;
  DnsServer?: { listen(o: { directory: DirectoryLike; networks: readonly string[]; address: string; port?: number; forward?: false | object }): Promise<{ close(): Promise<void>; port: number; counters?: { snapshot(): Record<string, number> } }> };
  /** The dataplane responder stage answering DNS (and ARP/ND) for a resolver address; its API is @overlay/services'. */
  installResolver?: (o: { dataplane: unknown; vni: number; address: string; directory: DirectoryLike; networks: readonly string[] }) => { close(): void } | void;
}

export class ServicesRuntime {
  readonly view = new ServiceView();
  readonly kind = serviceKind(this.view);
  local: LocalServices | undefined;
  directory: DirectoryLike | undefined;
  private server: Awaited<ReturnType<NonNullable<DnsParts['DnsServer']>['listen']>> | undefined;
  private readonly responders: { close(): void }[] = [];

  constructor(
    private readonly cfg: AgentConfig,
    private readonly log: (s: string) => void,
  ) {}

  /** Once the agent runs: publish our instances, open the directory, the DNS socket and responders. */
  async start(agent: RecordPublisher, dataplane: unknown): Promise<void> {
    const parts = services as unknown as DnsParts;
    if (parts.ServiceDirectory) {
      this.directory = new parts.ServiceDirectory();
      this.view.attach(directorySink(this.directory));
    }
    const names = this.cfg.networks.map((n) => n.name);
    if (this.directory && dataplane && parts.installResolver) {
      for (const n of this.cfg.networks) {
        if (!n.resolver || !n.device) continue;
        const r = parts.installResolver({ dataplane, vni: n.vni, address: n.resolver, directory: this.directory, networks: [n.name] });
        if (r) this.responders.push(r);
      }
    }
    const dns = this.cfg.dns;
    if (dns) {
      if (!this.directory || !parts.DnsServer) this.log('dns.listen: this build has no embedded DNS server; no socket opened');
      else {
        this.server = await parts.DnsServer.listen({ directory: this.directory, networks: names, address: dns.listen.ip, port: dns.listen.port, forward: dns.forward ? {} : false });
        this.log(`dns on ${dns.listen.ip}:${this.server.port}`);
      }
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
      instances: [...this.view.all()].map((i) => ({ network: i.network, ...describeInstance(i) })),
      local: this.local?.list() ?? [],
      counters: { ...this.view.counters.snapshot(), ...this.local?.counters.snapshot(), ...this.local?.checker.counters.snapshot(), ...prefixed('dns_', this.server?.counters?.snapshot()) },
    };
  }

  /** Stop the checks (records stay until the leave), close the DNS socket and responders. */
  async stop(): Promise<void> {
    await this.local?.stop();
    for (const r of this.responders.splice(0)) r.close();
    await this.server?.close();
    this.server = undefined;
  }
}

function prefixed(p: string, o: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o ?? {})) out[p + k] = v;
  return out;
}
