import { describe, expect, it } from 'vitest';

// The endpoint over one agent of a simulated cluster (no root, no devices): what a scrape of an
// agent without a dataplane serves, and the HTTP surface.
describe('metrics endpoint in process (simulated cluster, no devices)', () => {
  it('serves GET /metrics with the agent families, 404 elsewhere; a taken port is refused', async () => {
    const { SimCluster, LOCAL } = await import('@overlay/agent');
    const { createMetrics, serveMetrics } = await import('../packages/agent/src/metrics.js');
    const parse = (await import('parse-prometheus-text-format')).default;
    const blue = { name: 'blue', vni: 100 };
    const c = new SimCluster({ n: 3, seed: 5, config: LOCAL, networks: [blue] });
    c.bootstrapAll();
    c.agents[0].publish(blue, { id: 'ep-0', mac: Uint8Array.of(2, 0, 0, 0, 0, 1), ipv4: Uint8Array.of(198, 19, 0, 1) });
    c.clock.runUntilTrue(() => c.agents[0].status().members.filter((m) => m.state === 'alive').length === 3, 20_000, 50);
    c.clock.runUntilTrue(() => false, 3_000, 50); // a few probe rounds (simulated time)
    const m = createMetrics({ agent: c.agents[0], networks: [blue] });
    const srv = await serveMetrics({ ip: '127.0.0.1', port: 0 }, m);
    try {
      const res = await fetch(`http://127.0.0.1:${srv.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const fams = parse(await res.text());
      const v = (name: string, labels: Record<string, string>) => Number(fams.find((f) => f.name === name)?.metrics.find((s) => Object.entries(labels).every(([k, x]) => s.labels?.[k] === x))?.value);
      expect(v('overlay_agent_members', { state: 'alive' })).toBe(3);
      expect(v('overlay_agent_endpoints', { network: 'blue', state: 'active' })).toBe(1);
      expect(v('overlay_agent_gossip_total', { counter: 'packets_received' })).toBeGreaterThan(0);
      expect(v('overlay_agent_membership_total', { counter: 'probes' })).toBeGreaterThan(0);
      // No host: the dataplane families are declared with their help, without samples.
      expect(fams.find((f) => f.name === 'overlay_dataplane_drops_total')?.metrics).toEqual([]);
      // The process's memory: resident = anonymous + file-backed (+ shmem), read in one scrape; no pool without a host.
      const mem = (kind: string) => v('overlay_agent_memory_bytes', { kind });
      expect(mem('rss_anon') + mem('rss_file')).toBeGreaterThan(mem('rss') - (4 << 20));
      expect(mem('rss_anon') + mem('rss_file')).toBeLessThan(mem('rss') + (4 << 20));
      expect(mem('heap_used')).toBeLessThanOrEqual(mem('heap_total'));
      expect(mem('array_buffers')).toBeLessThanOrEqual(mem('external'));
      expect(Number.isNaN(mem('pool_slab'))).toBe(true);
      expect((await fetch(`http://127.0.0.1:${srv.port}/`)).status).toBe(404);
      await expect(serveMetrics({ ip: '127.0.0.1', port: srv.port }, m)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await srv.close();
      for (const a of c.agents) a.stop();
    }
  });
});
