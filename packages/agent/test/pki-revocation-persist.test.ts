/**
 * Revocations outlive their publisher (issue 13; docs/pki.md "Revocations outlive their
 * publisher"), in a SimCluster: node 0 publishes a revocation of node 3 and crashes; once node 0
 * is dead (and then reaped everywhere) its revocation record is adopted — re-signed by a live
 * member under the same id — so a host that joins after the reap still learns it and refuses
 * node 3. An adopter that restarts without state re-signs the revocation it finds, it does not
 * tombstone it; a holder that is itself revoked hands it on before its records are removed.
 */
import { describe, expect, it } from 'vitest';
import { createRevocation } from '@overlay/pki';
import { SimCluster } from '../src/simcluster.js';
import { REVOCATION_KIND, REVOCATION_NETWORK, revocationId } from '../src/pki-admission.js';
import { epIp, epMac, NET, pkiCluster } from './pki-sim.js';

const SEED = 11;
const N = 7;
const LATE = 6;
const REAP_MS = 10_000;

describe('revocations outlive the member that published them', () => {
  it('a host joining after the publisher was reaped learns the revocation and refuses the revoked member', async () => {
    const s = pkiCluster(N, { seed: SEED, cluster: { extra: { deadNodeReapMs: REAP_MS, tombstoneReapMs: 20_000 } } });
    const { c } = s;
    const name = SimCluster.nameOf;
    // Start 0..5 as one cluster; node 6 joins later.
    const early = c.agents.slice(0, LATE);
    for (const a of early) a.start();
    const alives = early.map((a) => a.membership.selfAlive());
    for (const a of early) for (const al of alives) a.membership.merge(al, 0, true);
    for (let i = 0; i < LATE; i++) c.agents[i].publish(NET, { id: `ep-${i}`, mac: epMac(i), ipv4: epIp(i) });
    c.run(5000);

    const wg3 = new Uint8Array(Buffer.from(s.wg[3], 'base64'));
    const rev = createRevocation(s.ca, { kind: 'wgKey', key: wg3, now: c.clock.now(), reason: 'test' });
    const id = revocationId('wgKey', wg3);
    expect(c.agents[0].revoke(rev.bytes).evicted).toEqual([name(3)]);
    c.run(3000);
    for (const i of [1, 2, 4, 5]) expect(c.agents[i].table.get(REVOCATION_KIND, REVOCATION_NETWORK, id)?.rec.owner, `node ${i} holds node 0's revocation`).toBe(name(0));

    // The publisher crashes; SWIM declares it dead, the orphaned revocation is adopted, node 0 is reaped.
    c.kill(0);
    const holders = [1, 2, 4, 5];
    const reaped = () => holders.every((i) => c.agents[i].membership.get(name(0)) === undefined);
    for (let t = 0; t < 120_000 && !reaped(); t += 500) c.run(500);
    expect(reaped(), 'node 0 reaped everywhere').toBe(true);
    c.run(5000);
    const owners = holders.map((i) => c.agents[i].table.get(REVOCATION_KIND, REVOCATION_NETWORK, id)?.rec);
    for (const [k, r] of owners.entries()) {
      expect(r, `node ${holders[k]} still holds the revocation`).toBeDefined();
      expect(r!.deleted).toBe(false);
      expect(r!.owner).not.toBe(name(0));
    }
    // LWW leaves one copy: every holder has the same owner and version.
    expect(new Set(owners.map((r) => `${r!.owner}@${r!.version}`)).size).toBe(1);
    const adopted = holders.reduce((n, i) => n + c.agents[i].status().pki!.counters.revocations_adopted, 0);
    console.log(`revocation adopted ${adopted} time(s) after its publisher died; held by ${owners[0]!.owner}`);
    expect(adopted).toBeGreaterThanOrEqual(1);
    expect(adopted).toBeLessThanOrEqual(holders.length);

    // A host that joins now learns it, and refuses node 3 (still running and gossiping).
    const late = c.agents[LATE];
    late.start();
    const joined = late.join([c.addrs[1]]);
    c.run(100);
    expect(await joined).toBe(1);
    c.run(10_000);
    const st = late.status();
    expect(st.pki!.revocations, 'the late host knows the revocation').toBe(1);
    expect(late.pki!.isAdmitted(name(3)), 'node 3 not admitted at the late host').toBe(false);
    expect(s.tunnels[LATE].set.has(s.wg[3]), 'no tunnel peer for node 3 at the late host').toBe(false);
    expect(late.endpoint('blue', 'ep-3')).toBeUndefined();
    for (const i of [1, 2, 4, 5]) expect(s.tunnels[LATE].set.has(s.wg[i]), `late host peers node ${i}`).toBe(true);
    expect(st.pki!.counters.refused_revoked + st.drops.gossip_not_admitted, 'node 3 was heard and refused').toBeGreaterThan(0);

    // The adopter restarts without state: it re-signs the revocation it finds, no tombstone.
    const adopter = Number(owners[0]!.owner.split('-')[1]);
    await c.restart(adopter, adopter === 1 ? 2 : 1);
    c.run(10_000);
    for (const i of [1, 2, 4, 5, LATE]) {
      const r = c.agents[i].table.get(REVOCATION_KIND, REVOCATION_NETWORK, id)?.rec;
      expect(r?.deleted, `node ${i}: the revocation stays live after its holder restarted`).toBe(false);
    }
    expect(c.agents[adopter].status().pki!.revocations, 'the restarted adopter applies it again').toBe(1);
    expect(c.agents[adopter].pki!.isAdmitted(name(3))).toBe(false);

    // The holder itself is revoked: its records leave every table, but the revocation it carried
    // is adopted by another member first, so it is not lost.
    const holder = Number(c.agents[LATE].table.get(REVOCATION_KIND, REVOCATION_NETWORK, id)!.rec.owner.split('-')[1]);
    const others = [1, 2, 4, 5, LATE].filter((i) => i !== holder);
    const wgH = new Uint8Array(Buffer.from(s.wg[holder], 'base64'));
    expect(c.agents[others[0]].revoke(createRevocation(s.ca, { kind: 'wgKey', key: wgH, now: c.clock.now() }).bytes).evicted).toEqual([name(holder)]);
    c.run(10_000);
    for (const i of others) {
      const r = c.agents[i].table.get(REVOCATION_KIND, REVOCATION_NETWORK, id)?.rec;
      expect(r?.deleted, `node ${i} still holds node 3's revocation after its holder ${name(holder)} was revoked`).toBe(false);
      expect([name(holder), name(0)]).not.toContain(r!.owner);
    }
  }, 60_000);
});
