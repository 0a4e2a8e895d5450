/**
 * The join signer refuses keys revoked by gossip (pki-signer.ts `followAgentRevocations`): agents
 * in a SimCluster (virtual clock and network), agent 0's control socket served on a real unix
 * socket (as runAgent serves it: `revoke …` lines to revokeCommand), and a real join server on
 * loopback TCP. Revocations are published on other agents, never in the signer's DIR; once gossip
 * brought one to agent 0 and the signer read agent 0's list, a join for that key is refused with
 * the signer's PkiError `revoked` (counted in signer.counts), a key nobody revoked is still issued;
 * the same for a WireGuard key, a key revoked by another CA the agents trust, and every join once
 * the signer's own CA is revoked (`ca_revoked`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { JoinSigner, PkiError, createCa, createRevocation, generateWireGuardKey, requestJoin, serveJoin, type JoinServer } from '@overlay/pki';
import { serveControl } from '../src/runtime.js';
import { revokeCommand } from '../src/pki-run.js';
import { agentRevocations, followAgentRevocations, type RevocationFollower } from '../src/pki-signer.js';
import { pkiCluster, START } from './pki-sim.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('the join signer refuses keys revoked by gossip (simulated cluster, real control and join sockets)', () => {
  it('a revocation published on another agent reaches agent 0 by gossip; the signer following agent 0 refuses that key, issues others', async () => {
    const { c, ca, trusted, signPub, wgKeys } = pkiCluster(4, { seed: 23 });
    const other = createCa({ name: 'rollover-ca', now: START - 1000 });
    trusted.add(other.cert); // every agent trusts a second CA (a rollover in progress)
    c.bootstrapAll();
    c.run(3000);
    const signer = new JoinSigner({ ca, within: ['198.19.0.0/24'] });
    const server: JoinServer = await serveJoin(signer, { host: '127.0.0.1', port: 0, clock: () => c.clock.now() });
    cleanups.push(() => server.close());
    const dir = mkdtempSync(join(tmpdir(), 'pki-signer-gossip-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socket = join(dir, 'agent-0.sock');
    const control = await serveControl(socket, () => ({}), (line) => (line.startsWith('revoke ') ? revokeCommand(c.agents[0], line) : undefined));
    cleanups.push(() => void control.close());
    const reports: string[] = [];
    // The timer is left at an hour: the test asks at the moments it checks (poll), so nothing races.
    const follow: RevocationFollower = followAgentRevocations(signer, agentRevocations(socket), (m) => void reports.push(m), { clock: () => c.clock.now(), intervalMs: 3_600_000 });
    cleanups.push(() => follow.stop());
    await follow.poll();
    expect(follow.counts).toMatchObject({ added: 0, failures: 0 });

    const newcomer = () => {
      const id = nacl.sign.keyPair();
      return { signSeed: id.secretKey.subarray(0, 32), signKey: id.publicKey, wgKey: generateWireGuardKey().publicKey };
    };
    let names = 0;
    const joinWith = (keys: ReturnType<typeof newcomer>, name = `joiner-${names++}`) =>
      requestJoin({ host: '127.0.0.1', port: server.address.port, token: signer.token(), name, prefixes: ['198.19.0.100/32'], keys, clock: () => c.clock.now() }).then(
        () => 'issued',
        (e: unknown) => (e instanceof PkiError ? e.code : `other: ${String(e)}`),
      );
    /** Publish `rev` on agent `at`, run the cluster until agent 0 holds it (gossip), then let the signer read agent 0. */
    const spread = async (rev: Uint8Array, at: number, held: () => boolean) => {
      c.agents[at].revoke(rev);
      for (let t = 0; t < 10_000 && !held(); t += 50) c.run(50);
      expect(held(), 'gossip brought the revocation to agent 0').toBe(true);
      await follow.poll();
    };
    const admission0 = c.agents[0].pki!.admission.revocations;

    // 1. An identity key revoked through agent 3 (not the signer's DIR): refused once agent 0 holds it.
    const x = newcomer();
    const y = newcomer();
    await spread(createRevocation(ca, { kind: 'signKey', key: x.signKey, now: c.clock.now() }).bytes, 3, () => admission0.isRevoked(x.signKey));
    expect(await joinWith(x)).toBe('revoked');
    expect(await joinWith(y), 'a key nobody revoked is issued').toBe('issued');
    expect(signer.counts).toMatchObject({ revoked: 1, issued: 1 });

    // 2. A member's WireGuard key revoked through agent 2: a renewal for that member's keys is refused.
    await spread(createRevocation(ca, { kind: 'wgKey', key: wgKeys[1].publicKey, now: c.clock.now() }).bytes, 2, () => admission0.isRevoked(wgKeys[1].publicKey));
    const node1 = { signSeed: c.keys[1].subarray(0, 32), signKey: signPub[1], wgKey: wgKeys[1].publicKey };
    expect(await joinWith(node1, 'node-1-again')).toBe('revoked');

    // 3. A key revoked by the other CA the agents trust (not the signer's): refused too.
    const z = newcomer();
    await spread(createRevocation(other, { kind: 'signKey', key: z.signKey, now: c.clock.now() }).bytes, 3, () => admission0.isRevoked(z.signKey));
    expect(await joinWith(z)).toBe('revoked');
    expect(await joinWith(newcomer())).toBe('issued');
    expect(signer.counts).toMatchObject({ revoked: 3, issued: 2 });
    expect(follow.counts).toMatchObject({ added: 3, refused: 0, failures: 0 });

    // 4. The signer's own CA revoked (by the other CA) through agent 3: every join is refused.
    await spread(createRevocation(other, { kind: 'ca', key: ca.cert.digest, now: c.clock.now() }).bytes, 3, () => admission0.isCaRevoked(ca.cert.digest));
    expect(await joinWith(newcomer())).toBe('ca_revoked');
    expect(signer.counts).toMatchObject({ revoked: 3, issued: 2, ca_revoked: 1 });
    expect(reports.filter((m) => m.includes('1 new'))).toHaveLength(4);
  }, 60_000);

  it('an agent that cannot be reached: counted and reported once, the signer keeps what it took; it follows again when the agent answers', async () => {
    const { c, ca } = pkiCluster(2, { seed: 29 });
    c.bootstrapAll();
    c.run(2000);
    const signer = new JoinSigner({ ca });
    const dir = mkdtempSync(join(tmpdir(), 'pki-signer-follow-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socket = join(dir, 'agent.sock');
    const reports: string[] = [];
    const follow = followAgentRevocations(signer, agentRevocations(socket, 2000), (m) => void reports.push(m), { clock: () => c.clock.now(), intervalMs: 3_600_000 });
    cleanups.push(() => follow.stop());
    await follow.poll(); // after the ask made at start
    expect(follow.counts.failures).toBe(2);
    expect(reports.filter((m) => m.startsWith('cannot read'))).toHaveLength(1);
    const key = nacl.sign.keyPair().publicKey;
    c.agents[0].revoke(createRevocation(ca, { kind: 'signKey', key, now: c.clock.now() }).bytes);
    const control = await serveControl(socket, () => ({}), (line) => (line.startsWith('revoke ') ? revokeCommand(c.agents[0], line) : undefined));
    cleanups.push(() => void control.close());
    await follow.poll();
    expect(signer.revocations.isRevoked(key)).toBe(true);
    expect(reports).toContain('the agent answers again');
    await follow.poll();
    expect(follow.counts, 'a record already taken is not verified again').toMatchObject({ added: 1, refused: 0, polls: 2, failures: 2 });
  }, 60_000);
});
