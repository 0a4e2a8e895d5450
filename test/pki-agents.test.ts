/**
 * Admission by certificate with real agents in network namespaces (issue 13; docs/pki.md):
 * host 1 runs `agent ca init`, `agent token create` and `agent ca serve`; four agents start with
 * `pki: { joinToken, joinServer }` and no cluster key, join with the token at start, and reach
 * all-pairs ping over the encrypted overlay. Agents given a wrong secret or another CA's digest
 * refuse to start. `agent revoke` of host 2 on host 1: every other host's tunnel peer for host 2
 * is gone and pings to it fail (time printed). A fifth host with a certificate of 30 s: every
 * host drops its tunnel within 10 s after notAfter (time printed). Then, under 5 % loss on every
 * underlay, a revocation by WireGuard key through another host's agent (time printed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { generatePrivateKey, publicKeyOf } from '@overlay/crypto';
import { decodePem, encodePem, formatToken, generateSigningKey, parseCa, parseToken, signCert } from '@overlay/pki';
import { queryControl, type AgentStatus } from '@overlay/agent';
import { createTestbed, type TestHost, type Testbed } from './lib/testbed.js';
import { ping } from './lib/transfer.js';
import { blueNetwork } from './lib/agent-cluster.js';

const MAIN = ['--conditions=source', '--import', 'tsx', 'packages/agent/src/main.ts'];
const SIGNER_PORT = 7950;
const ip = (h: TestHost) => `198.19.0.${h.index}`;

interface Proc { host: TestHost; proc: ChildProcess; socket: string; stderr: () => string; wg: string }

describe('agents admitted by certificate (netns)', () => {
  let tb: Testbed;
  let dir: string;
  let token: string;
  const procs: Proc[] = [];
  const t0 = Date.now();

  const config = (h: TestHost, o: { token?: string; files: string; wg: string; join?: boolean }) => [
    `name: pk${h.index}`,
    `listen: ${h.underlay}:7946`,
    `seeds: [${tb.hosts[0].underlay}:7946]`,
    `profile: lan`,
    `wireguard:`,
    `  privateKey: ${o.wg}`,
    `controlSocket: ${join(o.files, 'agent.sock')}`,
    `pki:`,
    `  ca: ${join(o.files, 'ca.crt')}`,
    `  cert: ${join(o.files, 'node.crt')}`,
    `  key: ${join(o.files, 'node.key')}`,
    ...(o.join === false ? [] : [`  joinToken: ${o.token}`, `  joinServer: ${tb.hosts[0].underlay}:${SIGNER_PORT}`, `  prefixes: [${ip(h)}/32]`]),
    ...blueNetwork(`ep-${h.index}`, `02:00:00:00:07:${h.index.toString(16).padStart(2, '0')}`, ip(h)),
    '',
  ].join('\n');

  /** Start an agent on `h`; resolves once its control socket answers, or with its exit code and stderr. */
  const start = async (h: TestHost, o: { token?: string; tag: string; join?: boolean; prepare?: (files: string, wg: string) => void }): Promise<Proc | { code: number | null; stderr: string }> => {
    const files = join(dir, `${o.tag}`);
    mkdirSync(files);
    const wg = generatePrivateKey();
    o.prepare?.(files, wg);
    const file = join(files, 'agent.yaml');
    writeFileSync(file, config(h, { token: o.token, files, wg, join: o.join }), { mode: 0o600 });
    const proc = h.spawn('node', [...MAIN, '--config', file], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d) => (stderr += d));
    const socket = join(files, 'agent.sock');
    for (const end = Date.now() + 180_000; Date.now() < end; ) {
      if (proc.exitCode !== null) {
        await new Promise((r) => setTimeout(r, 100));
        return { code: proc.exitCode, stderr };
      }
      try {
        await queryControl(socket, 2000);
        const p = { host: h, proc, socket, stderr: () => stderr, wg: publicKeyOf(wg) };
        procs.push(p);
        return p;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error(`agent on ${h.name} did not start: ${stderr}`);
  };
  const status = (p: Proc) => queryControl(p.socket, 3000) as Promise<AgentStatus>;
  const hasPeer = (s: AgentStatus, wg: string) => (s.peers ?? []).some((x) => x.publicKey === wg);

  beforeAll(async () => {
    tb = await createTestbed({ hosts: 5, prefix: 'pkia' });
    dir = mkdtempSync(join(tmpdir(), 'pki-agents-'));
  });
  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await tb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('4 hosts join with the token at start, wrong secret and other CA refused, all-pairs ping; revoke host 2; a certificate expiring', async () => {
    const [h1, h2, h3, h4, h5] = tb.hosts;
    const ca = join(dir, 'ca');
    mkdirSync(ca);
    const sh = (args: string[]) => h1.run('node', [...MAIN, ...args], { timeoutMs: 60_000 });
    expect((await sh(['ca', 'init', '--dir', ca, '--name', 'netns-ca'])).code).toBe(0);
    const created = await sh(['token', 'create', '--dir', ca, '--group', 'web', '--within', '198.19.0.0/24']);
    expect(created.code, created.stderr).toBe(0);
    token = created.stdout.trim();
    // --socket: the signer also refuses what host 1's agent holds (it starts below; until then the follower waits).
    const serve = h1.spawn('node', [...MAIN, 'ca', 'serve', '--dir', ca, '--listen', `${h1.underlay}:${SIGNER_PORT}`, '--socket', join(dir, 'h1', 'agent.sock')]);
    let serveLog = '';
    serve.stderr!.on('data', (d: Buffer) => void (serveLog += d.toString()));
    for (let end = Date.now() + 60_000; !/answering joins/.test(serveLog) && Date.now() < end && serve.exitCode === null; ) await new Promise((r) => setTimeout(r, 100));
    expect(serveLog).toMatch(/answering joins/);

    const t = parseToken(token);
    const started = await Promise.all([
      ...[h1, h2, h3, h4].map((h) => start(h, { token, tag: `h${h.index}` })),
      start(h3, { token: formatToken({ ...t, secret: new Uint8Array(32).fill(5) }), tag: 'wrong-secret' }),
      start(h4, { token: formatToken({ ...t, caDigest: new Uint8Array(32).fill(6) }), tag: 'other-ca' }),
    ]);
    const [wrongSecret, otherCa] = started.slice(4) as { code: number; stderr: string }[];
    expect([wrongSecret.code, wrongSecret.stderr]).toEqual([1, expect.stringContaining('bad_secret')]);
    expect([otherCa.code, otherCa.stderr]).toEqual([1, expect.stringContaining('wrong_issuer')]);
    const agents = started.slice(0, 4) as Proc[];
    for (const a of agents) expect(a.proc.exitCode, a.stderr()).toBeNull();
    console.log(`4 agents joined with the token and up ${Date.now() - t0} ms after the test began`);

    // Everyone admitted everyone: 4 alive members, 3 endpoints programmed. (Agents that start
    // together can see a record before its owner's alive: `record_unknown_owner`, repaired by the
    // next push-pull, 60 s on LAN; that is the record path's behaviour with or without pki.)
    const tConverge = Date.now();
    for (const end = Date.now() + 90_000; ; ) {
      const ss = await Promise.all(agents.map(status));
      if (ss.every((s) => s.members.filter((m) => m.state === 'alive').length === 4 && s.counters.programmed === 3 && s.pki?.admitted === 4)) break;
      if (Date.now() > end) throw new Error(`not converged: ${JSON.stringify(ss.map((s) => ({ m: s.members.map((m) => `${m.name}:${m.state}`), p: s.counters.programmed, pki: s.pki, d: s.drops })))}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(`every agent admitted 4 members and programmed 3 endpoints ${Date.now() - tConverge} ms after the last one was up`);
    for (const a of agents) {
      for (const b of agents) {
        if (a === b) continue;
        let ok = false;
        for (let k = 0; k < 6 && !ok; k++) ok = (await ping(a.host, ip(b.host), 2)) > 0;
        if (!ok) console.log(JSON.stringify(await Promise.all([a, b].map(async (x) => { const s = await status(x); return { n: s.name, peers: s.peers, pki: s.pki, drops: s.drops }; }))));
        expect(ok, `${a.host.index} → ${ip(b.host)}`).toBe(true);
      }
    }
    console.log(`all-pairs ping over the overlay ${Date.now() - t0} ms after the test began`);

    // Revoke host 2 (its identity key, from its certificate) through host 1's agent.
    const victim = agents[1];
    const rv = await h1.run('node', [...MAIN, 'revoke', '--dir', ca, '--cert', join(dir, 'h2', 'node.crt'), '--reason', 'test', '--socket', agents[0].socket], { timeoutMs: 60_000 });
    const revokedAt = Date.now();
    expect(rv.code, rv.stderr).toBe(0);
    expect(rv.stdout).toContain('evicted here: pk2');
    const others = agents.filter((a) => a !== victim);
    const peerGone: number[] = [];
    const pingFails: number[] = [];
    await Promise.all(others.map(async (a, i) => {
      for (const end = revokedAt + 10_000; Date.now() < end && peerGone[i] === undefined; ) {
        if (!hasPeer(await status(a), victim.wg)) peerGone[i] = Date.now() - revokedAt;
        else await new Promise((r) => setTimeout(r, 50));
      }
      for (const end = revokedAt + 10_000; Date.now() < end && pingFails[i] === undefined; ) {
        const tPing = Date.now();
        if ((await ping(a.host, ip(victim.host), 1, [], 0.2).catch(() => 1)) === 0) pingFails[i] = tPing - revokedAt;
      }
    }));
    console.log(`revoke pk2: tunnel peer gone on hosts 1,3,4 after ${peerGone.join(', ')} ms; first failing ping sent at ${pingFails.join(', ')} ms after \`agent revoke\` returned`);
    for (let i = 0; i < others.length; i++) {
      expect(peerGone[i], `host ${others[i].host.index} peer`).toBeLessThanOrEqual(2000);
      expect(pingFails[i], `host ${others[i].host.index} ping`).toBeLessThanOrEqual(2000);
    }
    // It stays out: pings keep failing, its endpoint is gone from every table.
    for (const a of others) {
      expect(await ping(a.host, ip(victim.host), 2)).toBe(0);
      const s = await status(a);
      expect(Object.values(s.networks).flat().some((e) => e.owner === 'pk2')).toBe(false);
      expect(s.pki!.counters.evicted_revoked).toBe(1);
    }

    // A WireGuard key revoked through host 3's agent with a copy of the CA directory, so not in the
    // signer's revocations.pem: gossip brings it to host 1's agent, which `ca serve --socket` follows;
    // a join for that key is then refused `revoked`.
    const caCopy = join(dir, 'ca-copy');
    mkdirSync(caCopy);
    for (const f of ['ca.crt', 'ca.key']) writeFileSync(join(caCopy, f), readFileSync(join(ca, f)), { mode: 0o600 });
    const wgRevoked = publicKeyOf(generatePrivateKey());
    const rv2 = await h3.run('node', [...MAIN, 'revoke', '--dir', caCopy, '--wg-key', wgRevoked, '--socket', agents[2].socket], { timeoutMs: 60_000 });
    const revoked2At = Date.now();
    expect(rv2.code, rv2.stderr).toBe(0);
    for (const end = revoked2At + 10_000; !/agent's revocations: 1 new/.test(serveLog) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    console.log(`a WireGuard key revoked through pk3: the signer holds it ${Date.now() - revoked2At} ms after \`agent revoke\` returned`);
    expect(serveLog).toMatch(/agent's revocations: 1 new/);
    const joinOut = join(dir, 'join-revoked');
    mkdirSync(joinOut);
    const refused = await h4.run('node', [...MAIN, 'join', '--token', token, '--server', `${h1.underlay}:${SIGNER_PORT}`, '--name', 'pk-revoked', '--wg-public', wgRevoked, '--prefix', '198.19.0.50/32', '--out', joinOut], { timeoutMs: 60_000 });
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('revoked')]);

    // A fifth host with a certificate of 30 s (signed here with the CA's key): admitted, reachable, then dropped.
    const caPair = { cert: parseCa(decodePem('CERTIFICATE', readFileSync(join(ca, 'ca.crt'), 'utf8'))[0]), seed: decodePem('ED25519 PRIVATE KEY', readFileSync(join(ca, 'ca.key'), 'utf8'))[0] };
    let notAfter = 0;
    const short = await start(h5, {
      tag: 'h5', join: false,
      prepare: (files, wg) => {
        const id = generateSigningKey();
        const cert = signCert(caPair, { name: 'pk5', prefixes: [`${ip(h5)}/32`], groups: ['web'], wgKey: new Uint8Array(Buffer.from(publicKeyOf(wg), 'base64')), signKey: id.publicKey, now: Date.now(), lifetimeMs: 30_000 });
        notAfter = cert.notAfter;
        writeFileSync(join(files, 'node.key'), encodePem('ED25519 PRIVATE KEY', id.seed), { mode: 0o600 });
        writeFileSync(join(files, 'node.crt'), encodePem('CERTIFICATE', cert.bytes));
        writeFileSync(join(files, 'ca.crt'), readFileSync(join(ca, 'ca.crt')));
      },
    }) as Proc;
    expect(short.proc.exitCode, short.stderr()).toBeNull();
    const upFor = notAfter - Date.now();
    console.log(`pk5 up with ${upFor} ms of certificate left`);
    expect(upFor).toBeGreaterThan(3000);
    let reached = false;
    while (!reached && Date.now() < notAfter - 1000) reached = (await ping(h1, ip(h5), 1, [], 0.2)) > 0;
    expect(reached, 'pk5 reachable before its certificate ends').toBe(true);
    for (const end = notAfter - 500; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      if ((await Promise.all(others.map(status))).every((s) => hasPeer(s, short.wg))) break;
    }
    for (const a of others) expect(hasPeer(await status(a), short.wg), `host ${a.host.index} has pk5's peer before notAfter`).toBe(true);
    const dropped: number[] = [];
    await Promise.all(others.map(async (a, i) => {
      for (const end = notAfter + 20_000; Date.now() < end && dropped[i] === undefined; ) {
        if (!hasPeer(await status(a), short.wg)) dropped[i] = Date.now() - notAfter;
        else await new Promise((r) => setTimeout(r, 100));
      }
    }));
    console.log(`pk5's certificate expired: tunnel peer dropped on hosts 1,3,4 at ${dropped.join(', ')} ms after notAfter`);
    for (let i = 0; i < others.length; i++) expect(dropped[i], `host ${others[i].host.index}`).toBeLessThanOrEqual(10_000);
    expect(await ping(h1, ip(h5), 2)).toBe(0);
    console.log(`pki-agents: whole test ${Date.now() - t0} ms`);
    serve.kill('SIGTERM');
  }, 600_000);

  it('under 5 % loss on every underlay: a revocation by WireGuard key still reaches every host within 2 s', async () => {
    const live = procs.filter((p) => ['h1', 'h3', 'h4'].some((t) => p.socket.includes(`/${t}/`))).sort((a, b) => a.host.index - b.host.index);
    expect(live.map((p) => p.host.index)).toEqual([1, 3, 4]);
    const [a1, a3, a4] = live;
    for (const h of tb.hosts) await tb.netem(h, 'loss 5%');
    try {
      for (const a of [a1, a3]) expect(hasPeer(await status(a), a4.wg), `host ${a.host.index} has pk4's peer`).toBe(true);
      // Through host 3's agent this time, naming the WireGuard key.
      const rv = await a3.host.run('node', [...MAIN, 'revoke', '--dir', join(dir, 'ca'), '--wg-key', a4.wg, '--socket', a3.socket], { timeoutMs: 60_000 });
      const revokedAt = Date.now();
      expect(rv.code, rv.stderr).toBe(0);
      const gone: number[] = [];
      await Promise.all([a1, a3].map(async (a, i) => {
        for (const end = revokedAt + 10_000; Date.now() < end && gone[i] === undefined; ) {
          if (!hasPeer(await status(a), a4.wg)) gone[i] = Date.now() - revokedAt;
          else await new Promise((r) => setTimeout(r, 50));
        }
      }));
      console.log(`5 % loss: revoke pk4 (wgKey) through pk3: tunnel peer gone on hosts 1,3 after ${gone.join(', ')} ms`);
      for (const g of gone) expect(g).toBeLessThanOrEqual(2000);
      expect(await ping(a1.host, ip(a4.host), 2)).toBe(0);
    } finally {
      for (const h of tb.hosts) await tb.clearNetem(h);
    }
  }, 120_000);
});
