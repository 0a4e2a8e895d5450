import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { queryControl, type AgentStatus } from '@overlay/agent';
import { createTestbed, type Testbed } from './lib/testbed.js';
import { AgentCluster } from './lib/agent-cluster.js';

/** The systemd unit's privileges without systemd: an unprivileged uid, only these capabilities (bounding and ambient), no new privileges. */
const CAPS = 'net_admin,net_raw,net_bind_service';
const NOBODY = 65534;
const setpriv = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', `--inh-caps=-all,+${CAPS.replaceAll(',', ',+')}`, `--ambient-caps=-all,+${CAPS.replaceAll(',', ',+')}`, `--bounding-set=-all,+${CAPS.replaceAll(',', ',+')}`, '--no-new-privs'];

// packaging/overlay-agent.service runs the agent as a dynamic user with CAP_NET_ADMIN, CAP_NET_RAW
// and CAP_NET_BIND_SERVICE only. Here two agents run like that (setpriv, the built bin) in two
// namespace hosts: they open their TAPs, join, and their encrypted overlay carries a ping.
describe('the agent with the unit\'s capabilities instead of root', () => {
  let tb: Testbed;
  let c: AgentCluster;
  const procs: { proc: ChildProcess; err: () => string; socket: string }[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'agent-caps-'));
  let tunMode: number | undefined;
  beforeAll(async () => {
    // What the unit's ExecStartPre does (Debian's udev default), undone afterwards if it was needed.
    const mode = statSync('/dev/net/tun').mode & 0o777;
    if (mode !== 0o666) {
      chmodSync('/dev/net/tun', 0o666);
      tunMode = mode;
    }
    chownSync(dir, NOBODY, NOBODY);
    tb = await createTestbed({ hosts: 2, prefix: 'cap' });
    c = new AgentCluster(tb.hosts, { encrypt: true });
    for (let i = 0; i < 2; i++) {
      const socket = join(dir, `a${i}.sock`);
      const file = join(dir, `a${i}.yaml`);
      writeFileSync(file, c.config(i).replace(/^controlSocket: .*$/m, `controlSocket: ${socket}`), { mode: 0o600 });
      chownSync(file, NOBODY, NOBODY);
      const proc = tb.hosts[i].spawn('setpriv', [...setpriv, process.execPath, 'packages/agent/bin/agent.js', 'run', '--config', file], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr?.on('data', (d) => (err += d));
      procs.push({ proc, err: () => err, socket });
    }
    const deadline = Date.now() + 60_000;
    for (;;) {
      const st = await Promise.all(procs.map((p) => (queryControl(p.socket) as Promise<AgentStatus>).catch(() => null)));
      if (st.every((s) => s && s.members.filter((m) => m.state === 'alive').length === 2)) break;
      for (const p of procs) if (p.proc.exitCode !== null) throw new Error(`agent exited ${p.proc.exitCode}: ${p.err()}`);
      if (Date.now() > deadline) throw new Error(`agents did not converge: ${procs.map((p) => p.err()).join('\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }, 120_000);
  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await c?.stopAll();
    await tb?.destroy();
    rmSync(dir, { recursive: true, force: true });
    if (tunMode !== undefined) chmodSync('/dev/net/tun', tunMode);
  });

  it('runs as uid 65534 with exactly those capabilities, opens its TAP and carries an encrypted ping', async () => {
    for (let i = 0; i < 2; i++) {
      const pid = procs[i].proc.pid!;
      // setpriv execs node in place: the spawned pid is the agent.
      const status = await tb.hosts[i].exec('cat', [`/proc/${pid}/status`]);
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(NOBODY));
      expect(/^NoNewPrivs:\s+(\d)/m.exec(status)?.[1]).toBe('1');
      // CAP_NET_BIND_SERVICE 10, CAP_NET_ADMIN 12, CAP_NET_RAW 13.
      const want = ((1n << 10n) | (1n << 12n) | (1n << 13n)).toString(16).padStart(16, '0');
      for (const k of ['CapEff', 'CapBnd', 'CapAmb']) expect({ k, v: new RegExp(`^${k}:\\s+([0-9a-f]+)`, 'm').exec(status)?.[1] }).toEqual({ k, v: want });
      expect((await tb.hosts[i].run('ip', ['link', 'show', 'ov0'])).code).toBe(0);
    }
    const r = await tb.hosts[0].run('ping', ['-c', '5', '-i', '0.1', '-W', '2', c.ip(1)], { timeoutMs: 20_000 });
    expect(/(\d+)% packet loss/.exec(r.stdout)?.[1]).toBe('0');
    const s = (await queryControl(procs[0].socket)) as { peers?: { up: boolean; rxBytes?: number }[] };
    expect(s.peers?.[0]).toMatchObject({ up: true });
    expect(s.peers![0].rxBytes).toBeGreaterThan(0);
  }, 60_000);
});
