// Issue 15: an agent whose WireGuard data path runs the native addon's AEAD (what openHost passes,
// @overlay/native resolveAead()) must not load sodium-native at all: its JS, the sources of its
// loader dependencies and the shared library cost about 1 MiB resident. A child process imports
// the agent's modules (cli.ts and what it loads on demand: @overlay/host, @overlay/crypto,
// @overlay/native), then runs two WireGuard devices on the native AEAD through a cookie reply
// (XChaCha20-Poly1305), a handshake and data both ways, and reports whether any sodium-native
// file is mapped (/proc/self/maps) or in the CommonJS module cache. The control run
// (OVERLAY_AEAD_IMPL=sodium, the libsodium fallback) must see it loaded, so the probe can fail.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const CHILD = `
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const R = ${JSON.stringify(ROOT)};
await import(R + 'packages/agent/src/cli.ts');
await import(R + 'packages/host/src/index.ts');
const { resolveAead } = await import(R + 'packages/native/src/index.ts');
const { makeSide, connect, Clock } = await import(R + 'packages/crypto/test/helpers/pair.ts');
const { Wire } = await import(R + 'packages/crypto/test/helpers/wire.ts');
const aead = resolveAead();
const wire = new Wire();
const clock = new Clock();
const a = makeSide(wire, clock, '198.18.0.1', '198.19.0.1', { aead });
const b = makeSide(wire, clock, '198.18.0.2', '198.19.0.2', { aead, underLoadThreshold: 0 });
connect(a, b);
a.sendIp('198.19.0.2', Buffer.from('first'));
wire.flush();
clock.advance(6000, a.dev, b.dev);
wire.flush();
b.sendIp('198.19.0.1', Buffer.from('back'));
wire.flush();
const types = [...new Set(wire.log.map((d) => d.bytes[0]))].sort();
const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('sodium'));
const cached = Object.keys(createRequire(R + 'x.js').cache).filter((k) => k.includes('sodium'));
console.log(JSON.stringify({ native: aead !== undefined, toB: b.received.length, toA: a.received.length, types, maps, cached }));
a.end.close?.(); b.end.close?.();
process.exit(0);
`;

interface Probe { native: boolean; toB: number; toA: number; types: number[]; maps: string[]; cached: string[] }

function probe(aeadImpl: string | undefined): Probe {
  const env = { ...process.env };
  delete env.OVERLAY_AEAD_IMPL;
  if (aeadImpl !== undefined) env.OVERLAY_AEAD_IMPL = aeadImpl;
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', CHILD], {
    cwd: ROOT, env, encoding: 'utf8', timeout: 50_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Probe;
}

describe('the agent does not load sodium-native on its run path', () => {
  it('native AEAD: cookie reply, handshake and data both ways, and no sodium-native mapped or required', () => {
    const p = probe(undefined);
    expect(p.native).toBe(true);
    expect(p.types).toEqual([1, 2, 3, 4]); // initiation, response, cookie reply, data
    expect(p.toB).toBe(1);
    expect(p.toA).toBe(1);
    expect(p.maps).toEqual([]);
    expect(p.cached).toEqual([]);
  }, 60_000);

  it('control: the libsodium fallback (OVERLAY_AEAD_IMPL=sodium) loads it, and the probe sees that', () => {
    const p = probe('sodium');
    expect(p.native).toBe(false);
    expect(p.toB).toBe(1);
    expect(p.toA).toBe(1);
    expect(p.maps.some((l) => l.includes('sodium-native'))).toBe(true);
    expect(p.cached.some((k) => k.includes('sodium-native'))).toBe(true);
  }, 60_000);
});
