/**
 * A discrete-event underlay for handshake-timing tests: N WireGuard devices on one fake clock,
 * every datagram delivered after a per-datagram delay (or dropped) chosen by the test, each
 * device's timers ticked every 100 ms at its own phase as the real interval would. Time advances
 * in 1 ms steps, so interleavings of crossing handshake messages are explored, not just one order.
 */
import { BufferPool, PacketBatch, type BatchSink, type Transport } from '@overlay/dataplane';
import { WireGuardDevice, generatePrivateKey, type WireGuardDeviceOptions } from '../../src/index.js';
import { ipv4 } from './wire.js';

export interface SimDatagram {
  from: string;
  to: string;
  bytes: Buffer;
  /** Message type: 1 initiation, 2 response, 3 cookie reply, 4 transport data. */
  type: number;
  sentAt: number;
}

/** Returns the delivery delay in ms, or null to drop. */
export type Fate = (d: SimDatagram) => number | null;

export class SimHost {
  readonly pool = new BufferPool({ count: 512, frameCapacity: 2048 });
  readonly dev: WireGuardDevice;
  /** Payloads received, with the time they arrived. */
  readonly received: { text: string; at: number }[] = [];
  sink: BatchSink | null = null;
  readonly transport: Transport;
  /** When set, datagrams leave with this source address instead (a roaming host, a NAT rebinding). */
  sourceAddr: string | null = null;

  constructor(readonly sim: Sim, readonly addr: string, readonly inner: string, readonly tickPhase: number, extra: Partial<WireGuardDeviceOptions>) {
    this.dev = new WireGuardDevice({ privateKey: generatePrivateKey(), now: sim.now, tickMs: 0, ...extra });
    const host = this;
    this.transport = {
      localPort: 51820,
      start(_pool: BufferPool, sink: BatchSink) {
        host.sink = sink;
      },
      send(pool: BufferPool, batch: PacketBatch): number {
        for (let i = 0; i < batch.count; i++) {
          const s = batch.slots[i];
          const to = Array.from(pool.addr.subarray(s * 16, s * 16 + 4)).join('.');
          const bytes = pool.copyOut(s);
          sim.post({ from: host.sourceAddr ?? host.addr, to, bytes, type: bytes[0], sentAt: sim.t });
        }
        return batch.count;
      },
      async close() {},
    };
    this.dev.attach(this.pool, this.transport);
    const out = new PacketBatch(64);
    this.transport.start(this.pool, (batch) => {
      out.clear();
      this.dev.receive(this.pool, batch, out);
      for (let i = 0; i < out.count; i++) {
        this.received.push({ text: this.pool.copyOut(out.slots[i]).subarray(20).toString(), at: sim.t });
        this.pool.release(out.slots[i]);
      }
    });
  }

  deliver(d: SimDatagram): void {
    const slot = this.pool.acquire();
    if (slot < 0) throw new Error('sim pool exhausted');
    this.pool.fill(slot, d.bytes);
    this.pool.setEndpoint(slot, 4, Buffer.from(d.from.split('.').map(Number)), 51820);
    const b = new PacketBatch(1);
    b.push(slot);
    this.sink!(b);
  }

  /** Configures `other` as a peer of this host. */
  add(other: SimHost): void {
    this.dev.setPeer({ publicKey: other.dev.publicKey, endpoint: { address: other.addr, port: 51820 }, allowedIPs: [`${other.inner}/32`] });
  }

  send(to: SimHost, text: string): number {
    const slot = this.pool.acquire();
    this.pool.fill(slot, ipv4(this.inner, to.inner, Buffer.from(text)));
    const b = new PacketBatch(1);
    b.push(slot);
    const n = this.dev.send(this.pool, b);
    this.pool.release(slot);
    return n;
  }

  got(text: string): number | undefined {
    return this.received.find((r) => r.text === text)?.at;
  }
}

export class Sim {
  t = 1_000_000;
  readonly now = (): number => this.t;
  readonly hosts: SimHost[] = [];
  readonly log: SimDatagram[] = [];
  private inFlight: { at: number; seq: number; d: SimDatagram }[] = [];
  private seq = 0;
  private readonly actions: { at: number; run: () => void }[] = [];

  constructor(public fate: Fate = () => 1) {}

  host(extra: Partial<WireGuardDeviceOptions> = {}, tickPhase = 0): SimHost {
    const n = this.hosts.length + 1;
    const h = new SimHost(this, `198.18.0.${n}`, `198.19.0.${n}`, tickPhase % 100, extra);
    this.hosts.push(h);
    return h;
  }

  post(d: SimDatagram): void {
    this.log.push(d);
    const delay = this.fate(d);
    if (delay === null) return;
    this.inFlight.push({ at: this.t + Math.max(0, delay), seq: this.seq++, d });
  }

  /** Runs `run` when the clock reaches `at` (absolute sim time). */
  at(at: number, run: () => void): void {
    this.actions.push({ at, run });
  }

  /** Advances the clock by `ms` in 1 ms steps: scheduled actions, deliveries, then due ticks. */
  run(ms: number, until?: () => boolean): void {
    const end = this.t + ms;
    while (this.t < end) {
      if (until?.()) return;
      this.t++;
      for (let i = 0; i < this.actions.length; ) {
        if (this.actions[i].at <= this.t) this.actions.splice(i, 1)[0].run();
        else i++;
      }
      for (;;) {
        const due = this.inFlight.filter((f) => f.at <= this.t).sort((x, y) => x.at - y.at || x.seq - y.seq);
        if (due.length === 0) break;
        this.inFlight = this.inFlight.filter((f) => f.at > this.t);
        for (const f of due) this.hosts.find((h) => h.addr === f.d.to)?.deliver(f.d);
      }
      for (const h of this.hosts) if (this.t % 100 === h.tickPhase) h.dev.tick();
    }
  }
}
