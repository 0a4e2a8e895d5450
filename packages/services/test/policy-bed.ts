import { expect } from 'vitest';
import { createDataplane, type Dataplane } from '@overlay/dataplane';
import { createMemoryDevice, createTestnet, type MemoryDevice, type Testnet } from '@overlay/dataplane/testing';
import { PolicyFilter, type PolicyFilterOptions, type PolicyLogEntry } from '../src/policy/filter.js';
import type { PolicyRule } from '../src/policy/rules.js';

/**
 * Three hosts on one in-memory underlay (198.18.0.1..3), each with one workload (MAC
 * 02:00:00:00:00:0n, web / db / other) and a policy filter on a fake clock; the tests of either
 * address family build their frames on top (policy-filter.test.ts, policy-filter6.test.ts).
 * Dataplanes go to `open` for the caller's afterEach to close.
 */
export interface PolicyHost {
  dp: Dataplane;
  dev: MemoryDevice;
  f: PolicyFilter;
  log: PolicyLogEntry[];
}

export const MAC = (n: number) => `02:00:00:00:00:0${n}`;
export const SYN = 0x02, ACK = 0x10, PSH = 0x08, RST = 0x04;
/** The workloads: host n's workload is n. */
export const WEB = 1, DB = 2, OTHER = 3;
/** The rules both families' tests start from: telnet denied first (admin), web → db:5432 allowed. */
export const NO_TELNET = { id: 'no-telnet', action: 'deny', proto: 'tcp', ports: ['23'] } as const satisfies PolicyRule;
export const WEB_DB = { id: 'web-db', action: 'allow', from: { groups: ['web'] }, to: { groups: ['db'] }, proto: 'tcp', ports: ['5432'] } as const satisfies PolicyRule;
const U = (n: number) => `198.18.0.${n}`;

export function policyHosts(o: { vni: number; open: Dataplane[]; filter: Omit<PolicyFilterOptions, 'clock' | 'timers' | 'log'>; identity: [string, string[]][] }) {
  const net: Testnet = createTestnet();
  const clock = { now: 10_000 };
  const hosts: PolicyHost[] = [];
  for (let i = 1; i <= 3; i++) {
    const dev = createMemoryDevice({ name: `p${o.vni}-${i}` });
    const dp = createDataplane({ transport: net.transport(U(i)), networks: [{ vni: o.vni, device: dev, unknownUnicast: 'drop' }] });
    o.open.push(dp);
    const log: PolicyLogEntry[] = [];
    const f = new PolicyFilter({ tickMs: 100, logBurst: 1000, ...o.filter, clock: () => clock.now, timers: false, log: (e) => log.push(e) });
    for (const [address, groups] of o.identity) f.identity.set(address, groups);
    dp.addStage(o.vni, f);
    dp.start();
    hosts.push({ dp, dev, f, log });
  }
  for (const h of hosts) for (let j = 1; j <= 3; j++) h.dp.setFdb(o.vni, MAC(j), { address: U(j) });
  /** Inject `frame` at workload a; returns what b's device received, clearing it. */
  const inject = async (a: number, b: number, frame: Buffer) => {
    hosts[a - 1].dev.inject(frame);
    await net.idle();
    return hosts[b - 1].dev.received.splice(0);
  };
  const tick = (ms: number) => {
    clock.now += ms;
    for (const h of hosts) h.f.tick();
  };
  return { net, hosts, inject, tick, clock };
}

type Send = (a: number, b: number, o: { sport: number; dport: number; flags: number; payload?: Uint8Array }) => Promise<unknown[]>;

/** A TCP handshake from a (port 40000) to b:5432 and `rounds` data exchanges, every segment delivered. */
export async function tcpExchange(send: Send, a: number, b: number, rounds: number): Promise<void> {
  expect(await send(a, b, { sport: 40000, dport: 5432, flags: 0x02 })).toHaveLength(1);
  expect(await send(b, a, { sport: 5432, dport: 40000, flags: 0x12 })).toHaveLength(1);
  for (let i = 0; i < rounds; i++) {
    expect(await send(a, b, { sport: 40000, dport: 5432, flags: 0x18, payload: Buffer.from('q') })).toHaveLength(1);
    expect(await send(b, a, { sport: 5432, dport: 40000, flags: 0x18, payload: Buffer.from('r') })).toHaveLength(1);
  }
}
