/**
 * What the agent core needs from the outside world. The core never touches real sockets or
 * timers: a real agent passes Node's clock and UDP/TCP (runtime.ts), the simulation passes a
 * virtual clock and network (sim.ts). All callbacks run on one event loop; none may block.
 */

/** An underlay address of an agent's gossip endpoint (UDP) and push-pull endpoint (TCP, same port). */
export interface Addr {
  ip: string;
  port: number;
}

export type TimerHandle = unknown;

export interface Clock {
  /** Milliseconds, monotonic enough for timeouts and the replay window. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(h: TimerHandle): void;
}

/**
 * Unreliable datagrams. `send` takes ownership of `bytes` (the caller never touches them again).
 * Incoming datagrams are handed to `AgentCore.handlePacket`.
 */
export interface PacketNet {
  send(to: Addr, bytes: Uint8Array): void;
}

/**
 * Reliable request/response of chunk sequences (push-pull over TCP). `done` is called exactly
 * once: with the reply, or with an error on timeout, refusal, or a stream over the caps. A
 * callback (not a Promise) so the virtual clock can deliver replies in simulated time. The
 * responder side calls `Agent.handleExchange`.
 */
export type ExchangeDone = (err: Error | null, reply: Uint8Array[] | null) => void;
export interface StreamNet {
  exchange(to: Addr, chunks: Uint8Array[], timeoutMs: number, done: ExchangeDone): void;
}

export const addrKey = (a: Addr): string => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`);

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
