import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// Every program that the tests, the demo and the benchmarks spawn must be installed by
// scripts/setup.sh (bench-only tools: by bench/run.sh), so a fresh machine runs them all.
// The scan reads the sources of test/, packages/*/test/, packages/*/bench/, bench/ and scripts/
// (TypeScript and shell) for spawned programs in the call styles this project uses.

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Programs every Debian machine has before setup runs: shell builtins, the Essential packages
 * (coreutils, findutils, grep, sed, diffutils, debianutils, dash/bash, dpkg, util-linux), apt,
 * and node itself (setup runs through it).
 */
const BASE = new Set([
  // shell builtins
  ...'cd set echo exit export source . printf read mapfile readarray local shift trap command true false test [ [[ exec return wait kill eval unset declare readonly type hash umask let getopts break continue pushd popd'.split(' '),
  // Essential packages and apt
  ...'sh bash dash cat rm rmdir mkdir mktemp sleep tail head tr sort uniq dirname basename date tee timeout env ls cp mv ln chmod chown wc cut seq stat touch sync nproc id uname yes realpath readlink tac nice nohup du df grep sed find xargs diff cmp which gzip tar hostname mount umount nsenter unshare setpriv flock taskset dpkg apt-get'.split(' '),
  // the runtime
  'node', 'npx', 'npm',
]);

const NAME = /^[a-z][a-z0-9._+-]*$/;
/** Words after which a command starts: `if cmd`, `then cmd`, `exec cmd`, `! cmd`. */
const LEADING = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!', 'time', 'exec', 'builtin', 'nohup', 'sudo']);
/** Words that start no command: `for x in …`, `case … in`, `fi`, `done`. */
const SHELL_KEYWORDS = new Set('fi done for in case esac function select coproc'.split(' '));
/** Programs that run the program named after their options: `timeout 5 tcpdump`, `env -i X=1 ip`. */
const WRAPPERS = new Set(['timeout', 'env', 'nice']);

function program(word: string): string | undefined {
  const w = word.startsWith('/') ? basename(word) : word;
  return NAME.test(w) ? w : undefined;
}

/**
 * Shell text with quoted strings emptied (they are data: `node -e '…'` scripts, messages) and
 * comments removed, scanned left to right so a quote inside a comment or a # inside a string
 * does not confuse the two.
 */
function stripShell(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "'") {
      const j = text.indexOf("'", i + 1);
      out += "''";
      i = j < 0 ? text.length : j + 1;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += '""';
      i = j + 1;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      const j = text.indexOf('\n', i);
      i = j < 0 ? text.length : j;
    } else if (c === '\\') {
      out += text.slice(i, i + 2);
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The programs one simple command runs: `FOO=1 exec timeout 5 tcpdump …` runs timeout and tcpdump. */
function commandIn(words: string[], functions: Set<string>, found: string[]): void {
  let i = 0;
  for (;;) {
    while (i < words.length && (/^\w+=/.test(words[i]) || LEADING.has(words[i]))) i++;
    if (i >= words.length || SHELL_KEYWORDS.has(words[i])) return;
    const p = program(words[i]);
    if (!p || functions.has(p) || p === 'npx') return; // npx runs npm packages, not programs
    found.push(p);
    if (WRAPPERS.has(p)) {
      // the program they run follows their options, durations and assignments
      i++;
      while (i < words.length && (words[i].startsWith('-') || /^\d/.test(words[i]) || /^\w+=/.test(words[i]))) i++;
    } else if (p === 'ip' && words[i + 1] === 'netns' && words[i + 2] === 'exec') i += 4;
    else return;
  }
}

/** Programs started by shell text: a .sh file, `sh -c '…'`, a command line. */
export function programsInShell(text: string): string[] {
  let s = stripShell(text)
    .replace(/\b\w+\+?=\([^)]*\)/g, '') // array assignments
    .replace(/^\s*[^\s()]+\)/gm, '') // case patterns
    .replace(/;;/g, ';');
  const functions = new Set([...s.matchAll(/^\s*(?:function\s+)?([\w-]+)\s*\(\)/gm)].map((m) => m[1]));
  s = s.replace(/^\s*(?:function\s+)?[\w-]+\s*\(\)/gm, '');
  const found: string[] = [];
  for (const segment of s.split(/\n|;|&&|\|\||\||\$\(|<\(|`|\(|\)|\{|\}/)) commandIn(segment.trim().split(/\s+/).filter(Boolean), functions, found);
  return found;
}

/** child_process calls (also promisified: execFileAsync) and the testbed's exec/run/spawn wrappers. */
const CALL = /\b(execFile|exec|spawn|run)(?:Sync|Async|Child)?\(\s*(['"\x60])((?:(?!\2)[^\\]|\\.)*)\2/g;
const SH_C = new RegExp(String.raw`(['"])(?:sh|bash)\1\s*,\s*\[\s*(['"])-c\2\s*,\s*(['"\x60])((?:(?!\3)[^\\]|\\.)*)\3`, 'g');
const NETNS_EXEC = /(['"])netns\1\s*,\s*(['"])exec\2\s*,\s*[^,\]]+,\s*(['"`])([^'"`$\s]+)\3/g;
/** Wrappers whose argument list names the program: `'timeout', [String(s), 'tcpdump', …]`, `'taskset', ['-c', cpu, 'dnsperf', …]`. */
const WRAPPER_CALL = /(['"])(?:timeout|taskset|nice)\1\s*,\s*\[([^\]]*)/g;
const NETNS_TEXT = /\bip\s+netns\s+exec\s+\S+\s+([a-z][\w.+-]*)/g;

/** Programs started by TypeScript: child_process calls and the testbed's host.exec/run/spawn. */
export function programsInTs(text: string): string[] {
  const s = text.replace(/^\s*\/\*[\s\S]*?\*\//gm, '').replace(/(^|\s)\/\/.*$/gm, '$1');
  const found: string[] = [];
  for (const m of s.matchAll(CALL)) {
    const before = s.slice(Math.max(0, m.index - 8), m.index);
    if (/\/[dgimsuy]*\.$/.test(before)) continue; // /regex/.exec('…')
    const literal = m[3].replace(/\$\{[^}]*\}/g, 'X');
    if (/\s/.test(literal.trim())) {
      // a command line for child_process.exec; for the others a label (`run('pipeline inside', …)`)
      if (m[1] === 'exec') found.push(...programsInShell(literal));
    } else {
      const p = program(literal);
      if (p) found.push(p);
    }
  }
  for (const m of s.matchAll(SH_C)) found.push(...programsInShell(m[4].replace(/\$\{[^}]*\}/g, 'X')));
  for (const m of s.matchAll(NETNS_EXEC)) if (program(m[4])) found.push(program(m[4])!);
  for (const m of s.matchAll(WRAPPER_CALL)) {
    // the first literal that is not an option or a number: `'-c', cpu` are skipped
    const first = [...m[2].matchAll(/(['"`])([^'"`]*)\1/g)].map((x) => x[2]).find((x) => !x.startsWith('-') && !/^\d/.test(x));
    const p = first === undefined ? undefined : program(first);
    if (p) found.push(p);
  }
  for (const m of s.matchAll(NETNS_TEXT)) found.push(m[1]);
  return found;
}

/** The program names of a `name=( prog:package … )` list in a shell script. */
export function installList(script: string, name: string): Map<string, string> {
  const m = new RegExp(String.raw`^\s*${name}=\(([^)]*)\)`, 'm').exec(script);
  const out = new Map<string, string>();
  if (!m) return out;
  for (const e of m[1].replace(/#.*$/gm, '').matchAll(/([\w.+-]+):([\w.+-]+)/g)) out.set(e[1], e[2]);
  return out;
}

function walk(dir: string, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (n === 'node_modules' || n === 'dist' || n === 'build' || n === 'results') continue;
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, out);
    // tmp-* are scratch files kept out of the tree (tsconfig.check.json excludes them too)
    else if (/\.(ts|mts|js|mjs|sh)$/.test(n) && !n.endsWith('.d.ts') && !n.startsWith('tmp-')) out.push(p);
  }
  return out;
}

function sourceFiles(): string[] {
  const pkgs = readdirSync(join(root, 'packages')).flatMap((p) => [join(root, 'packages', p, 'test'), join(root, 'packages', p, 'bench')]);
  return [...['test', 'bench', 'scripts'].map((d) => join(root, d)), ...pkgs].flatMap((d) => walk(d)).concat(join(root, '.ci/run'));
}

function scan(): Map<string, Set<string>> {
  const uses = new Map<string, Set<string>>();
  const self = fileURLToPath(import.meta.url);
  for (const f of sourceFiles()) {
    if (f === self) continue; // its samples are not spawned
    const text = readFileSync(f, 'utf8');
    const shell = f.endsWith('.sh') || text.startsWith('#!/usr/bin/env bash') || text.startsWith('#!/bin/sh');
    for (const p of shell ? programsInShell(text) : programsInTs(text)) {
      if (!uses.has(p)) uses.set(p, new Set());
      uses.get(p)!.add(relative(root, f));
    }
  }
  return uses;
}

describe('program scan', () => {
  it('finds programs in every call style the project uses', () => {
    expect(programsInTs(`await h.exec('ethtool', ['-K', 'ul0', 'tx', 'off']);`)).toEqual(['ethtool']);
    expect(programsInTs(`const out = await client.exec(\n    'iperf3',\n    ['-c', dst]);`)).toEqual(['iperf3']);
    expect(programsInTs(`const r = await run('perf', ['stat']); execFileSync("nebula-cert", args);`)).toEqual(['perf', 'nebula-cert']);
    expect(programsInTs(`const c = spawnChild('tcpdump', ['-l']); spawnSync(\`wg\`, ['genkey']);`)).toEqual(['tcpdump', 'wg']);
    expect(programsInTs(`await exec('ip', ['netns', 'exec', host.name, 'nft', '-f', '-'], { input });`)).toEqual(['ip', 'nft']);
    expect(programsInTs(`host.spawn('timeout', [String(maxSeconds), 'tcpdump', '-n']);`)).toEqual(['timeout', 'tcpdump']);
    expect(programsInTs(`spawn('taskset', ['-c', CLIENT_CPU, 'dnsperf', '-s', server]); spawn('taskset', ['-c', '0', ...commands[i]]);`)).toEqual(['taskset', 'taskset', 'dnsperf']);
    expect(programsInTs(`a.spawn('sh', ['-c', 'ip -o addr show dev ul0; echo ready; sleep 600']);`).sort()).toEqual(['echo', 'ip', 'sh', 'sleep']);
    expect(programsInTs(`execFileSync('sh', ['-c', \`curl -s http://\${addr}/ | dig @\${ns} x\`]);`).sort()).toEqual(['curl', 'dig', 'sh']);
    expect(programsInTs(`const cmd = \`ip netns exec \${ns} iperf3 -s\`;`)).toEqual(['iperf3']);
    expect(programsInTs(`exec("tshark -n -l")`)).toEqual(['tshark']);
    expect(programsInTs(`const execFileAsync = promisify(execFile); await execFileAsync('setpriv', ['--bounding-set', '-net_raw']);`)).toEqual(['setpriv']);
    expect(programsInTs(`run('pipeline outside', () => 1, (d) => true);`)).toEqual([]);
    expect(programsInTs(`spawn(process.execPath, ['-e', code]); /VmRSS: (\\d+)/.exec('VmRSS 1'); sim.run(1000);`)).toEqual([]);
    expect(programsInTs(`// run('nothere', [])\n/* spawn('nor', []) */`)).toEqual([]);
  });

  it('finds the programs of shell scripts, not their data', () => {
    const sh = [
      '#!/usr/bin/env bash',
      'set -euo pipefail # exec notthis',
      'tools=(ip:iproute2',
      '  nft:nftables)',
      'quiet() { "$@" >/dev/null; }',
      'log=$(mktemp)',
      'command -v nebula >/dev/null || { export X=1; apt-get install -y nebula; }',
      "node -e 'const r = require(\"fs\"); console.log(r)' \"$out\"",
      'case "${1:-}" in',
      '  micro) shift; iperf3 -c x ;;',
      'esac',
      'if tshark -v >/dev/null; then ethtool -k ul0 | grep -q on; fi',
      'FOO=1 exec timeout 5 tcpdump -n',
      'ip netns exec ns1 wg show',
      'quiet "x" true',
    ].join('\n');
    expect(programsInShell(sh).sort()).toEqual(['apt-get', 'command', 'ethtool', 'export', 'grep', 'ip', 'iperf3', 'mktemp', 'node', 'set', 'shift', 'tcpdump', 'timeout', 'tshark', 'wg'].sort());
  });

  it('reads the prog:package lists of setup.sh and bench/run.sh', () => {
    expect([...installList('x\ntools=(\n  ip:iproute2 tc:iproute2 # a comment: no:entry\n  dig:bind9-dnsutils\n  "$@"\n)\n', 'tools')]).toEqual([
      ['ip', 'iproute2'],
      ['tc', 'iproute2'],
      ['dig', 'bind9-dnsutils'],
    ]);
  });
});

describe('scripts/setup.sh installs every program the sources spawn', () => {
  const setup = readFileSync(join(root, 'scripts/setup.sh'), 'utf8');
  const runSh = readFileSync(join(root, 'bench/run.sh'), 'utf8');
  const tools = installList(setup, 'tools');
  const benchTools = installList(runSh, 'bench_tools');

  it('the scan sees the sources of tests, benchmarks and scripts', () => {
    const files = new Set([...scan().values()].flatMap((s) => [...s]));
    for (const dir of ['test/', 'bench/', 'scripts/']) expect([...files].some((f) => f.startsWith(dir)), dir).toBe(true);
  });

  it('setup.sh checks every tool with command -v and bench/run.sh hands its tools to setup.sh', () => {
    expect(tools.size).toBeGreaterThan(0);
    expect(setup).toMatch(/command -v "\$\{t%%:\*\}"/);
    expect(setup).toMatch(/still missing after apt-get/);
    expect(benchTools.size).toBeGreaterThan(0);
    expect(runSh).toMatch(/bash scripts\/setup\.sh "\$\{bench_tools\[@\]\}"/);
  });

  it('no spawned program is left to chance', () => {
    const missing: string[] = [];
    for (const [prog, files] of scan()) {
      if (BASE.has(prog) || tools.has(prog)) continue;
      const benchOnly = [...files].every((f) => f.startsWith('bench/') || /^packages\/[^/]+\/bench\//.test(f));
      if (benchOnly && benchTools.has(prog)) continue;
      missing.push(`${prog} (spawned in ${[...files].join(', ')})`);
    }
    expect(missing, 'add program:package to tools=( … ) in scripts/setup.sh (bench-only: bench_tools in bench/run.sh)').toEqual([]);
  });

  it('the services layer tools are installed: dig and curl', () => {
    expect(tools.get('dig')).toBe('bind9-dnsutils');
    expect(tools.get('curl')).toBe('curl');
  });
});
