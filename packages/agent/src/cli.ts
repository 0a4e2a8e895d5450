/**
 * `agent --config FILE`   run the agent (SIGTERM/SIGINT: graceful leave, then exit 0)
 * `agent status [--json] [--socket PATH | --config FILE]`   members, endpoints, peers, drops
 * `agent keygen`          print a new signing key, cluster key and WireGuard key pair (YAML)
 *
 * Exit codes: 0 ok, 2 bad configuration or usage (message names the field), 1 runtime failure.
 */
import nacl from 'tweetnacl';
import { randomBytes } from 'node:crypto';
import { Agent } from './agent.js';
import { loadConfig, type AgentConfig } from './config.js';
import { realClock } from './env.js';
import { Keyring, PlainSealer } from './keyring.js';
import { PRESETS } from './presets.js';
import { createRealIo, queryControl, serveControl } from './runtime.js';
import type { AgentStatus } from './agent.js';

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

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
    lines.push(`wireguard:`, `  privateKey: ${priv}`, `  # public: ${c.publicKeyOf(priv)}`, `  port: 51820`);
  } catch {
    // crypto package unavailable: no WireGuard key
  }
  return lines.join('\n') + '\n';
}

export function formatStatus(s: AgentStatus): string {
  const out: string[] = [`node ${s.name}  incarnation ${s.incarnation}  health ${s.awareness}  digest ${s.digest.slice(0, 16)}`, '', 'MEMBERS'];
  for (const m of s.members) out.push(`  ${m.name.padEnd(20)} ${m.state.padEnd(8)} ${m.address.padEnd(24)} inc ${m.incarnation}  vtep ${m.vtep}`);
  for (const [net, eps] of Object.entries(s.networks)) {
    out.push('', `NETWORK ${net}`);
    for (const e of eps) out.push(`  ${e.id.padEnd(16)} ${e.mac} ${(e.ipv4 ?? '').padEnd(15)} ${(e.ipv6 ?? '').padEnd(20)} owner ${e.owner} v${e.version}${e.deleted ? ' (deleted)' : ''}`);
  }
  if (s.peers) {
    out.push('', 'PEERS');
    for (const p of s.peers) out.push(`  ${p.publicKey} ${p.endpoint ?? '-'} ${p.up ? 'up' : 'down'} handshake ${p.handshakeAgeMs === null ? 'never' : `${Math.round(p.handshakeAgeMs / 1000)}s ago`}`);
  }
  out.push('', 'DROPS');
  for (const [k, v] of Object.entries(s.drops)) out.push(`  ${k} ${v}`);
  return out.join('\n') + '\n';
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
  type DataplaneFields = { learning?: boolean; unknownUnicast?: 'flood' | 'drop'; arpSuppression?: boolean; ageingMs?: number };
  const networks = cfg.networks.flatMap((n) => {
    if (!n.device) return [];
    const o = n as typeof n & DataplaneFields;
    const prefix4 = n.subnet && !n.subnet.includes(':') ? n.subnet.split('/')[1] : '32';
    const prefix6 = n.subnet && n.subnet.includes(':') ? n.subnet.split('/')[1] : '128';
    const mine = n.endpoints.filter((e) => e.device === n.device);
    const addresses = mine.flatMap((e) => [...(e.ipv4Text ? [`${e.ipv4Text}/${prefix4}`] : []), ...(e.ipv6Text ? [`${e.ipv6Text}/${prefix6}`] : [])]);
    return [{ vni: n.vni, tap: n.device, mac: mine.at(-1)?.macText, addresses, learning: o.learning, unknownUnicast: o.unknownUnicast, arpSuppression: o.arpSuppression, ageingMs: o.ageingMs }];
  });
  const host = await openHost({ underlay: { address: cfg.vtep, port: cfg.vtepPort }, wireguard: cfg.wireguard && { privateKey: cfg.wireguard.privateKey }, networks });
  return { dp: host.dataplane, wg: host.tunnel, host };
}

/** Build and start an agent from a validated config; resolves once gossip is listening. */
export async function runAgent(cfg: AgentConfig, log: (s: string) => void = (s) => process.stderr.write(s + '\n')) {
  const plane = await openDataplane(cfg);
  const io = createRealIo(cfg.listen);
  let wgPublic: string | undefined;
  if (cfg.wireguard) wgPublic = (await import('@overlay/crypto')).publicKeyOf(cfg.wireguard.privateKey);
  const agent = new Agent({
    dataplane: plane?.dp,
    tunnel: plane?.wg,
    // The tunnel rides the VXLAN socket (secure transport), so peers are reached on vtepPort.
    wireguard: wgPublic ? { publicKey: wgPublic, port: cfg.vtepPort } : undefined,
    name: cfg.name,
    advertise: cfg.advertise,
    vtep: cfg.vtep,
    vtepPort: cfg.vtepPort,
    signingKey: cfg.signingKey,
    sealer: cfg.clusterKeys.length ? new Keyring(cfg.clusterKeys) : new PlainSealer(),
    config: PRESETS[cfg.profile],
    clock: realClock,
    packets: io,
    streams: io,
    networks: cfg.networks.map((n) => ({ name: n.name, vni: n.vni })),
    events: {
      onJoin: (m) => log(`member ${m.name} joined (${m.ip}:${m.port})`),
      onLeave: (m) => log(`member ${m.name} ${m.state}`),
    },
  });
  await io.bind(agent);
  agent.start();
  for (const n of cfg.networks) for (const e of n.endpoints) agent.publish({ name: n.name, vni: n.vni }, { id: e.id, mac: e.mac, ipv4: e.ipv4, ipv6: e.ipv6 });
  const control = await serveControl(cfg.controlSocket, () => agent.status());
  if (cfg.seeds.length) {
    const ok = await agent.join(cfg.seeds);
    log(ok ? `joined through ${ok} seed(s)` : 'no seed answered yet; retrying in the background');
  }
  const stop = async () => {
    await agent.leave(1000);
    control.close();
    await io.close();
    await plane?.host.close();
  };
  return { agent, stop };
}

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  try {
    if (cmd === 'keygen') {
      process.stdout.write(await keygen());
      return 0;
    }
    if (cmd === 'status') {
      const sock = arg(argv, '--socket') ?? (arg(argv, '--config') ? loadConfig(arg(argv, '--config')!).controlSocket : undefined);
      if (!sock) {
        process.stderr.write('agent status: --socket PATH or --config FILE required\n');
        return 2;
      }
      const s = (await queryControl(sock)) as AgentStatus;
      process.stdout.write(argv.includes('--json') ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
      return 0;
    }
    const file = arg(argv, '--config');
    if (!file) {
      process.stderr.write('usage: agent --config FILE | agent status [--json] [--socket PATH|--config FILE] | agent keygen\n');
      return 2;
    }
    const cfg = loadConfig(file);
    const { stop } = await runAgent(cfg);
    await new Promise<void>((resolve) => {
      const onSig = () => resolve();
      process.once('SIGTERM', onSig);
      process.once('SIGINT', onSig);
    });
    await stop();
    return 0;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    process.stderr.write(`agent: ${err.message ?? String(e)}\n`);
    return err.code === 'OVL_ERR_INVALID_CONFIG' ? 2 : 1;
  }
}
