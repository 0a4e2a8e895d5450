// The testbed's underlay neighbours are permanent (test/lib/testbed.ts): a testbed adds nothing to
// the kernel's neighbour tables, which every namespace of the machine shares and which hold at most
// gc_thresh3 (1024) learned entries in all. A 50-host testbed used to overflow them (sendmsg
// ENOBUFS, EHOSTUNREACH to etcd, issue 16). No timing, no loss: nothing here can flake on load.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestbed, underlayMac, type TestHost, type Testbed } from './lib/testbed.js';

interface Neigh {
  dst: string;
  lladdr?: string;
  state?: string[];
}

const neighbours = async (h: TestHost): Promise<Neigh[]> => JSON.parse(await h.exec('ip', ['-j', 'neigh', 'show', 'dev', 'ul0'])) as Neigh[];

/** Every host pings every other one over IPv4 and IPv6 (one echo each, must be answered). */
async function allPairs(tb: Testbed): Promise<void> {
  for (const a of tb.hosts) {
    for (const b of tb.hosts) {
      if (a === b) continue;
      await a.exec('ping', ['-c', '1', '-W', '5', '-q', b.underlay]);
      await a.exec('ping', ['-6', '-c', '1', '-W', '5', '-q', b.underlay6!]);
    }
  }
}

describe('testbed underlay neighbours', () => {
  let pinned: Testbed;
  let learned: Testbed;
  beforeAll(async () => {
    pinned = await createTestbed({ hosts: 5, ipv6: true, prefix: 'tbnb' });
    learned = await createTestbed({ hosts: 3, ipv6: true, prefix: 'tbnl', staticNeighbours: false });
  });
  afterAll(async () => {
    await pinned?.destroy();
    await learned?.destroy();
  });

  it('holds every other host as a permanent neighbour with its ul0 MAC, and learns none after all-pairs traffic', async () => {
    await allPairs(pinned);
    for (const h of pinned.hosts) {
      expect((JSON.parse(await h.exec('ip', ['-j', 'link', 'show', 'ul0'])) as { address: string }[])[0].address).toBe(underlayMac(h.index));
      const got = (await neighbours(h)).filter((n) => !n.dst.startsWith('fe80:')).map((n) => `${n.dst} ${n.lladdr} ${(n.state ?? []).join(',')}`).sort();
      const want = pinned.hosts
        .filter((p) => p !== h)
        .flatMap((p) => [`${p.underlay} ${underlayMac(p.index)} PERMANENT`, `${p.underlay6} ${underlayMac(p.index)} PERMANENT`])
        .sort();
      expect(got).toEqual(want);
    }
  });

  it('with staticNeighbours false, hosts learn each other by ARP and ND', async () => {
    // Every pair answered (allPairs rejects otherwise) with no entry pinned: resolved by ARP/ND.
    // (How many learned entries remain is not asserted: the kernel may collect them at any time.)
    await allPairs(learned);
    for (const h of learned.hosts) {
      expect((await neighbours(h)).filter((n) => (n.state ?? []).includes('PERMANENT'))).toEqual([]);
    }
  });
});
