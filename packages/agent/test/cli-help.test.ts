import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { COMMANDS, EXIT_CODES } from '../src/cli.js';

// The installed command: the package's bin over dist (scripts/setup.sh builds it), as an operator runs it.
const BIN = ['packages/agent/bin/agent.js'];

function agent(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [...BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

// The real process for every command of cli.ts's one list (a command added there is covered
// here without editing this file): --help and -h exit 0 and print that command's usage line;
// the top-level help names every command and the exit codes; --version prints the version.
describe('agent CLI help', () => {
  it('has commands', () => {
    expect(COMMANDS).toEqual(expect.arrayContaining(['run', 'check', 'status', 'keygen']));
    expect(new Set(COMMANDS).size).toBe(COMMANDS.length);
  });

  it('every command answers --help and -h with exit 0 and its usage line', async () => {
    // Two at a time: the machine running the suite has two cores.
    const todo = COMMANDS.flatMap((cmd) => [['--help'], ['-h']].map((flag) => ({ cmd, flag })));
    const runs: { cmd: string; flag: string[]; r: Awaited<ReturnType<typeof agent>> }[] = [];
    const worker = async () => {
      for (let t = todo.shift(); t; t = todo.shift()) runs.push({ ...t, r: await agent([t.cmd, ...t.flag]) });
    };
    await Promise.all([worker(), worker()]);
    for (const { cmd, flag, r } of runs) {
      expect({ cmd, flag, code: r.code, stderr: r.stderr }).toEqual({ cmd, flag, code: 0, stderr: '' });
      const first = r.stdout.split('\n')[0];
      expect(first).toMatch(cmd === 'run' ? /^usage: agent \[run\]/ : new RegExp(`^usage: agent ${cmd}\\b`));
    }
  }, 180_000);

  it('top-level --help lists every command, --version prints the package version; both exit 0', async () => {
    const [help, h, v] = await Promise.all([agent(['--help']), agent(['-h']), agent(['--version'])]);
    for (const r of [help, h]) {
      expect(r.code).toBe(0);
      expect(r.stdout.startsWith('usage:\n')).toBe(true);
      for (const cmd of COMMANDS) expect(r.stdout).toMatch(cmd === 'run' ? /agent \[run\]/ : new RegExp(`\\n  agent ${cmd}\\b`));
      expect(r.stdout).toContain(EXIT_CODES);
    }
    const version = (JSON.parse(readFileSync('packages/agent/package.json', 'utf8')) as { version: string }).version;
    expect(v).toEqual({ code: 0, stdout: `agent ${version}\n`, stderr: '' });
  }, 60_000);

  it('the README documents the same exit codes', () => {
    expect(readFileSync('README.md', 'utf8')).toContain(EXIT_CODES);
  });
});
