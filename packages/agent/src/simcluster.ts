/**
 * A whole cluster of agents in one process on a VirtualClock/VirtualNetwork — the embedder-facing
 * fake (like hyperdht's createTestnet). Used by the simulation tests and bench/sim-agent.ts.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { Agent, type AgentEvents, type AgentOptions } from './agent.js';
import type { Addr } from './env.js';
import { Keyring, PlainSealer, type Sealer } from './keyring.js';
import type { MembershipConfig } from './presets.js';
import { VirtualClock, VirtualNetwork, seededRandom } from './sim.js';
import type { DataplaneControl } from './program.js';

export interface SimClusterOptions {
  n: number;
  loss?: number;
  /** TCP-like stream exchanges losing each segment with this probability (VirtualNetwork streamLoss); default reliable. */
  streamLoss?: number;
  seed?: number;
  config?: MembershipConfig;
  /** Seal packets with a real keyring (slower); default plaintext framing. */
  encrypt?: boolean;
  networks?: { name: string; vni: number }[];
  events?: (i: number) => AgentEvents | undefined;
  dataplane?: (i: number) => DataplaneControl | undefined;
  extra?: Partial<AgentOptions>;
  /** Options for agent i only (applied after `extra`), e.g. a newer node's record extension. */
  agent?: (i: number) => Partial<AgentOptions> | undefined;
}

const keyCache = new Map<string, Uint8Array>();
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * Agent i's signing key for a seed (tweetnacl format: seed ‖ public key), derived with Node's
 * Ed25519 (tweetnacl's derivation took ~80 ms a key on a loaded machine; the same key) and cached
 * across clusters of one process.
 */
function simKey(i: number, seedNo: number): Uint8Array {
  const id = `${i}/${seedNo}`;
  let k = keyCache.get(id);
  if (!k) {
    const seed = new Uint8Array(32);
    new DataView(seed.buffer).setUint32(0, i + 1);
    new DataView(seed.buffer).setUint32(4, seedNo);
    const pub = createPublicKey(createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }).subarray(12);
    k = new Uint8Array(64);
    k.set(seed, 0);
    k.set(pub, 32);
    keyCache.set(id, k);
  }
  return k;
}

export class SimCluster {
  readonly clock = new VirtualClock();
  readonly net: VirtualNetwork;
  readonly agents: Agent[] = [];
  readonly addrs: Addr[] = [];
  readonly keys: Uint8Array[] = [];
  private readonly sealer: Sealer;
  private readonly rnd: () => number;
  private boots = 0;

  constructor(private readonly o: SimClusterOptions) {
    this.net = new VirtualNetwork(this.clock, { loss: o.loss ?? 0, streamLoss: o.streamLoss, seed: o.seed ?? 1 });
    this.rnd = seededRandom((o.seed ?? 1) * 7919 + 13);
    this.sealer = o.encrypt ? new Keyring([new Uint8Array(32).fill(7)]) : new PlainSealer();
    for (let i = 0; i < o.n; i++) {
      this.keys.push(simKey(i, o.seed ?? 1));
      this.addrs.push({ ip: `198.18.${(i >> 8) & 255}.${i & 255}`, port: 7946 });
      this.agents.push(this.make(i));
    }
  }

  static nameOf(i: number): string {
    return `node-${i}`;
  }

  private make(i: number): Agent {
    const addr = this.addrs[i];
    const io = this.net.endpoint(addr);
    const a = new Agent({
      name: SimCluster.nameOf(i),
      advertise: addr,
      signingKey: this.keys[i],
      sealer: this.sealer,
      config: this.o.config,
      clock: this.clock,
      random: seededRandom(((this.o.seed ?? 1) << 16) ^ (i * 2654435761) ^ this.boots++),
      packets: io,
      streams: io,
      networks: this.o.networks,
      events: this.o.events?.(i),
      dataplane: this.o.dataplane?.(i),
      ...this.o.extra,
      ...this.o.agent?.(i),
    });
    this.net.attach(addr, a);
    return a;
  }

  /** Start every agent and make all members known to all (as if joined long ago). */
  bootstrapAll(): void {
    for (const a of this.agents) a.start();
    const alives = this.agents.map((a) => a.membership.selfAlive());
    for (const a of this.agents) for (const al of alives) a.membership.merge(al, 0, true);
    for (const a of this.agents) a.queue.drop(`n:${a.name}`);
  }

  /** Crash agent i: timers stop, packets to it vanish. */
  kill(i: number): void {
    this.agents[i].stop();
    this.net.detach(this.addrs[i]);
  }

  /** Restart agent i as a fresh process (empty state, later session), joining via `seed`. */
  async restart(i: number, seed: number): Promise<Agent> {
    this.kill(i);
    const a = this.make(i);
    this.agents[i] = a;
    a.start();
    const p = a.join([this.addrs[seed]]);
    this.clock.runFor(50);
    await p;
    return a;
  }

  /** Run `ms` of simulated time. */
  run(ms: number): void {
    this.clock.runFor(ms);
  }
  random(): number {
    return this.rnd();
  }
}
