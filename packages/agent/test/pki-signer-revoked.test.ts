/**
 * The join signer reads revocations (docs/pki.md "Join tokens"; pki-signer.ts): agents in a
 * SimCluster (virtual clock and network), a real join server on a loopback TCP socket answering in
 * that virtual time, and nodes 1 and 2 renewing through it with their runtimes (pki-run.ts) as
 * runAgent starts them. Node 1's identity key is revoked (`agent revoke` path: published through
 * an agent, and kept in the CA directory's revocations.pem, which the signer loads); at 2/3 of its
 * certificate node 1's renewal is refused by the signer with `revoked` (counted by the signer, and
 * as renew_failures with that code by node 1), while node 2 renews as before.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { JoinSigner, createCa, createRevocation, encodePem, generateWireGuardKey, renewAt, requestJoin, serveJoin, TrustedCas, type JoinServer } from '@overlay/pki';
import { SimCluster } from '../src/simcluster.js';
import { Keyring } from '../src/keyring.js';
import { startPkiRuntime, type PkiRuntime } from '../src/pki-run.js';
import { loadRevocations, recordRevocation, watchRevocations } from '../src/pki-signer.js';
import type { AgentConfig } from '../src/config-types.js';
import { FakeTunnel, NET, simSeed as simSeedOf, START } from './pki-sim.js';

const SEED = 11;
const LIFETIME = 30_000;
const simSeed = (i: number) => simSeedOf(i, SEED);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('the join signer refuses revoked keys (simulated cluster, real join socket)', () => {
  it('a revoked node\'s renewal is refused with `revoked`; an unrevoked node still renews', async () => {
    const ca = createCa({ name: 'signer-ca', now: START - 1000 });
    const trusted = new TrustedCas([ca.cert]);
    const signer = new JoinSigner({ ca, lifetimeMs: LIFETIME, within: ['198.19.0.0/24'] });
    const clockRef: { now: () => number } = { now: () => START - 500 };
    const server: JoinServer = await serveJoin(signer, { host: '127.0.0.1', port: 0, clock: () => clockRef.now() });
    cleanups.push(() => server.close());
    const dir = mkdtempSync(join(tmpdir(), 'pki-signer-revoked-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    const n = 3;
    const wgKeys = Array.from({ length: n }, () => generateWireGuardKey());
    const wg = wgKeys.map((k) => Buffer.from(k.publicKey).toString('base64'));
    const signPub = Array.from({ length: n }, (_, i) => nacl.sign.keyPair.fromSeed(simSeed(i)).publicKey);
    // Every node's first certificate comes from the signer (a join at virtual START - 500).
    const certs: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const got = await requestJoin({
        host: '127.0.0.1', port: server.address.port, token: signer.token(), name: SimCluster.nameOf(i), prefixes: [`198.19.0.${i + 1}/32`],
        keys: { signSeed: simSeed(i), signKey: signPub[i], wgKey: wgKeys[i].publicKey }, clock: () => START - 500,
      });
      certs.push(got.cert.bytes);
    }
    const c = new SimCluster({
      n, seed: SEED, networks: [NET],
      agent: (i) => ({ pki: { trusted, cert: certs[i] }, wireguard: { publicKey: wg[i], port: 4789 }, tunnel: new FakeTunnel() }),
    });
    clockRef.now = () => c.clock.now();
    c.bootstrapAll();
    c.run(3000);

    // Nodes 1 and 2 run their PKI runtime (renewal through the token), as runAgent starts it.
    const warnings: Record<string, unknown>[][] = [[], [], []];
    const runtimes: PkiRuntime[] = [];
    for (const i of [1, 2]) {
      const files = { ca: join(dir, `ca-${i}.crt`), cert: join(dir, `node-${i}.crt`), key: join(dir, `node-${i}.key`) };
      writeFileSync(files.ca, encodePem('CERTIFICATE', ca.cert.bytes));
      writeFileSync(files.cert, encodePem('CERTIFICATE', certs[i]));
      const cfg = {
        name: SimCluster.nameOf(i), clusterKeys: [],
        pki: { ...files, joinToken: signer.token(), joinServer: { ip: '127.0.0.1', port: server.address.port }, prefixes: [`198.19.0.${i + 1}/32`] },
      } as unknown as AgentConfig;
      const log = { info: () => undefined, warn: (o: Record<string, unknown>) => void warnings[i].push(o) } as unknown as Parameters<typeof startPkiRuntime>[3];
      const rt = startPkiRuntime(c.agents[i], cfg, { signingKey: c.keys[i], pki: { trusted, cert: certs[i] }, sealer: new Keyring([new Uint8Array(32).fill(1)]), notes: [] }, log, { clock: c.clock, pollMs: 3_600_000 });
      cleanups.push(() => rt.stop());
      runtimes.push(rt);
    }
    /** Virtual time in 50 ms steps; while a renewal waits for the socket (deadline 10 s), real time instead. */
    const runUntil = async (done: () => boolean, limitMs: number) => {
      const end = c.clock.now() + limitMs;
      while (!done() && c.clock.now() < end) {
        for (let spins = 0; runtimes.some((r) => r.renewer!.pending) && spins < 4000; spins++) await new Promise((r) => setTimeout(r, 5));
        c.run(50);
      }
    };
    const counters = (i: number) => c.agents[i].status().pki!.counters;
    const issuedAtStart = signer.counts.issued;
    expect(issuedAtStart).toBe(n);

    // `agent revoke --dir DIR`: the record is kept in DIR/revocations.pem (the signer loads it, as
    // `agent ca serve` does when the file changes) and published through node 0.
    const rev = createRevocation(ca, { kind: 'signKey', key: signPub[1], now: c.clock.now(), reason: 'test' });
    recordRevocation(dir, rev);
    expect(readFileSync(join(dir, 'revocations.pem'), 'utf8')).toContain('BEGIN OVERLAY REVOCATION');
    expect(loadRevocations(dir, signer, c.clock.now())).toEqual({ added: 1, refused: 0 });
    expect(loadRevocations(dir, signer, c.clock.now()), 'a second load adds nothing').toEqual({ added: 0, refused: 0 });
    expect(c.agents[0].revoke(rev.bytes).evicted).toEqual([SimCluster.nameOf(1)]);

    // Both renewals fall due at 2/3 of the 30 s certificates (same notBefore).
    const due = renewAt(runtimes[0].renewer!.current);
    await runUntil(() => counters(2).renewed >= 1 && counters(1).renew_failures >= 2, due + 15_000 - c.clock.now());
    console.log(`signer: ${JSON.stringify(signer.counts)}; node 1 renew_failures ${counters(1).renew_failures} (codes ${[...new Set(warnings[1].map((w) => w.code))].join(',')}), node 2 renewed ${counters(2).renewed}`);
    expect(counters(2).renewed, 'the unrevoked node renews').toBeGreaterThanOrEqual(1);
    expect(counters(1).renewed, 'the revoked node does not').toBe(0);
    expect(counters(1).renew_failures).toBeGreaterThanOrEqual(2);
    expect(warnings[1].length).toBe(counters(1).renew_failures);
    for (const w of warnings[1]) {
      expect(w.code).toBe('revoked');
      expect(String(w.err)).toContain('the signer refused');
    }
    expect(signer.counts.revoked, 'every attempt of node 1 refused at the signer').toBe(counters(1).renew_failures);
    expect(signer.counts.issued, 'nothing issued to node 1').toBe(issuedAtStart + counters(2).renewed);
    expect(warnings[2]).toEqual([]);
  }, 60_000);

  it('`agent ca serve`\'s watcher: a revocation appended to DIR/revocations.pem is taken without a restart; a foreign one is skipped', async () => {
    const ca = createCa({ name: 'watch-ca', now: Date.now() - 1000 });
    const other = createCa({ name: 'other-ca', now: Date.now() - 1000 });
    const signer = new JoinSigner({ ca });
    const dir = mkdtempSync(join(tmpdir(), 'pki-signer-watch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const reports: string[] = [];
    const stop = watchRevocations(dir, signer, (m) => void reports.push(m), { intervalMs: 50 });
    cleanups.push(stop);
    expect(signer.revocations.size, 'no file yet: nothing').toBe(0);
    const key = nacl.sign.keyPair().publicKey;
    recordRevocation(dir, createRevocation(other, { kind: 'signKey', key: nacl.sign.keyPair().publicKey, now: Date.now() }));
    recordRevocation(dir, createRevocation(ca, { kind: 'signKey', key, now: Date.now() }));
    // The watcher polls every 50 ms; a loaded machine may delay it, so wait up to 20 s.
    for (let i = 0; i < 400 && signer.revocations.size === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(signer.revocations.isRevoked(key)).toBe(true);
    expect(signer.revocations.size).toBe(1);
    expect(reports.filter((m) => m.includes('1 new')), `reports: ${reports.join(' | ')}`).toHaveLength(1);
    expect(reports.at(-1)).toContain('1 not verified');
  });
});
