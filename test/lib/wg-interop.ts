/**
 * A wireguard-go host and our L3 peer on a two-host testbed, plus traffic helpers (ping, a
 * TCP transfer checked by SHA-256, tcpdump) for the interop tests.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { generatePrivateKey, publicKeyOf } from '@overlay/crypto';
import { exec, waitForLine, type TestHost, type Testbed } from './testbed.js';
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

/** ping; returns packets received (never throws on loss). */
export async function ping(host: TestHost, dst: string, count: number, interval = 0.2): Promise<{ sent: number; received: number }> {
  const r = await host.run('ping', ['-n', '-q', '-c', String(count), '-i', String(interval), '-W', '2', dst], { timeoutMs: 30_000 + count * interval * 1000 * 2 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0 };
}

const RECEIVER = `
const net = require('net'), c = require('crypto');
const h = c.createHash('sha256'); let n = 0;
const s = net.createServer((so) => {
  so.on('data', (d) => { h.update(d); n += d.length; });
  so.on('end', () => { console.log('DONE ' + n + ' ' + h.digest('hex')); s.close(); });
}).listen(Number(process.argv[2]), process.argv[1], () => console.log('LISTEN'));
setTimeout(() => { console.log('TIMEOUT ' + n); process.exit(2); }, 120000).unref();
`;

const SENDER = `
const net = require('net'), c = require('crypto');
const mb = Number(process.argv[3]); const marker = process.argv[4] || '';
const chunk = c.randomBytes(1 << 20); if (marker) for (let i = 0; i + marker.length < chunk.length; i += 4096) chunk.write(marker, i);
const h = c.createHash('sha256');
const so = net.connect(Number(process.argv[2]), process.argv[1], async () => {
  for (let i = 0; i < mb; i++) { h.update(chunk); if (!so.write(chunk)) await new Promise((r) => so.once('drain', r)); }
  so.end(() => console.log('SENT ' + h.digest('hex')));
});
so.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

/** Sends `mb` MiB over TCP from `from` to `to`'s `addr`; resolves with both sides' digests. */
export async function tcpTransfer(from: TestHost, to: TestHost, addr: string, mb: number, marker = ''): Promise<{ sent: string; received: string; bytes: number; ms: number }> {
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const rx = to.spawn('node', ['-e', RECEIVER, addr, port]);
  try {
    await waitForLine(rx, /^LISTEN/, 10_000);
    const t0 = Date.now();
    const done = waitForLine(rx, /^(DONE|TIMEOUT)/, 150_000);
    const tx = from.spawn('node', ['-e', SENDER, addr, port, String(mb), marker]);
    const sentLine = await waitForLine(tx, /^SENT/, 150_000);
    const doneLine = await done;
    const [, bytes, digest] = doneLine.split(' ');
    return { sent: sentLine.split(' ')[1], received: digest ?? '', bytes: Number(bytes), ms: Date.now() - t0 };
  } finally {
    rx.kill('SIGKILL');
  }
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
