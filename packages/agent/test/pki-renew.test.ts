/**
 * Certificate renewal (issue 13; docs/pki.md "Renewal"): agents in a SimCluster (virtual clock and
 * network) and a real join server on a loopback TCP socket answering in the same virtual time.
 * Node 1 holds a 30 s certificate issued through the token: its runtime (pki-run.ts) renews it at
 * 2/3 (20 s) for the same keys, swaps it in and writes the cert file; every peer re-admits it with
 * the new notAfter and keeps its tunnel and records past the old notAfter. The next renewal meets
 * a rotated token secret: each refusal is counted (`renew_failures`) and logged, retried with
 * backoff, and renewal succeeds once the secret is back — still before the certificate ends.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  JoinSigner, createCa, decodePem, encodePem, generateWireGuardKey, parseCert, renewAt, requestJoin, serveJoin, signCert, TrustedCas, type JoinServer,
} from '@overlay/pki';
import { SimCluster } from '../src/simcluster.js';
import { Keyring } from '../src/keyring.js';
import { startPkiRuntime, type PkiRuntime } from '../src/pki-run.js';
import type { AgentConfig } from '../src/config-types.js';
import { FakeTunnel, NET, simSeed as simSeedOf, START } from './pki-sim.js';

const SEED = 5;
const LIFETIME = 30_000;
const simSeed = (i: number) => simSeedOf(i, SEED);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('certificate renewal at 2/3 (simulated cluster, real join socket)', () => {
  it('a 30 s certificate renews at ~20 s for the same keys; peers keep it past the old notAfter; refusals are counted and retried', async () => {
    const ca = createCa({ name: 'renew-ca', now: START - 1000 });
    const trusted = new TrustedCas([ca.cert]);
    const signer = new JoinSigner({ ca, lifetimeMs: LIFETIME, groups: ['web'], within: ['198.19.0.0/24'] });
    const clockRef: { now: () => number } = { now: () => START - 500 };
    const server: JoinServer = await serveJoin(signer, { host: '127.0.0.1', port: 0, clock: () => clockRef.now() });
    cleanups.push(() => server.close());
    const dir = mkdtempSync(join(tmpdir(), 'pki-renew-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    const n = 3;
    const wgKeys = Array.from({ length: n }, () => generateWireGuardKey());
    const wg = wgKeys.map((k) => Buffer.from(k.publicKey).toString('base64'));
    const tunnels = Array.from({ length: n }, () => new FakeTunnel());
    // Node 1's first certificate comes from the signer itself (a join at virtual START - 500).
    const first = await requestJoin({
      host: '127.0.0.1', port: server.address.port, token: signer.token(), name: SimCluster.nameOf(1), prefixes: ['198.19.0.2/32'],
      keys: { signSeed: simSeed(1), signKey: nacl.sign.keyPair.fromSeed(simSeed(1)).publicKey, wgKey: wgKeys[1].publicKey }, clock: () => START - 500,
    });
    expect(first.cert.notAfter - first.cert.notBefore).toBe(LIFETIME);
    const certs = Array.from({ length: n }, (_, i) => (i === 1 ? first.cert.bytes : signCert(ca, {
      name: SimCluster.nameOf(i), prefixes: [`198.19.0.${i + 1}/32`], wgKey: wgKeys[i].publicKey, signKey: nacl.sign.keyPair.fromSeed(simSeed(i)).publicKey, now: START - 500,
    }).bytes));
    const c = new SimCluster({
      n, seed: SEED, networks: [NET],
      agent: (i) => ({ pki: { trusted, cert: certs[i] }, wireguard: { publicKey: wg[i], port: 4789 }, tunnel: tunnels[i] }),
    });
    clockRef.now = () => c.clock.now();
    c.bootstrapAll();
    for (let i = 0; i < n; i++) c.agents[i].publish(NET, { id: `ep-${i}`, mac: new Uint8Array([2, 0, 0, 0, 1, i + 1]), ipv4: new Uint8Array([198, 19, 0, i + 1]) });
    c.run(3000);

    // Node 1's runtime, as runAgent starts it, with the virtual clock.
    const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') };
    writeFileSync(files.ca, encodePem('CERTIFICATE', ca.cert.bytes));
    writeFileSync(files.cert, encodePem('CERTIFICATE', certs[1]));
    const cfg = {
      name: SimCluster.nameOf(1), clusterKeys: [],
      pki: { ...files, joinToken: signer.token(), joinServer: { ip: '127.0.0.1', port: server.address.port }, prefixes: ['198.19.0.2/32'] },
    } as unknown as AgentConfig;
    const warnings: Record<string, unknown>[] = [];
    const log = { info: () => undefined, warn: (o: Record<string, unknown>) => void warnings.push(o) } as unknown as Parameters<typeof startPkiRuntime>[3];
    const rt: PkiRuntime = startPkiRuntime(c.agents[1], cfg, {
      signingKey: c.keys[1], pki: { trusted, cert: certs[1] }, sealer: new Keyring([new Uint8Array(32).fill(1)]), notes: [],
    }, log, { clock: c.clock, pollMs: 3_600_000 });
    cleanups.push(() => rt.stop());

    /** Run virtual time in 50 ms steps; while a renewal waits for the socket (its deadline: 10 s), wait in real time instead. */
    const runUntil = async (done: () => boolean, limitMs: number) => {
      const end = c.clock.now() + limitMs;
      while (!done() && c.clock.now() < end) {
        for (let spins = 0; rt.renewer!.pending && spins < 4000; spins++) await new Promise((r) => setTimeout(r, 5));
        c.run(50);
      }
    };
    const oldNotAfter = first.cert.notAfter;
    const counters = (i: number) => c.agents[i].status().pki!.counters;
    await runUntil(() => counters(1).renewed === 1, LIFETIME);
    const renewedAt = c.clock.now();
    const due = renewAt(first.cert);
    console.log(`renewal: due ${due - first.cert.notBefore} ms into a ${LIFETIME} ms certificate, swapped in at ${renewedAt - first.cert.notBefore} ms`);
    expect(counters(1).renewed).toBe(1);
    // Due at 2/3; done within the 50 ms step plus the gossip steps the loop ran meanwhile.
    expect(renewedAt).toBeGreaterThanOrEqual(due);
    expect(renewedAt - due).toBeLessThanOrEqual(1000);
    const renewed = parseCert(decodePem('CERTIFICATE', readFileSync(files.cert, 'utf8'))[0]);
    expect(renewed.notAfter).toBeGreaterThan(oldNotAfter);
    expect(Buffer.compare(renewed.signKey, first.cert.signKey)).toBe(0);
    expect(Buffer.compare(renewed.wgKey, first.cert.wgKey)).toBe(0);

    // Past the old notAfter (+10 s: the drop deadline): nobody dropped node 1.
    await runUntil(() => false, oldNotAfter + 10_000 - c.clock.now());
    for (const i of [0, 2]) {
      const a = c.agents[i];
      expect(a.pki!.admission.certOf(SimCluster.nameOf(1))?.notAfter, `node ${i} holds the renewed certificate`).toBe(renewed.notAfter);
      expect(tunnels[i].set.has(wg[1]), `node ${i} keeps node 1's tunnel peer`).toBe(true);
      expect(tunnels[i].removed, `node ${i} removed no peer`).toBe(0);
      expect(a.endpoint('blue', 'ep-1')?.deleted, `node ${i} keeps node 1's endpoint`).toBe(false);
      expect(counters(i).evicted_expired).toBe(0);
    }
    expect(counters(1).self_evicted).toBe(0);

    // Next renewal with the token's secret rotated: refused (bad_secret), counted, retried.
    const original = signer.secretBytes();
    signer.rotate();
    await runUntil(() => counters(1).renew_failures >= 2, LIFETIME);
    expect(counters(1).renew_failures).toBeGreaterThanOrEqual(2);
    expect(warnings.filter((w) => w.code === 'bad_secret').length).toBe(counters(1).renew_failures);
    expect(counters(1).renewed).toBe(1);
    signer.rotate(original);
    await runUntil(() => counters(1).renewed === 2, renewed.notAfter - c.clock.now());
    const secondAt = c.clock.now();
    expect(counters(1).renewed, 'renewed once the secret is back, before the certificate ended').toBe(2);
    const third = c.agents[1].pki!.admission.certOf(SimCluster.nameOf(1))!;
    expect(third.notAfter).toBeGreaterThan(renewed.notAfter);
    await runUntil(() => false, renewed.notAfter + 10_000 - c.clock.now());
    for (const i of [0, 2]) {
      expect(tunnels[i].set.has(wg[1]), `node ${i} peer after the second renewal`).toBe(true);
      expect(counters(i).evicted_expired).toBe(0);
    }
    console.log(`second renewal: ${counters(1).renew_failures} refusals (bad_secret) counted and retried, then renewed ${renewed.notAfter - secondAt} ms before the certificate would have ended`);
  }, 60_000);
});
