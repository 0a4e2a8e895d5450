/**
 * Real agents with services in testbed namespaces (the AgentCluster configs plus a `web` service
 * instance on chosen hosts and a service of its own per host), health-checked by an exec check on
 * a flag file the test creates and removes, and answers read with `dig` from each host at the
 * network's resolver address (answered inside that host's dataplane). Shared by
 * test/services-agent.test.ts and bench/services-freshness.ts.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentCluster, type AgentClusterOptions } from './agent-cluster.js';
import type { TestHost } from './testbed.js';

export const RESOLVER = '198.19.0.254';

export interface ServiceClusterOptions extends AgentClusterOptions {
  /** Hosts (indexes) running an instance of `web`. */
  web: number[];
  /** Health check timing (Compose fields). */
  interval?: string;
  retries?: number;
  /** Serve Prometheus metrics on 127.0.0.1:PORT inside each host's namespace. */
  metricsPort?: number;
}

export class ServiceCluster extends AgentCluster {
  readonly flags: string;

  constructor(hosts: TestHost[], readonly so: ServiceClusterOptions) {
    super(hosts, so);
    this.flags = join(this.dir, 'up');
    mkdirSync(this.flags);
    for (let i = 0; i < hosts.length; i++) this.setHealthy(i, true);
  }

  /** The flag file host i's `web` check tests for. */
  flag(i: number): string {
    return join(this.flags, `web-${i}`);
  }

  setHealthy(i: number, up: boolean): void {
    if (up) writeFileSync(this.flag(i), '');
    else rmSync(this.flag(i), { force: true });
  }

  override config(i: number, endpointIp?: string, seedIndex?: number): string {
    const hc = `{ test: ["CMD", "/usr/bin/test", "-e", "${this.flag(i)}"], interval: ${this.so.interval ?? '500ms'}, timeout: 1s, retries: ${this.so.retries ?? 2}, rise: 1, damp: 1s }`;
    const lines = [
      `services:`,
      `  - name: own-${i}`,
      `    network: blue`,
      `    instances: [{ id: own-${i}, endpoint: ep-${i}, ports: [{ port: 7000, proto: udp }] }]`,
    ];
    if (this.so.web.includes(i)) {
      lines.push(`  - name: web`, `    network: blue`, `    instances: [{ id: web-${i}, endpoint: ep-${i}, ports: [{ port: 8080, name: http }] }]`, `    healthcheck: ${hc}`);
    }
    if (this.so.metricsPort) lines.push(`metrics: { listen: 127.0.0.1:${this.so.metricsPort} }`);
    return super.config(i, endpointIp, seedIndex) + lines.join('\n') + '\n';
  }
}

/**
 * The A records `host` gets for `name` from the resolver, or null for NXDOMAIN / no answer
 * (dig's status line says which: `nx` is set for NXDOMAIN).
 */
export async function dig(host: TestHost, name: string): Promise<{ addrs: string[]; status: string }> {
  const r = await host.run('dig', [`@${RESOLVER}`, name, 'A', '+time=1', '+tries=1', '+noall', '+answer', '+comments'], { timeoutMs: 5_000 });
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? (r.code === 0 ? 'UNKNOWN' : 'TIMEOUT');
  const addrs = [...r.stdout.matchAll(/\sIN\s+A\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]).sort();
  return { addrs, status };
}

/** Poll `dig` on `hosts` every ~100 ms until `pred` holds for all; ms elapsed since `t0`, or throws after maxMs. */
export async function untilAnswers(hosts: TestHost[], name: string, pred: (a: { addrs: string[]; status: string }) => boolean, t0: number, maxMs: number): Promise<number> {
  for (;;) {
    const all = await Promise.all(hosts.map((h) => dig(h, name)));
    if (all.every(pred)) return Date.now() - t0;
    if (Date.now() - t0 > maxMs) throw new Error(`answers for ${name} not as expected within ${maxMs} ms: ${JSON.stringify(all)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** median / p90 / max of a sample (nearest rank). */
export function summary(xs: number[]): { n: number; median: number; p90: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, median: rank(0.5), p90: rank(0.9), max: s[s.length - 1] };
}
