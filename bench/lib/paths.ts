/**
 * The paths the throughput benchmark compares. Each sets itself up between testbed hosts 1 and 2,
 * names the overlay address to measure against, lists our processes (for CPU and memory), and
 * tears itself down. Only one path is up at a time so they never share CPU.
 *
 * Our paths run the assembly the agent ships: openHost (@overlay/host) in each host namespace,
 * behind the stdio runner (test/lib/vtep-host.ts, which assembles nothing), with openHost's
 * defaults (OUR_HOST): the configurations set only addresses, static forwarding, the encryption
 * keys and, for the before-figure, the TAP offloads.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_BATCH, DEFAULT_POOL_SLOTS, DEFAULT_SOCKET_BUFFER, DEFAULT_TX_QUEUE_LEN, openHost } from '@overlay/host';
import type { Policy } from '@overlay/services';
import type { Testbed, TestHost } from '../../test/lib/testbed.js';
import { meshConfig, startVtep, type HostConfig, type VtepProcess } from '../../test/lib/vtep.js';
import { startWireguardGo } from '../../test/lib/wg-go.js';

export interface PathUp {
  /** Address of host 2 on this path. */
  dst: string;
  /** PIDs of our own processes on the path (CPU per gigabit, RSS). */
  pids: number[];
  down(): Promise<void>;
}

export interface PathSpec {
  id: string;
  label: string;
  optional?: boolean;
  up(tb: Testbed): Promise<PathUp>;
}

function wgKeys(): { priv: string; pub: string } {
  const priv = execFileSync('wg', ['genkey']).toString().trim();
  const pub = execFileSync('wg', ['pubkey'], { input: priv + '\n' }).toString().trim();
  return { priv, pub };
}

const pair = (tb: Testbed): [TestHost, TestHost] => [tb.hosts[0], tb.hosts[1]];

export const underlay: PathSpec = {
  id: 'underlay',
  label: 'veth underlay',
  async up(tb) {
    return { dst: tb.hosts[1].underlay, pids: [], down: async () => {} };
  },
};

export const kernelVxlan: PathSpec = {
  id: 'kernel-vxlan',
  label: 'Linux kernel VXLAN',
  async up(tb) {
    const hs = pair(tb);
    for (const h of hs) {
      const peer = hs.find((x) => x !== h)!;
      const batch = [
        `link add kvx0 type vxlan id 4242 local ${h.underlay} dstport 4789 dev ul0 nolearning`,
        `link set kvx0 mtu ${tb.mtu - 50} up`,
        `addr add 198.19.42.${h.index}/24 dev kvx0`,
      ];
      await h.exec('ip', ['-batch', '-'], { input: batch.join('\n') + '\n' });
      await h.exec('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', 'kvx0', 'dst', peer.underlay]);
    }
    return {
      dst: '198.19.42.2',
      pids: [],
      down: async () => {
        for (const h of hs) await h.run('ip', ['link', 'del', 'kvx0']);
      },
    };
  },
};

/** What our hosts run, recorded with the results: openHost with its defaults. */
export const OUR_HOST = {
  assembly: `${openHost.name} (@overlay/host)`,
  batchSize: DEFAULT_BATCH,
  poolSlots: DEFAULT_POOL_SLOTS,
  socketBufferBytes: DEFAULT_SOCKET_BUFFER,
  udpGso: true,
  udpGro: true,
  tapTso: true,
  tapGro: true,
  tapTxQueueLen: DEFAULT_TX_QUEUE_LEN,
} as const;

/** Start openHost on each host through the runner (all or none); host 2's overlay address is the target. */
async function startVteps(hs: TestHost[], cfgs: HostConfig[]): Promise<PathUp> {
  const procs: VtepProcess[] = [];
  try {
    for (let i = 0; i < hs.length; i++) procs.push(await startVtep(hs[i], cfgs[i]));
  } catch (e) {
    for (const p of procs) await p.stop();
    throw e;
  }
  return {
    dst: '198.19.0.2',
    pids: procs.map((p) => p.child.pid!),
    down: async () => {
      for (const p of procs) await p.stop();
    },
  };
}

/** Our plain overlay; `offloads: false` is the before-figure for the TAP TSO/GRO change. */
function ours(id: string, label: string, offloads: boolean, workers?: number): PathSpec {
  return {
    id,
    label,
    async up(tb) {
      const hs = pair(tb);
      const cfgs = meshConfig(hs, [100]).map((c) => ({ ...c, tso: offloads, gro: offloads, workers }));
      return startVteps(hs, cfgs);
    },
  };
}

export const ourPlain = ours('ours-plain', 'ours: plain VXLAN', true);
export const ourPlainNoOffload = ours('ours-plain-no-offload', 'ours: plain, no TAP offloads', false);
/** openHost with `workers: 2` (docs/multicore.md): a TAP queue, pipeline and socket per worker thread. */
export const ourPlainWorkers = ours('ours-plain-2-workers', 'ours: plain, 2 workers', true, 2);

export const wireguardGo: PathSpec = {
  id: 'wireguard-go',
  label: "Debian's wireguard-go",
  async up(tb) {
    const hs = pair(tb);
    const keys = hs.map(() => wgKeys());
    const children: ChildProcess[] = [];
    for (let i = 0; i < 2; i++) {
      const j = 1 - i;
      children.push(
        await startWireguardGo(hs[i], {
          // wireguard-go's UAPI socket lives in /var/run/wireguard, shared by all namespaces:
          // each instance needs its own interface name.
          iface: `wgb${hs[i].index}`,
          privateKey: keys[i].priv,
          port: 51820,
          address: `198.19.61.${hs[i].index}/24`,
          peer: { publicKey: keys[j].pub, allowedIPs: `198.19.61.${hs[j].index}/32`, endpoint: `${hs[j].underlay}:51820` },
        }),
      );
    }
    return {
      dst: '198.19.61.2',
      pids: [],
      down: async () => {
        for (const c of children) c.kill('SIGTERM');
        for (const h of hs) await h.run('ip', ['link', 'del', `wgb${h.index}`]);
      },
    };
  },
};

export const nebula: PathSpec = {
  id: 'nebula',
  label: "Debian's nebula",
  optional: true,
  async up(tb) {
    const hs = pair(tb);
    const dir = execFileSync('mktemp', ['-d']).toString().trim();
    const sh = (args: string[]) => execFileSync('nebula-cert', args, { cwd: dir, stdio: 'pipe' });
    sh(['ca', '-name', 'bench', '-out-crt', 'ca.crt', '-out-key', 'ca.key']);
    const children: ChildProcess[] = [];
    for (const h of hs) {
      sh(['sign', '-name', `h${h.index}`, '-ip', `198.19.62.${h.index}/24`, '-out-crt', `h${h.index}.crt`, '-out-key', `h${h.index}.key`]);
      const peer = hs.find((x) => x !== h)!;
      const yaml = [
        'pki:',
        `  ca: ${dir}/ca.crt`,
        `  cert: ${dir}/h${h.index}.crt`,
        `  key: ${dir}/h${h.index}.key`,
        'static_host_map:',
        `  "198.19.62.${peer.index}": ["${peer.underlay}:4242"]`,
        'lighthouse:',
        '  am_lighthouse: false',
        'listen:',
        '  host: 0.0.0.0',
        '  port: 4242',
        'tun:',
        '  dev: neb0',
        `  mtu: ${tb.mtu - 80}`,
        'logging:',
        '  level: warning',
        'firewall:',
        '  outbound: [{port: any, proto: any, host: any}]',
        '  inbound: [{port: any, proto: any, host: any}]',
      ].join('\n');
      execFileSync('sh', ['-c', `cat > ${dir}/h${h.index}.yml`], { input: yaml });
      children.push(h.spawn('nebula', ['-config', `${dir}/h${h.index}.yml`]));
    }
    return {
      dst: '198.19.62.2',
      pids: [],
      down: async () => {
        for (const c of children) c.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 300));
        execFileSync('rm', ['-rf', dir]);
      },
    };
  },
};

/** Encrypted overlay: our dataplane over the WireGuard-protocol secure transport; with `policy`, a policy filter stage on each host. */
function encrypted(id: string, label: string, policy?: Policy): PathSpec {
  return {
    id,
    label,
    async up(tb) {
      const hs = pair(tb);
      const keys = hs.map(() => wgKeys());
      // The policy goes by file: 10 000 rules are too long for the runner's argument.
      const dir = policy && mkdtempSync(join(tmpdir(), 'bench-policy-'));
      const policyFile = dir && join(dir, 'policy.json');
      if (policyFile) writeFileSync(policyFile, JSON.stringify(policy));
      const cfgs = meshConfig(hs, [100]).map((c, i) => ({
        ...c,
        policyFile,
        encryption: { privateKey: keys[i].priv, peers: hs.filter((_, j) => j !== i).map((h) => ({ publicKey: keys[hs.indexOf(h)].pub, endpoint: h.underlay })) },
      }));
      try {
        const up = await startVteps(hs, cfgs);
        return {
          ...up,
          down: async () => {
            await up.down();
            if (dir) rmSync(dir, { recursive: true, force: true });
          },
        };
      } catch (e) {
        if (dir) rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    },
  };
}

/**
 * The policy the encrypted+policy path enforces: default deny, 10 000 rules — 9 999 that do not
 * match the bench's flows (deny by port, allow by group and by /32 source), then an allow of the
 * overlay /16 (TCP, UDP, ICMP) — so iperf3's flows are judged, tracked and pass both ends.
 */
export function benchPolicy(): Policy {
  const admin = Array.from({ length: 100 }, (_, i) => ({ id: `a${i}`, action: 'deny' as const, proto: 'tcp' as const, ports: [String(20 + i)] }));
  const network = Array.from({ length: 9_899 }, (_, i) =>
    i % 2 === 0
      ? { id: `n${i}`, action: 'allow' as const, from: { groups: [`g${i % 200}`] }, to: { groups: [`g${(i * 7 + 3) % 200}`] }, proto: 'tcp' as const, ports: [String(1000 + i)] }
      : { id: `n${i}`, action: 'allow' as const, from: { cidrs: [`198.18.${(i >> 8) & 255}.${i & 255}/32`] }, proto: 'udp' as const },
  );
  const service = [{ id: 'overlay', action: 'allow' as const, from: { cidrs: ['198.19.0.0/16'] }, to: { cidrs: ['198.19.0.0/16'] } }];
  return { defaultAction: 'deny', tiers: { admin, network, service } };
}

export const ourEncrypted = encrypted('ours-encrypted', 'ours: encrypted VXLAN');
export const ourEncryptedPolicy = encrypted('ours-encrypted-policy', 'ours: encrypted + policy (10 000 rules)', benchPolicy());
