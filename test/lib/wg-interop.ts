/**
 * A wireguard-go host and our L3 peer on a two-host testbed, and a raw tcpdump capture for
 * the interop tests (ping and TCP transfers: transfer.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { generatePrivateKey, publicKeyOf } from '@overlay/crypto';
import { exec, type TestHost, type Testbed } from './testbed.js';
import { startOurPeer, startWireguardGo, type OurPeer } from './wg-go.js';
import type { ChildProcess } from 'node:child_process';

export const THEIR_INNER = '198.19.0.1';
export const OUR_INNER = '198.19.0.2';
export const PORT = 51820;

export interface Pair {
  them: TestHost;
  us: TestHost;
  iface: string;
  tun: string;
  wgGo: ChildProcess;
  ours: OurPeer;
  close(): Promise<void>;
}

export async function startPair(tb: Testbed, o: { psk?: boolean; clockSpeed?: number; persistentKeepalive?: number }): Promise<Pair> {
  const [them, us] = tb.hosts;
  const suffix = randomBytes(3).toString('hex');
  const iface = `wg${suffix}`;
  const tun = `wt${suffix}`;
  const theirKey = (await exec('wg', ['genkey'])).trim();
  const ourKey = generatePrivateKey();
  const psk = o.psk ? (await exec('wg', ['genpsk'])).trim() : undefined;
  const wgGo = await startWireguardGo(them, {
    iface,
    privateKey: theirKey,
    port: PORT,
    address: `${THEIR_INNER}/24`,
    peer: { publicKey: publicKeyOf(ourKey), allowedIPs: `${OUR_INNER}/32`, endpoint: `${us.underlay}:${PORT}`, presharedKey: psk, persistentKeepalive: o.persistentKeepalive },
  });
  const ours = await startOurPeer(us, {
    privateKey: ourKey,
    listenAddress: us.underlay,
    port: PORT,
    tun,
    address: `${OUR_INNER}/24`,
    clockSpeed: o.clockSpeed,
    peers: [{ publicKey: publicKeyOf(theirKey), presharedKey: psk, endpoint: { address: them.underlay, port: PORT }, allowedIPs: [`${THEIR_INNER}/32`] }],
  });
  return {
    them, us, iface, tun, wgGo, ours,
    async close() {
      await ours.stop();
      wgGo.kill('SIGTERM');
      await new Promise((r) => (wgGo.exitCode !== null ? r(null) : wgGo.once('exit', r)));
    },
  };
}

/** Runs tcpdump on a host's interface into a file while `fn` runs; returns the capture bytes. */
export async function capture(host: TestHost, iface: string, filter: string[], fn: () => Promise<void>): Promise<Buffer> {
  const file = `/tmp/wgcap-${process.pid}-${randomBytes(3).toString('hex')}.pcap`;
  const td = host.spawn('tcpdump', ['-i', iface, '-n', '-U', '-s', '0', '-w', file, ...filter]);
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
      td.stderr!.on('data', (d: Buffer) => {
        if (/listening on/.test(d.toString())) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    await fn();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    td.kill('SIGINT');
    await new Promise((r) => (td.exitCode !== null ? r(null) : td.once('exit', r)));
  }
  const bytes = readFileSync(file);
  rmSync(file, { force: true });
  return bytes;
}
