import { afterAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { LOCAL, SimCluster, main, queryControl, serveControl, validateConfig, type AgentStatus } from '@overlay/agent';
import { describeStatus, endpointState, formatHostPort, formatStatus } from '../src/status.js';

const MAIN = ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts'];

function agent(args: string[], prefix: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...pre] = [...prefix, 'node'];
  return new Promise((resolve) => {
    execFile(cmd, [...pre, ...MAIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** main() in this process with stdout/stderr captured: the exit code the bin exits with, without a slow spawn. */
async function inProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = process.stdout.write;
  const err = process.stderr.write;
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'agent-cli-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const key = (n: number, fill: number) => Buffer.alloc(n, fill).toString('base64');
/** A valid config (YAML text) whose control socket, devices and addresses nothing else uses. */
function configText(dir: string, extra: { network?: string; root?: string } = {}): string {
  return [
    'name: cli-test',
    'listen: 198.18.0.1:7946',
    'seeds: [198.18.0.2:7946, "[2001:db8::2]:7946"]',
    `signingKey: ${key(64, 1)}`,
    `encryption: { clusterKeys: [${key(32, 2)}] }`,
    `wireguard: { privateKey: ${key(32, 3)} }`,
    `controlSocket: ${join(dir, 'ctl.sock')}`,
    ...(extra.root ? [extra.root] : []),
    'networks:',
    '  - name: blue',
    '    vni: 100',
    '    subnet: 198.19.0.0/24',
    '    device: h5chk0',
    ...(extra.network ? [`    ${extra.network}`] : []),
    '    endpoints:',
    '      - { id: e1, device: h5chk0, mac: "02:00:00:00:00:01", ipv4: 198.19.0.1 }',
    '',
  ].join('\n');
}

const linkExists = (name: string) => {
  try {
    execFileSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** A status as an agent with one dead, one alive member and an IPv6 tunnel peer reports it. */
function sampleStatus(): AgentStatus {
  return {
    name: 'n0', incarnation: 1, awareness: 0, digest: '0123456789abcdef0123',
    members: [
      { name: 'n0', address: '198.18.0.1:7946', state: 'alive', incarnation: 1, vtep: '198.18.0.1' },
      { name: 'n1', address: '[2001:db8::2]:7946', state: 'dead', incarnation: 3, vtep: '2001:db8::2' },
      { name: 'n2', address: '198.18.0.3:7946', state: 'suspect', incarnation: 2, vtep: '198.18.0.3' },
    ],
    networks: {
      blue: [
        { id: 'a', mac: '02:00:00:00:00:01', ipv4: '198.19.0.1', owner: 'n0', vtep: '198.18.0.1', version: 1, deleted: false },
        { id: 'b', mac: '02:00:00:00:00:02', ipv6: '2001:db8::b', owner: 'n1', vtep: '2001:db8::2', version: 4, deleted: false },
        { id: 'c', mac: '02:00:00:00:00:03', owner: 'n2', vtep: '198.18.0.3', version: 2, deleted: true },
        { id: 'd', mac: '02:00:00:00:00:04', owner: 'n2', vtep: '198.18.0.3', version: 2, deleted: false },
        { id: 'e', mac: '02:00:00:00:00:05', owner: 'gone', vtep: '198.18.0.9', version: 2, deleted: false },
      ],
    },
    counters: {},
    drops: { auth_failed: 2 },
    peers: [
      { publicKey: 'PK1', endpoint: '2001:db8::2:4789', up: true, handshakeAgeMs: 3000 },
      { publicKey: 'PK2', endpoint: '198.18.0.3:4789', up: false, handshakeAgeMs: null },
    ],
  };
}

describe('agent CLI', () => {
  it('keygen prints keys that make a valid config (no wireguard.port: the tunnel uses vtepPort)', async () => {
    const r = await agent(['keygen']);
    expect(r.code).toBe(0);
    const keys = parse(r.stdout) as Record<string, unknown>;
    const cfg = validateConfig({ name: 'n1', listen: '198.18.0.1:7946', ...keys });
    expect(cfg.signingKey.length).toBe(64);
    expect(cfg.clusterKeys).toHaveLength(1);
    expect(cfg.wireguard?.privateKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  }, 60_000);

  it('refuses a bad config with exit code 2 and the field name, starting nothing', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'name: n1\nlisten: 198.18.0.1:7946\nsigningKey: AAAA\n');
    const r = await agent(['--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('signingKey');
    const r2 = await agent(['--config', join(dir, 'missing.yaml')]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('--config');
    const r3 = await agent(['status']);
    expect(r3.code).toBe(2);
  }, 60_000);

  it('`agent check` validates without opening devices or sockets: exit 0 and one line, or exit 2 naming the field', async () => {
    const dir = tempDir();
    const good = join(dir, 'good.yaml');
    writeFileSync(good, configText(dir, { network: 'learning: true' }));
    const r = await agent(['check', '--config', good]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toHaveLength(2); // one line and its newline
    expect(r.stdout).toMatch(/^ok cli-test: advertise 198\.18\.0\.1:7946, vtep 198\.18\.0\.1:4789, 2 seeds, 1 cluster key, wireguard on, 1 network \(blue\/100 on h5chk0 1 endpoint\)\n$/);
    expect(existsSync(join(dir, 'ctl.sock'))).toBe(false);
    expect(linkExists('h5chk0')).toBe(false);
    // The same through --config=FILE.
    expect((await agent(['check', `--config=${good}`])).code).toBe(0);

    const cases: [string, string][] = [
      [configText(dir, { network: 'subnett: 198.19.0.0/24' }), '/networks/0/subnett'],
      [configText(dir).replace('ipv4: 198.19.0.1 }', 'ipv44: 198.19.0.1 }'), '/networks/0/endpoints/0/ipv44'],
      [configText(dir).replace('encryption: { clusterKeys', 'encryption: { insecur: true, clusterKeys'), '/encryption/insecur'],
      [configText(dir).replace(`wireguard: { privateKey: ${key(32, 3)} }`, `wireguard: { privateKey: ${key(32, 3)}, prot: 51820 }`), '/wireguard/prot'],
      [configText(dir, { root: 'vtep: fe80::1%eth0' }), '/vtep'],
      [configText(dir, { network: 'unknownUnicast: sometimes' }), '/networks/0/unknownUnicast'],
      ['name: [unclosed\n', '(yaml)'],
    ];
    for (const [text, field] of cases) {
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, text);
      const b = await inProcess(['check', '--config', bad]);
      expect({ field, code: b.code, stderr: b.stderr.startsWith(`agent: ${field}: `) }).toEqual({ field, code: 2, stderr: true });
      expect(b.stdout).toBe('');
    }
  }, 120_000);

  it('every command answers --help with exit 0, --version prints the package version, bad usage exits 2', async () => {
    const version = (JSON.parse(readFileSync('packages/agent/package.json', 'utf8')) as { version: string }).version;
    // The bin itself once; every command's help through main().
    expect((await agent(['--help'])).code).toBe(0);
    for (const args of [['--help'], ['-h'], ['run', '--help'], ['check', '--help'], ['status', '-h'], ['keygen', '--help']]) {
      const r = await inProcess(args);
      expect({ args, code: r.code }).toEqual({ args, code: 0 });
      expect(r.stdout).toMatch(/usage/);
      expect(r.stdout).toMatch(/Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage/);
    }
    const v = await agent(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toBe(`agent ${version}\n`);
    for (const args of [[], ['frobnicate'], ['--bogus'], ['keygen', '--json'], ['check'], ['status', 'extra', '--socket', '/x'], ['status', '--socket', '/x', '--config', '/y']]) {
      const r = await inProcess(args);
      expect({ args, code: r.code, hint: r.stderr.includes('see agent --help') }).toEqual({ args, code: 2, hint: true });
    }
  }, 120_000);

  it('serves status on a control socket only its owner can open, whatever the umask', async () => {
    const dir = tempDir();
    const path = join(dir, 'ctl.sock');
    const old = process.umask(0);
    try {
      const srv = await serveControl(path, () => ({ name: 'n1' }));
      try {
        expect(statSync(path).mode & 0o777).toBe(0o600);
        expect(await queryControl(path)).toEqual({ name: 'n1' });
      } finally {
        srv.close();
      }
    } finally {
      process.umask(old);
    }
  });

  it('`agent status` marks endpoints active / owner-dead / tombstoned in text and --json, IPv6 host:port in brackets', async () => {
    const dir = tempDir();
    const path = join(dir, 'ctl.sock');
    const srv = await serveControl(path, () => sampleStatus());
    try {
      const text = await agent(['status', '--socket', path]);
      expect(text.code).toBe(0);
      const line = (id: string) => text.stdout.split('\n').find((l) => l.startsWith(`  ${id} `)) ?? '';
      expect(line('a')).toMatch(/ active +owner n0 /);
      expect(line('b')).toMatch(/ owner-dead +owner n1 /);
      expect(line('c')).toMatch(/ tombstoned +owner n2 /);
      expect(line('d')).toMatch(/ active +owner n2 /);
      expect(line('e')).toMatch(/ owner-dead +owner gone /);
      expect(text.stdout).toContain('PK1 [2001:db8::2]:4789 up handshake 3s ago');
      expect(text.stdout).toContain('PK2 198.18.0.3:4789 down handshake never');
      expect(text.stdout).toMatch(/n1 +dead +\[2001:db8::2\]:7946 /);
      expect(text.stdout).not.toContain('2001:db8::2:4789');

      const json = await agent(['status', '--json', `--socket=${path}`]);
      expect(json.code).toBe(0);
      const s = JSON.parse(json.stdout) as ReturnType<typeof describeStatus>;
      expect(s.networks.blue.map((e) => [e.id, e.state])).toEqual([['a', 'active'], ['b', 'owner-dead'], ['c', 'tombstoned'], ['d', 'active'], ['e', 'owner-dead']]);
      expect(s.peers!.map((p) => p.endpoint)).toEqual(['[2001:db8::2]:4789', '198.18.0.3:4789']);
      expect(s.drops).toEqual({ auth_failed: 2 });
    } finally {
      srv.close();
    }
    const gone = await agent(['status', '--socket', join(dir, 'nobody.sock')]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/cannot reach the agent at .*nobody\.sock: ENOENT/);
  }, 60_000);

  it('host:port text brackets IPv6 hosts, whether or not the input already did', () => {
    expect(formatHostPort('2001:db8::2:4789')).toBe('[2001:db8::2]:4789');
    expect(formatHostPort('[2001:db8::2]:4789')).toBe('[2001:db8::2]:4789');
    expect(formatHostPort('::1:4789')).toBe('[::1]:4789');
    expect(formatHostPort('198.18.0.2:4789')).toBe('198.18.0.2:4789');
    const input = sampleStatus();
    const before = JSON.stringify(input);
    formatStatus(input);
    expect(JSON.stringify(input)).toBe(before); // the agent's object is not changed
  });

  it('endpoint state follows the owner through a real (simulated) cluster: alive → active, killed → owner-dead, unpublished → tombstoned', () => {
    const blue = { name: 'blue', vni: 100 };
    const c = new SimCluster({ n: 4, seed: 3, config: LOCAL, networks: [blue] });
    c.bootstrapAll();
    for (let i = 0; i < 4; i++) c.agents[i].publish(blue, { id: `ep-${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, i + 1), ipv4: Uint8Array.of(198, 19, 0, i + 1) });
    const states = () => Object.fromEntries(describeStatus(c.agents[0].status()).networks.blue?.map((e) => [e.id, e.state]) ?? []);
    expect(c.clock.runUntilTrue(() => Object.keys(states()).length === 4, 20_000, 50)).toBeGreaterThanOrEqual(0);
    expect(states()).toEqual({ 'ep-0': 'active', 'ep-1': 'active', 'ep-2': 'active', 'ep-3': 'active' });
    expect(c.agents[1].unpublish('blue', 'ep-1')).toBe(true);
    c.kill(2);
    const took = c.clock.runUntilTrue(() => c.agents[0].status().members.find((m) => m.name === SimCluster.nameOf(2))?.state === 'dead' && states()['ep-1'] === 'tombstoned', 60_000, 50);
    expect(took).toBeGreaterThanOrEqual(0);
    expect(states()).toEqual({ 'ep-0': 'active', 'ep-1': 'tombstoned', 'ep-2': 'owner-dead', 'ep-3': 'active' });
    const s = c.agents[0].status();
    expect(endpointState(s.networks.blue.find((e) => e.id === 'ep-2')!, s.members)).toBe('owner-dead');
    expect(formatStatus(s)).toMatch(/ep-2 .* owner-dead +owner node-2 /);
    for (const a of c.agents) a.stop();
  });

  it('an overlay MTU the underlay cannot carry is reported against `vtep` (a config field), exit 2', async () => {
    const ns = `h5mtu${process.pid}`;
    const dir = tempDir();
    const file = join(dir, 'mtu.yaml');
    writeFileSync(file, configText(dir).replace(/h5chk0/g, 'ov0'));
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      ip('netns', 'add', ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      // A link whose MTU leaves 100 − 50 = 50 bytes for the overlay, below IPv4's 68.
      ip('-n', ns, 'link', 'add', 'ul0', 'mtu', '100', 'type', 'veth', 'peer', 'name', 'ul1', 'mtu', '100');
      ip('-n', ns, 'addr', 'add', '198.18.0.1/16', 'dev', 'ul0');
      ip('-n', ns, 'link', 'set', 'ul0', 'up');
      ip('-n', ns, 'link', 'set', 'ul1', 'up');
      const r = await agent(['--config', file], ['ip', 'netns', 'exec', ns]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^agent: \/vtep: /);
      expect(r.stderr).toMatch(/198\.18\.0\.1/);
    } finally {
      try {
        ip('netns', 'del', ns);
      } catch {
        // not created
      }
    }
  }, 60_000);
});
