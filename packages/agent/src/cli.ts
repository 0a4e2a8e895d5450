/**
 * `agent [run] --config FILE`   run the agent (SIGTERM/SIGINT: graceful leave, then exit 0)
 * `agent check --config FILE`   validate the config, open nothing, print a one-line summary
 * `agent status [--json] [--socket PATH | --config FILE]`   members, endpoints, peers, drops
 * `agent keygen`                print a new signing key, cluster key and WireGuard key (YAML)
 * `--help`/`-h` after any command, `--version`; `--config=FILE` works too.
 *
 * Exit codes: 0 ok, 2 bad configuration or usage (message names the field), 1 runtime failure.
 */
import nacl from 'tweetnacl';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Agent, type AgentOptions } from './agent.js';
import { ENDPOINT_KIND } from './endpoints.js';
import { AgentConfigError, hostsToCheck, loadConfig, summarizeConfig, type AgentConfig } from './config.js';
import { realClock } from './env.js';
import { Keyring, PlainSealer } from './keyring.js';
import { PRESETS } from './presets.js';
import { createRealIo, queryControl, serveControl } from './runtime.js';
import { type StoreBridge, openStoreBridge } from './store-bridge.js';
import type { AgentStatus } from './agent.js';
import { dataplaneStatus, describeStatus, formatStatus, withPeerTraffic } from './status.js';
import { ServicesRuntime } from './services-run.js';
import { PKI_USAGE, pkiMain } from './cli-pki.js';
import { LiveConfig } from './apply.js';
import { applyCommand, controlCommand, explainCommand, importCommand, planCommand, schemaCommand } from './config-commands.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics, serveMetrics } from './metrics.js';
import { preparePki, revokeCommand, startPkiRuntime } from './pki-run.js';

export { formatStatus } from './status.js';

export async function keygen(): Promise<string> {
  const kp = nacl.sign.keyPair();
  const lines = [
    `# Ed25519 node identity (keep secret; persist it: it signs this node's endpoint records)`,
    `signingKey: ${Buffer.from(kp.secretKey).toString('base64')}`,
    `# public: ${Buffer.from(kp.publicKey).toString('base64')}`,
    `# cluster key (same on every node)`,
    `encryption:`,
    `  clusterKeys: [${randomBytes(32).toString('base64')}]`,
  ];
  try {
    const c = await import('@overlay/crypto');
    const priv = c.generatePrivateKey();
    lines.push(`# WireGuard key (optional: encrypts the overlay between hosts on the VXLAN port)`, `wireguard:`, `  privateKey: ${priv}`, `  # public: ${c.publicKeyOf(priv)}`);
  } catch {
    // crypto package unavailable: no WireGuard key
  }
  return lines.join('\n') + '\n';
}

/**
 * The data plane for networks with a `device`: openHost (@overlay/host) with a UDP socket on
 * vtep:vtepPort (wrapped in the WireGuard secure transport when `wireguard` is configured; peers
 * come from gossip) and one TAP per network, its MTU from the underlay link that holds `vtep`.
 * An endpoint whose `device` is the TAP gives the TAP its MAC and addresses (prefix from the
 * network's subnet, else /32 and /128). The network's dataplane options pass through.
 */
async function openDataplane(cfg: AgentConfig) {
  if (!cfg.networks.some((n) => n.device)) return null;
  const { openHost } = await import('@overlay/host');
  // Optional access: these fields arrive with config.ts's per-network dataplane options.
  type DataplaneFields = { learning?: boolean; unknownUnicast?: 'flood' | 'drop'; arpSuppression?: boolean; ageingMs?: number; gbp?: boolean };
  const networks = cfg.networks.flatMap((n) => {
    if (!n.device) return [];
    const o = n as typeof n & DataplaneFields;
    const prefix4 = n.subnet && !n.subnet.includes(':') ? n.subnet.split('/')[1] : '32';
    const prefix6 = n.subnet && n.subnet.includes(':') ? n.subnet.split('/')[1] : '128';
    const mine = n.endpoints.filter((e) => e.device === n.device);
    const addresses = mine.flatMap((e) => [...(e.ipv4Text ? [`${e.ipv4Text}/${prefix4}`] : []), ...(e.ipv6Text ? [`${e.ipv6Text}/${prefix6}`] : [])]);
    return [{ vni: n.vni, tap: n.device, mac: mine.at(-1)?.macText, addresses, learning: o.learning, unknownUnicast: o.unknownUnicast, arpSuppression: o.arpSuppression, ageingMs: o.ageingMs, gbp: o.gbp }];
  });
  const host = await openHost({ underlay: { address: cfg.vtep, port: cfg.vtepPort }, wireguard: cfg.wireguard && { privateKey: cfg.wireguard.privateKey }, networks });
  return { dp: host.dataplane, wg: host.tunnel, host };
}

/** The logger the config asks for (`log: {level, format}`), on stderr, every line naming the node. */
export function configLogger(cfg: AgentConfig): Logger {
  return createLogger({ level: cfg.log?.level, format: cfg.log?.format, base: { node: cfg.name } });
}

/**
 * Build and start an agent from a validated config; resolves once gossip is listening (and the
 * metrics endpoint, when `metrics:` is configured). `extra` overrides agent options the config
 * has no field for (tests: e.g. `recordExtension`).
 */
export async function runAgent(cfg: AgentConfig, log: Logger = configLogger(cfg), extra: Partial<AgentOptions> = {}) {
  let wgPublic: string | undefined;
  if (cfg.wireguard) wgPublic = (await import('@overlay/crypto')).publicKeyOf(cfg.wireguard.privateKey);
  // `pki:`: join if asked, then our certificate, identity key and gossip keys (pki-run.ts).
  const pki = cfg.pki ? await preparePki(cfg, wgPublic) : undefined;
  for (const note of pki?.notes ?? []) log.info({ pki: note }, 'pki');
  const plane = await openDataplane(cfg);
  const io = createRealIo(cfg.listen);
  const services = new ServicesRuntime(cfg, log);
  // Config `store: {kind: etcd}`: our records also go to etcd and everyone's come from it (store-bridge.ts).
  let bridge: StoreBridge | undefined;
  const agent = new Agent({
    dataplane: plane?.dp,
    tunnel: plane?.wg,
    // The tunnel rides the VXLAN socket (secure transport), so peers are reached on vtepPort.
    wireguard: wgPublic ? { publicKey: wgPublic, port: cfg.vtepPort } : undefined,
    name: cfg.name,
    advertise: cfg.advertise,
    vtep: cfg.vtep,
    vtepPort: cfg.vtepPort,
    signingKey: pki?.signingKey ?? cfg.signingKey,
    sealer: pki?.sealer ?? (cfg.clusterKeys.length ? new Keyring(cfg.clusterKeys) : new PlainSealer()),
    pki: pki?.pki,
    config: PRESETS[cfg.profile],
    clock: realClock,
    packets: io,
    streams: io,
    networks: cfg.networks.map((n) => ({ name: n.name, vni: n.vni })),
    events: {
      onJoin: (m) => log.info({ member: m.name, address: `${m.ip}:${m.port}` }, 'member joined'),
      onLeave: (m) => log.info({ member: m.name, state: m.state }, 'member left'),
      // A backend's MAC comes from its endpoint record; endpoint addresses are skipped by VIP allocation.
      onRecord: (r) => {
        if (r.kind === ENDPOINT_KIND) services.vips?.endpointChanged(r.network);
        bridge?.recordChanged(r);
      },
    },
    ...extra,
    kinds: [services.kind, ...(extra.kinds ?? [])],
  });
  await io.bind(agent);
  agent.start();
  for (const n of cfg.networks) for (const e of n.endpoints) agent.publish({ name: n.name, vni: n.vni }, { id: e.id, mac: e.mac, ipv4: e.ipv4, ipv6: e.ipv6 });
  // The config's policies (a `policy` filter per network with a device); apply/SIGHUP change it live (apply.ts).
  const live = new LiveConfig({ cfg, agent, instances: () => services.local, view: services.view, dataplane: plane?.dp, log: (s) => log.info(s), policyLog: (e) => log.warn({ policy: e }, 'policy decision') });
  try {
    await services.start(agent, plane?.dp, new Map(plane?.host.devices.map((d) => [d.vni, d.mtu]) ?? []));
    live.start();
    bridge = await openStoreBridge(cfg.store ?? { kind: 'gossip' }, agent, (msg, err) => log.warn({ err: String(err) }, msg));
  } catch (e) {
    await bridge?.stop(false).catch(() => undefined);
    live.close();
    await services.stop().catch(() => undefined);
    agent.stop();
    await io.close();
    await plane?.host.close();
    throw e;
  }
  let metricsAt: string | undefined;
  const local = () => ({ listen: `${cfg.listen.ip}:${cfg.listen.port}`, vtep: `${cfg.vtep}:${cfg.vtepPort}`, publicKey: wgPublic, metrics: metricsAt });
  // The push-pull port's refusals (runtime.ts) join the agent's drops, as stream.<reason>.
  const control = await serveControl(cfg.controlSocket, () => {
    const st = agent.status();
    for (const [k, v] of Object.entries(io.drops.snapshot())) st.drops[`stream.${k}`] = v;
    const host = plane?.host;
    return { ...st, peers: withPeerTraffic(st.peers, host?.tunnel), services: services.status(), dataplane: host && dataplaneStatus(host, cfg.networks), local: local(), store: bridge && { kind: 'etcd', counters: bridge.counters, drops: bridge.drops } };
  }, (line) => (line.startsWith('revoke ') ? revokeCommand(agent, line) : controlCommand(live, line)));
  const metrics = cfg.metrics
    ? await serveMetrics(cfg.metrics.listen, createMetrics({ agent, io, host: plane?.host, services, networks: cfg.networks, policy: () => live.filters, store: () => bridge && { counters: { ...bridge.counters }, drops: { ...bridge.drops } } }), log).catch(async (e: unknown) => {
        // Nothing half-started: the port is taken or not ours, so undo what runAgent opened.
        await bridge?.stop(false).catch(() => undefined);
        control.close();
        await services.stop().catch(() => undefined);
        agent.stop();
        await io.close();
        await plane?.host.close();
        throw e;
      })
    : undefined;
  if (metrics && cfg.metrics) metricsAt = `${cfg.metrics.listen.ip}:${metrics.port}`;
  log.info({ listen: `${cfg.listen.ip}:${cfg.listen.port}`, networks: cfg.networks.map((n) => n.name), wireguard: wgPublic ?? null }, 'agent started');
  // Renewal at 2/3 of the certificate's life, trust and certificate files reloaded (pki-run.ts).
  const pkiRuntime = pki && startPkiRuntime(agent, cfg, pki, log);
  if (cfg.seeds.length) {
    const ok = await agent.join(cfg.seeds);
    if (ok) log.info({ seeds: ok }, 'joined');
    else log.warn({ seeds: cfg.seeds.map((a) => `${a.ip}:${a.port}`) }, 'no seed answered yet; retrying in the background');
  }
  /**
   * What SIGHUP does: re-read the PKI trust and certificate files at once (the 1 s poll is the
   * fallback), then load `path`, the file the agent started with, and apply it (all or nothing).
   */
  const reload = async (path: string) => {
    pkiRuntime?.reload('SIGHUP');
    const a = await controlCommand(live, `apply ${path}`);
    if (a?.ok) return a.plan!;
    log.error({ error: a?.error }, 'config not applied (nothing changed)');
    return undefined;
  };
  const stop = async () => {
    pkiRuntime?.stop();
    live.close();
    await bridge?.stop().catch(() => undefined);
    await services.stop();
    await agent.leave(1000);
    control.close();
    await metrics?.close();
    await io.close();
    await plane?.host.close();
  };
  return { agent, services, live, reload, stop, metricsPort: metrics?.port };
}

const USAGE = {
  run: 'agent [run] --config FILE [--host NAME]\n  Run the agent. SIGTERM/SIGINT leave the cluster gracefully, then exit 0. SIGHUP re-reads FILE and applies it (all or nothing, as `apply`).',
  check: 'agent check --config FILE [--host NAME]\n  Validate FILE completely (opens no device or socket); print a one-line summary. Every problem is listed with its path (/networks/0/subnet).',
  plan: 'agent plan --config FILE [--from OLDFILE | --socket PATH] [--host NAME]\n  Print what applying FILE would change against the running agent (its control socket) or OLDFILE: networks, endpoints, services, instances, VIPs, policies; what needs a restart is marked.',
  apply: 'agent apply --config FILE [--socket PATH] [--host NAME]\n  The running agent applies FILE atomically (tables, DNS, VIPs, policy): all of it or, on any problem, nothing. Prints the plan applied.',
  import: 'agent import compose FILE\n  Print a Compose file\'s services, networks, healthchecks and deploy.endpoint_mode as our config (YAML); one warning per ignored key on stderr.',
  schema: 'agent schema\n  Print the config file\'s JSON Schema (schema/agent-config.schema.json).',
  status: 'agent status [--json] [--socket PATH | --config FILE [--host NAME]]\n  Members, endpoints per network (active / owner-dead / tombstoned), services (resolver per network, instances with health, VIPs with backends), WireGuard peers, drops.',
  keygen: 'agent keygen\n  Print a new signing key, cluster key and WireGuard key as YAML to paste into a config.',
  policy: 'agent policy explain --src ADDR --dst ADDR --proto tcp|udp|icmp|N [--port N | --icmp-type N] [--network NAME] [--json] [--socket PATH | --config FILE [--host NAME]]\n  Ask the running agent which rule of its policy decides a new flow (tier, rule id, action) and the groups both addresses are in.',
} as const;
type Command = keyof typeof USAGE;
/** Every command (the PKI ones too), in usage order: the one list the help test walks. */
export const COMMANDS: readonly string[] = [...Object.keys(USAGE), ...Object.keys(PKI_USAGE)];
/** Options each command takes besides --help; anything else is a usage error (exit 2). */
const COMMAND_OPTIONS: Record<Command, readonly string[]> = {
  run: ['config', 'host'], check: ['config', 'host'], status: ['config', 'socket', 'json', 'host'], keygen: [],
  plan: ['config', 'from', 'socket', 'host'], apply: ['config', 'socket', 'host'], import: [], schema: [],
  policy: ['config', 'socket', 'host', 'json', 'network', 'src', 'dst', 'proto', 'port', 'icmp-type'],
};
export const EXIT_CODES = 'Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage (the message names the field).';
const usageAll = () => ['usage:', ...[...Object.values(USAGE), ...Object.values(PKI_USAGE)].map((u) => '  ' + u.replace(/\n/g, '\n  ')), '', 'Options: --config=FILE or -c FILE; --help/-h after any command; --version.', EXIT_CODES].join('\n') + '\n';

function version(): string {
  // src/cli.ts and dist/cli.js both sit one level below the package root.
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/**
 * Failures of the device layer that are really the configuration's, reported against `vtep` (the
 * field that picks the underlay link) instead of options the config does not have: the overlay
 * MTU derived from the VTEP's link is out of range, or no link holds the VTEP address.
 */
function asConfigError(e: unknown, cfg: AgentConfig): unknown {
  const err = e as { code?: string; field?: string; message?: string } | undefined;
  if (e instanceof AgentConfigError || !err) return e;
  if (err.code === 'OVL_ERR_INVALID_CONFIG' && /mtu/i.test(err.field ?? '')) {
    return new AgentConfigError('/vtep', `the underlay link of ${cfg.vtep} is too small to carry the overlay (${err.message}); use a link with a larger MTU`);
  }
  if (err.code === 'OVL_ERR_HOST_UNDERLAY_NOT_FOUND') return new AgentConfigError('/vtep', `no link in this network namespace holds ${cfg.vtep}`);
  return e;
}

export async function main(argv: string[]): Promise<number> {
  // PKI commands (ca, cert, token, join) take their own options: cli-pki.ts.
  if (argv[0] && Object.hasOwn(PKI_USAGE, argv[0])) return pkiMain(argv);
  const usage = (msg: string) => (process.stderr.write(`agent: ${msg} (see agent --help)\n`), 2);
  let values: { config?: string; socket?: string; json?: boolean; help?: boolean; version?: boolean; host?: string; from?: string; network?: string; src?: string; dst?: string; proto?: string; port?: string; 'icmp-type'?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' }, socket: { type: 'string' }, host: { type: 'string' }, from: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' },
        network: { type: 'string' }, src: { type: 'string' }, dst: { type: 'string' }, proto: { type: 'string' }, port: { type: 'string' }, 'icmp-type': { type: 'string' },
      },
    }));
  } catch (e) {
    return usage((e as Error).message);
  }
  const cmd = (positionals[0] ?? 'run') as Command;
  if (!Object.hasOwn(USAGE, cmd)) return usage(`unknown command ${JSON.stringify(positionals[0])}`);
  const maxPositionals = cmd === 'import' ? 3 : cmd === 'policy' ? 2 : 1;
  if (positionals.length > maxPositionals) return usage(`unexpected argument ${JSON.stringify(positionals[maxPositionals])}`);
  if (values.version) {
    process.stdout.write(`agent ${version()}\n`);
    return 0;
  }
  if (values.help) {
    process.stdout.write(positionals.length ? `usage: ${USAGE[cmd]}\n${EXIT_CODES}\n` : usageAll());
    return 0;
  }
  const extra = Object.keys(values).find((k) => !COMMAND_OPTIONS[cmd].includes(k));
  if (extra) return usage(`--${extra} is not an option of \`agent ${cmd}\``);
  try {
    if (cmd === 'keygen') {
      process.stdout.write(await keygen());
      return 0;
    }
    const out = { stdout: (s: string) => process.stdout.write(s), stderr: (s: string) => process.stderr.write(s) };
    if (cmd === 'schema') return schemaCommand(out);
    if (cmd === 'import') return importCommand(positionals[1], positionals[2], out);
    if ((cmd === 'plan' || cmd === 'apply') && !values.config) return usage(`${cmd}: --config FILE required`);
    if (cmd === 'plan') return await planCommand({ config: values.config!, from: values.from, socket: values.socket, host: values.host }, out);
    if (cmd === 'apply') return await applyCommand({ config: values.config!, socket: values.socket, host: values.host }, out);
    if (cmd === 'policy') {
      if (positionals[1] !== 'explain') return usage('policy: the subcommand is explain');
      if (!values.src || !values.dst || !values.proto) return usage('policy explain: --src, --dst and --proto are required');
      if (values.socket && values.config) return usage('policy explain: give --socket or --config, not both');
      const sock = values.socket ?? (values.config ? loadConfig(values.config, { host: values.host }).controlSocket : undefined);
      if (!sock) return usage('policy explain: --socket PATH or --config FILE required');
      const num = (v: string | undefined, name: string) => {
        if (v === undefined) return undefined;
        if (!/^\d{1,5}$/.test(v)) throw new AgentConfigError(`--${name}`, `must be a number, got ${JSON.stringify(v)}`);
        return Number(v);
      };
      const proto = /^\d+$/.test(values.proto) ? Number(values.proto) : values.proto;
      const query = { network: values.network, src: values.src, dst: values.dst, proto: proto as 'tcp', port: num(values.port, 'port'), icmpType: num(values['icmp-type'], 'icmp-type') };
      return await explainCommand({ socket: sock, json: values.json, query }, out);
    }
    if (cmd === 'status') {
      if (values.socket && values.config) return usage('status: give --socket or --config, not both');
      const sock = values.socket ?? (values.config ? loadConfig(values.config, { host: values.host }).controlSocket : undefined);
      if (!sock) return usage('status: --socket PATH or --config FILE required');
      let s: AgentStatus;
      try {
        s = (await queryControl(sock)) as AgentStatus;
      } catch (e) {
        process.stderr.write(`agent: cannot reach the agent at ${sock}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
        return 1;
      }
      process.stdout.write(values.json ? JSON.stringify(describeStatus(s), null, 2) + '\n' : formatStatus(s));
      return 0;
    }
    if (!values.config) return usage(`${cmd}: --config FILE required`);
    if (cmd === 'check') {
      // A cluster file on a machine that is none of its hosts: every host's part, one line each.
      for (const host of hostsToCheck(values.config, values.host)) process.stdout.write(`ok ${summarizeConfig(loadConfig(values.config, { host }))}\n`);
      return 0;
    }
    const cfg = loadConfig(values.config, { host: values.host });
    let running: Awaited<ReturnType<typeof runAgent>>;
    try {
      running = await runAgent(cfg);
    } catch (e) {
      throw asConfigError(e, cfg);
    }
    const path = values.config;
    const onHup = () => void running.reload(path).catch(() => undefined);
    process.on('SIGHUP', onHup);
    await new Promise<void>((resolve) => {
      const onSig = () => resolve();
      process.once('SIGTERM', onSig);
      process.once('SIGINT', onSig);
    });
    process.off('SIGHUP', onHup);
    await running.stop();
    return 0;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    process.stderr.write(`agent: ${err.message ?? String(e)}\n`);
    return err.code === 'OVL_ERR_INVALID_CONFIG' ? 2 : 1;
  }
}
