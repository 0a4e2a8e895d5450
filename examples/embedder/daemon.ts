/**
 * A small daemon that embeds the overlay: one host of an encrypted VXLAN overlay between a fixed
 * set of peers, with no agent and no gossip. It is what a product that ships its own control
 * plane would write: @overlay/host assembles the socket, the WireGuard transport (@overlay/crypto)
 * and a TAP in front of the dataplane (@overlay/dataplane); the daemon only feeds it its peers.
 *
 *   node --import tsx daemon.ts config.json       (as root or with CAP_NET_ADMIN; see README.md)
 *
 * Prints one JSON line `{"event":"ready",...}` once the overlay is up, a stats line on SIGUSR1,
 * and on SIGTERM/SIGINT closes everything, prints the final stats line and exits 0. A bad config
 * exits 2 with the field named; any other failure exits 1.
 */
import { readFileSync } from 'node:fs';
import { openHost, type Host } from '@overlay/host';
import { generatePrivateKey, publicKeyOf } from '@overlay/crypto';

interface Peer {
  /** The peer's WireGuard public key. */
  publicKey: string;
  /** Its underlay (VTEP) address. */
  vtep: string;
  /** MAC and overlay IP of its TAP. */
  mac: string;
  ip: string;
}

interface Config {
  underlay: string;
  /** WireGuard private key (base64); absent: a fresh one (its public key is printed). */
  privateKey?: string;
  network: { vni: number; tap: string; mac: string; address: string; peers: Peer[] };
}

function fail(field: string, why: string): never {
  throw Object.assign(new Error(`${field}: ${why}`), { code: 'EMBEDDER_BAD_CONFIG' });
}

function readConfig(path: string | undefined): Config {
  if (!path) fail('argv', 'usage: daemon.ts CONFIG.json');
  let c: Config;
  try {
    c = JSON.parse(readFileSync(path, 'utf8')) as Config;
  } catch (e) {
    fail(path, (e as Error).message);
  }
  if (typeof c.underlay !== 'string') fail('underlay', 'must be an address');
  if (!c.network || !Array.isArray(c.network.peers)) fail('network.peers', 'must be a list');
  return c;
}

function line(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function stats(host: Host, event: string): void {
  const s = host.stats();
  const peers = host.tunnel?.peers().map((p) => ({ publicKey: p.publicKey, up: p.up, rxBytes: p.rxBytes, txBytes: p.txBytes })) ?? [];
  const drops = Object.fromEntries(Object.entries(s.dataplane.drops).filter(([, v]) => v > 0));
  line({ event, sent: s.dataplane.inside.sent, delivered: s.dataplane.outside.delivered, drops, peers });
}

async function main(): Promise<number> {
  let cfg: Config;
  try {
    cfg = readConfig(process.argv[2]);
  } catch (e) {
    process.stderr.write(`embedder: ${(e as Error).message}\n`);
    return 2;
  }
  const privateKey = cfg.privateKey ?? generatePrivateKey();
  const n = cfg.network;
  let host: Host;
  try {
    host = await openHost({
      underlay: { address: cfg.underlay },
      wireguard: { privateKey, peers: n.peers.map((p) => ({ publicKey: p.publicKey, endpoint: p.vtep })) },
      networks: [{
        vni: n.vni, tap: n.tap, mac: n.mac, addresses: [n.address],
        fdb: n.peers.map((p) => ({ mac: p.mac, vtep: p.vtep })),          // inner MAC → the peer's VTEP
        neighbours: n.peers.map((p) => ({ ip: p.ip, mac: p.mac })),      // ARP answered locally
        flood: n.peers.map((p) => p.vtep),                                 // broadcast goes to every peer
      }],
    });
  } catch (e) {
    const err = e as { code?: string; field?: string; message: string };
    process.stderr.write(`embedder: ${err.field ? `${err.field}: ` : ''}${err.message}\n`);
    return err.code === 'OVL_ERR_INVALID_CONFIG' ? 2 : 1;
  }
  line({ event: 'ready', publicKey: publicKeyOf(privateKey), tap: n.tap, mtu: host.devices[0].mtu });
  process.on('SIGUSR1', () => stats(host, 'stats'));
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  stats(host, 'stopped');
  await host.close();
  return 0;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`embedder: ${(e as Error).message}\n`);
  process.exit(1);
});
