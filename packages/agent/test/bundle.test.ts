import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleFresh } from '../scripts/bundle.mjs';

// The single-bundle build the bin runs (scripts/bundle.mjs, docs/agent-memory.md), built here into a
// temporary directory from the dist/ that setup.sh built: it must be the same program as dist/cli.js
// (same output and exit code for the same command line), and the bin must stop using it once any
// file it was built from is newer.

const dir = mkdtempSync(join(tmpdir(), 'agent-bundle-'));
const out = join(dir, 'bundle');

type Answer = { args: string[]; code: number | string; stdout: string; stderr: string };

/** Every command line through main() of `file` in one process (what the bin does: main(argv), its result the exit code), output captured. */
function runAll(file: string, cases: string[][]): Promise<Answer[]> {
  const runner = `
    const [entry, cases] = process.argv.slice(1);
    const { main } = await import(entry);
    const out = process.stdout.write.bind(process.stdout), err = process.stderr.write.bind(process.stderr);
    const answers = [];
    for (const args of JSON.parse(cases)) {
      const a = { args, code: -1, stdout: '', stderr: '' };
      process.stdout.write = (c) => ((a.stdout += c), true);
      process.stderr.write = (c) => ((a.stderr += c), true);
      try { a.code = await main(args); } catch (e) { a.code = 'threw ' + String(e); }
      process.stdout.write = out; process.stderr.write = err;
      answers.push(a);
    }
    out(JSON.stringify(answers));`;
  return new Promise((done, fail) => {
    execFile('node', ['--input-type=module', '-e', runner, pathToFileURL(resolve(file)).href, JSON.stringify(cases)], { timeout: 60_000 }, (err, stdout, stderr) =>
      err ? fail(new Error(`${err.message}\n${stderr}`)) : done(JSON.parse(stdout) as Answer[]),
    );
  });
}

const config = (extra: string) =>
  [
    'name: bundle-a0',
    'listen: 127.0.0.1:7946',
    'seeds: [127.0.0.1:7946]',
    `signingKey: ${Buffer.alloc(64, 7).toString('base64')}`,
    'encryption:',
    `  clusterKeys: [${Buffer.alloc(32, 9).toString('base64')}]`,
    'networks:',
    '  - name: blue',
    '    vni: 100',
    '    subnet: 198.19.0.0/24',
    '    device: ov0',
    '    endpoints:',
    `      - { id: ep-0, device: ov0, mac: "02:00:00:00:01:01", ipv4: 198.19.0.1${extra} }`,
    '',
  ].join('\n');

beforeAll(async () => {
  await new Promise<void>((done, fail) =>
    execFile('node', ['packages/agent/scripts/bundle.mjs', '--out', out], { timeout: 120_000 }, (err, stdout, stderr) => (err ? fail(new Error(`${err.message}\n${stdout}${stderr}`)) : done())),
  );
  writeFileSync(join(dir, 'good.yaml'), config(''), { mode: 0o600 });
  // Shape problems (ajv, bundled) and a semantic one: every message must be the same.
  writeFileSync(join(dir, 'bad.yaml'), config(', extra: 1 }\n      - { id: ep-0, device: ov0, mac: "02:00:00:00:01:02", ipv4: 198.19.0.300'), { mode: 0o600 });
}, 150_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('agent bundle', () => {
  it('is built from dist/cli.js and the packages it imports, every input listed', () => {
    expect(bundleFresh(out)).toBe(true);
    const inputs = JSON.parse(readFileSync(join(out, 'inputs.json'), 'utf8')) as string[];
    const files = inputs.map((f) => resolve(out, f));
    expect(files).toContain(resolve('packages/agent/dist/cli.js'));
    for (const f of files) expect(existsSync(f), f).toBe(true);
    expect(inputs.some((f) => f.endsWith('services/dist/index.js'))).toBe(true);
  });

  it('answers every command line here as dist/cli.js does', async () => {
    const cases = [['--version'], ['--help'], ['check', '--config', join(dir, 'good.yaml')], ['check', '--config', join(dir, 'bad.yaml')], ['check', '--config', join(dir, 'missing.yaml')], ['status', '--socket', join(dir, 'no.sock')], ['frobnicate']];
    const [bundled, unbundled] = await Promise.all([runAll(join(out, 'cli.js'), cases), runAll('packages/agent/dist/cli.js', cases)]);
    expect(bundled).toEqual(unbundled);
    // The cases cover success, a bad config (exit 2, the schema's and the semantic pass's messages) and a failure.
    expect(bundled.map((a) => a.code)).toEqual([0, 0, 0, 2, 2, 1, 2]);
    expect(bundled[3].stderr).toMatch(/unknown field[\s\S]*not an IPv4 address/);
  }, 60_000);

  it('is stale once an input is newer, listed input is missing, or the list is absent', () => {
    const d = join(dir, 'fresh');
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d);
    writeFileSync(join(d, 'cli.js'), '');
    writeFileSync(join(d, 'input.js'), '');
    const now = Date.now() / 1000;
    utimesSync(join(d, 'cli.js'), now, now);
    utimesSync(join(d, 'input.js'), now - 60, now - 60);
    expect(bundleFresh(d)).toBe(false); // no inputs.json
    writeFileSync(join(d, 'inputs.json'), JSON.stringify(['./input.js']));
    expect(bundleFresh(d)).toBe(true);
    utimesSync(join(d, 'input.js'), now + 60, now + 60);
    expect(bundleFresh(d)).toBe(false);
    writeFileSync(join(d, 'inputs.json'), JSON.stringify(['./gone.js']));
    expect(bundleFresh(d)).toBe(false);
  });
});
