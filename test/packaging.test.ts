import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const UNIT = 'packaging/overlay-agent.service';

/** The unit's sections as key → values (a key may repeat). Comments and blank lines skipped. */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1];
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 1 || !section) throw new Error(`not a unit line: ${line}`);
    (out[section][line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return out;
}


describe('systemd unit', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'));
  const svc = unit.Service;

  it('is hardened: capabilities instead of root, read-only system, private tmp, no new privileges', () => {
    expect(Object.keys(unit)).toEqual(['Unit', 'Service', 'Install']);
    const one = (k: string) => {
      expect(svc[k], k).toHaveLength(1);
      return svc[k][0];
    };
    expect(one('DynamicUser')).toBe('yes');
    expect(one('CapabilityBoundingSet').split(' ').sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW']);
    expect(one('AmbientCapabilities')).toBe(one('CapabilityBoundingSet'));
    for (const [k, v] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', PrivateTmp: 'yes', ProtectHome: 'yes', ProtectKernelModules: 'yes', RestrictSUIDSGID: 'yes', DevicePolicy: 'closed', DeviceAllow: '/dev/net/tun rw', RestartPreventExitStatus: '2', KillSignal: 'SIGTERM' })) expect({ k, v: one(k) }).toEqual({ k, v });
    // The only writable path is the runtime directory, where the control socket goes.
    expect(one('ReadWritePaths')).toBe(`/run/${one('RuntimeDirectory')}`);
    // The config (it holds keys) arrives as a credential; ExecStart runs the package's bin on it.
    const [name, path] = one('LoadCredential').split(':');
    expect(path).toBe('/etc/overlay/agent.yaml');
    // node, its flags (the V8 flags of the bin's shebang: bin/agent.js says why), the bin, its arguments.
    const [node, ...rest] = one('ExecStart').split(' ');
    expect(node).toBe('/usr/bin/node');
    const line = /^#!.*$/m.exec(readFileSync('packages/agent/bin/agent.js', 'utf8'))?.[0] ?? '';
    const shebang = /\bnode\b(.*)$/.exec(line)?.[1].trim().split(/\s+/);
    expect(shebang?.length).toBeGreaterThan(0);
    // and the environment it sets for node (`env -S NAME=VALUE … node`: glibc's malloc settings).
    const env = /^#!\S*env -S((?: \w+=\S+)*) node\b/.exec(line)?.[1].trim().split(' ');
    expect(env?.length).toBeGreaterThan(0);
    expect(svc.Environment?.flatMap((e) => e.split(' '))).toEqual(env);
    expect(rest.slice(0, shebang!.length)).toEqual(shebang);
    const exec = [node, ...rest.slice(shebang!.length)];
    expect(exec.slice(2)).toEqual(['run', '--config', `%d/${name}`]);
    expect(exec[1].endsWith('/packages/agent/bin/agent.js')).toBe(true);
    expect(existsSync(exec[1].replace(/^\/opt\/overlay\//, ''))).toBe(true);
    // The one privileged step: /dev/net/tun readable by the dynamic user (Debian's default mode).
    expect(one('ExecStartPre')).toBe('+/bin/chmod 0666 /dev/net/tun');
    expect(unit.Install.WantedBy).toEqual(['multi-user.target']);
  });

  // scripts/setup.sh installs systemd for systemd-analyze.
  it('passes systemd-analyze verify without a warning', () => {
    const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8', cwd: process.cwd() });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });
});

describe('licence and package READMEs', () => {
  it('LICENSE is Apache-2.0, as every package.json says', () => {
    expect(readFileSync('LICENSE', 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    const pkgs = execFileSync('sh', ['-c', 'ls -d packages/*/package.json'], { encoding: 'utf8' }).trim().split('\n');
    for (const p of pkgs) {
      const j = JSON.parse(readFileSync(p, 'utf8')) as { name: string; license: string };
      expect({ p, license: j.license }).toEqual({ p, license: 'Apache-2.0' });
      const readme = p.replace('package.json', 'README.md');
      expect(existsSync(readme), readme).toBe(true);
      const text = readFileSync(readme, 'utf8');
      expect(text.startsWith(`# ${j.name}\n`), readme).toBe(true);
      // Links to docs resolve inside the repository.
      for (const m of text.matchAll(/\]\((\.\.?\/[^)#]+)/g)) expect(existsSync(readme.replace(/README\.md$/, '') + m[1]), `${readme} → ${m[1]}`).toBe(true);
    }
  });
});
