import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createTestbed, NetemUnsupportedError, waitForLine, type Testbed } from './lib/testbed.js';

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

describe('testbed', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await createTestbed({ hosts: 3, ipv6: true });
  });
  afterAll(async () => {
    await tb?.destroy();
  });

  it('joins hosts through the bridge over IPv4 and IPv6', async () => {
    const [a, b, c] = tb.hosts;
    expect(a.underlay).toBe('198.18.0.1');
    expect(c.underlay6).toBe('2001:db8::3');
    await a.exec('ping', ['-c', '1', '-W', '2', b.underlay]);
    await c.exec('ping', ['-c', '1', '-W', '2', '-6', a.underlay6!]);
  });

  it('partitions and heals', async () => {
    const [a, b, c] = tb.hosts;
    await tb.partition([a], [b]);
    expect((await a.run('ping', ['-c', '1', '-W', '1', b.underlay])).code).not.toBe(0);
    expect((await b.run('ping', ['-c', '1', '-W', '1', a.underlay])).code).not.toBe(0);
    await a.exec('ping', ['-c', '1', '-W', '2', c.underlay]);
    await tb.heal();
    await a.exec('ping', ['-c', '1', '-W', '2', b.underlay]);
  });

  it('adds random loss on a host underlay and removes it', async () => {
    const [a, b] = tb.hosts;
    await tb.netem(a, 'loss 50%');
    const lossy = await a.run('ping', ['-c', '40', '-i', '0.01', '-W', '1', '-q', b.underlay]);
    const lost = Number(/([\d.]+)% packet loss/.exec(lossy.stdout)![1]);
    // 40 pings at 50% loss: P(loss < 15%) is about 1e-6.
    expect(lost).toBeGreaterThan(15);
    expect(lost).toBeLessThan(100);
    await tb.clearNetem(a);
    const clean = await a.exec('ping', ['-c', '20', '-i', '0.01', '-W', '1', '-q', b.underlay]);
    expect(clean).toContain(' 0% packet loss');
  });

  it('delays with netem where the kernel has it, else refuses with a typed error', async () => {
    const [a, b] = tb.hosts;
    try {
      await tb.netem(a, 'delay 100ms');
    } catch (err) {
      expect(err).toBeInstanceOf(NetemUnsupportedError);
      return;
    }
    const out = await a.exec('ping', ['-c', '1', '-W', '3', b.underlay]);
    expect(Number(/time=([\d.]+)/.exec(out)![1])).toBeGreaterThanOrEqual(100);
    await tb.clearNetem(a);
  });

  it('runs processes inside the namespace and kills them on destroy', async () => {
    const [a] = tb.hosts;
    const child = a.spawn('sh', ['-c', 'ip -o addr show dev ul0; echo ready; sleep 600']);
    const line = await waitForLine(child, /ready/);
    expect(line).toBe('ready');
    const other = await createTestbed({ hosts: 2 });
    const p = other.hosts[0].spawn('sleep', ['600']);
    const exited = new Promise((r) => p.once('exit', r));
    expect(namespaces()).toContain(other.hosts[1].name);
    await other.destroy();
    await exited;
    expect(namespaces()).not.toContain(other.hosts[0].name);
    expect(namespaces()).not.toContain(other.bridgeNamespace);
  });

  it('cleans up when the creating process dies without destroy()', async () => {
    // A child process makes a testbed and is killed by SIGTERM: its exit hook removes it.
    const script = `
      import { createTestbed } from './test/lib/testbed.ts';
      const tb = await createTestbed({ hosts: 2, prefix: 'tbk' });
      console.log('made ' + tb.hosts[0].name);
      setInterval(() => {}, 1000);
    `;
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('..', import.meta.url).pathname,
      stdio: 'pipe',
    });
    try {
      const line = await waitForLine(child, /^made /, 30_000);
      const ns = line.slice(5).trim();
      expect(namespaces()).toContain(ns);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      expect(namespaces()).not.toContain(ns);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
