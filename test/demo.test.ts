import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './lib/vtep.js';

// The README's main command end to end (scripts/demo.ts, which scripts/demo.sh runs after setup):
// three namespace hosts with agents, encrypted ping, iperf3, a metrics scrape parsed by an
// independent Prometheus text-format parser, the service `web` at the resolver, health removal.
describe('the README demo', () => {
  it('runs to "demo: ok", with the metrics endpoint parsed and every counter shown a number', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--conditions=source', '--import', 'tsx', 'scripts/demo.ts'], { cwd: repoRoot, timeout: 240_000, maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`demo failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
    });
    expect(out).toMatch(/\ndemo: ok\n/);
    const families = Number(/metrics: (\d+) families parsed/.exec(out)?.[1]);
    expect(families).toBeGreaterThan(20);
    // Traffic moved: frames in from the TAP, tunnel packets out, gossip packets sent; no NaN.
    for (const name of ['overlay_dataplane_inside_total', 'overlay_crypto_tunnel_total', 'overlay_agent_gossip_total']) {
      const v = Number(new RegExp(`${name}\\S* (\\S+)`).exec(out)?.[1]);
      expect(v, name).toBeGreaterThan(0);
    }
    expect(out).toMatch(/gone from every host's answers after \d+ ms/);
  }, 300_000);
});
