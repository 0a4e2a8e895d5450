/**
 * A large config file loaded off the event loop (config-off-thread.ts, LiveConfig.applyAsync with a
 * file): the same AgentConfig and the same errors as loadConfig in place, and the loop free while
 * 10 000 policy rules are parsed and validated.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LiveConfig, loadConfig, type AgentConfig } from '../src/index.js';
import { CONFIG_OFF_THREAD_MIN_BYTES, loadConfigAsync, loadConfigOffThread } from '../src/config-off-thread.js';

const dir = mkdtempSync(join(tmpdir(), 'config-off-thread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A host file with `n` policy rules, one a line as an operator writes them; `edit` changes lines. */
function bigConfig(n: number, edit: (lines: string[]) => void = () => undefined): string {
  const lines = [
    'version: 1',
    'name: host-a',
    'listen: 198.18.0.1:7946',
    `signingKey: ${Buffer.alloc(64, 1).toString('base64')}`,
    'encryption: { insecure: true }',
    'networks:',
    '  - name: blue',
    '    vni: 100',
    '    subnet: 198.19.0.0/16',
    '    device: ov0',
    '    endpoints:',
    '      - { id: a, device: ov0, mac: "02:00:00:00:00:01", ipv4: 198.19.0.1, groups: [g1] }',
    '      - { id: b, mac: "02:00:00:00:00:02", ipv4: 198.19.0.2, ipv6: "2001:db8::2" }',
    'policies:',
    '  - network: blue',
    '    defaultAction: deny',
    '    tiers:',
    '      network:',
  ];
  for (let i = 0; i < n; i++) {
    lines.push(i % 4 === 3
      ? `        - { id: r${i}, action: ${i % 3 ? 'allow' : 'deny'}, from: { cidrs: ["2001:db8::${(i % 256).toString(16)}00/120"] }, proto: udp, ports: ["${1000 + (i % 500)}-${1600 + (i % 300)}"] }`
      : `        - { id: r${i}, action: ${i % 3 ? 'allow' : 'deny'}, from: { groups: [g${i % 40}] }, to: { cidrs: [198.19.${i % 8}.${(i * 4) % 256}/30] }, proto: tcp, ports: ["${1 + (i % 2000)}"] }`);
  }
  edit(lines);
  return lines.join('\n') + '\n';
}

let files = 0;
const write = (text: string) => {
  const p = join(dir, `c${files++}.yaml`);
  writeFileSync(p, text);
  return p;
};

/** What loadConfig in place throws, and what loading in a worker rejects with. */
async function bothErrors(path: string): Promise<[unknown, unknown]> {
  let inPlace: unknown;
  try {
    loadConfig(path);
  } catch (e) {
    inPlace = e;
  }
  const off = await loadConfigOffThread(path).then(() => undefined, (e: unknown) => e);
  return [inPlace, off];
}

/**
 * How long the loop was held while `work` ran: node's event-loop delay monitor, sampling every 2 ms,
 * gives the longest delay of its timer (a load in place is one stretch as long as the load; off the
 * loop this thread only starts the worker and takes the answer). `ticks`: how many samples it took.
 */
async function stalls(work: () => unknown): Promise<{ maxGap: number; ticks: number }> {
  const h = monitorEventLoopDelay({ resolution: 2 });
  h.enable();
  await new Promise((r) => setTimeout(r, 20));
  await work();
  await new Promise((r) => setTimeout(r, 20));
  h.disable();
  return { maxGap: h.max / 1e6, ticks: h.count };
}

describe('a large config loaded off the event loop', () => {
  it('10 000 rules: the same config as in place, and the loop\'s longest stall under half of in place', async () => {
    const path = write(bigConfig(10_000));
    loadConfig(write(bigConfig(1000))); // warm: the in-place load below runs optimized code, the harder comparison
    let off: AgentConfig | undefined;
    let inPlaceCfg: AgentConfig | undefined;
    const offThread = await stalls(async () => {
      off = await loadConfigAsync(path);
    });
    const inPlace = await stalls(() => {
      inPlaceCfg = loadConfig(path);
    });
    expect(off).toStrictEqual(inPlaceCfg);
    expect(off!.policies[0].normal.rules.length).toBe(10_000);
    const msg = `longest stall ${offThread.maxGap.toFixed(1)} ms off the loop (${offThread.ticks} samples) vs ${inPlace.maxGap.toFixed(1)} ms in place (${inPlace.ticks} samples), 10 000 rules`;
    console.log(msg);
    expect(offThread.ticks, msg).toBeGreaterThan(inPlace.ticks);
    expect(offThread.maxGap, msg).toBeLessThan(0.5 * inPlace.maxGap);
  }, 120_000);

  it('errors: the same class, code, message and problems (paths) as loadConfig in place', async () => {
    const cases: Record<string, string> = {
      // the schema pass: an unknown key, a port out of range in rule 5000, a bad MAC
      schema: bigConfig(600, (l) => {
        l.splice(4, 0, 'colour: blue');
        l[18 + 500] = l[18 + 500].replace('tcp', 'sctp');
        l[11] = l[11].replace('02:00:00:00:00:01', '02:00:00:00:00');
      }),
      // the semantic pass: a rule's port validated by the policy, a duplicate rule id, an endpoint outside the subnet
      semantic: bigConfig(600, (l) => {
        l[18 + 550] = l[18 + 550].replace(/ports: \["\d+"\]/, 'ports: ["70000"]');
        l[12] = l[12].replace('198.19.0.2', '198.20.0.2');
      }),
      yaml: bigConfig(600, (l) => void (l[18 + 300] = l[18 + 300].replace(' }', ''))),
    };
    for (const [what, text] of Object.entries(cases)) {
      expect(Buffer.byteLength(text), what).toBeGreaterThanOrEqual(CONFIG_OFF_THREAD_MIN_BYTES);
      const [inPlace, off] = await bothErrors(write(text));
      expect(inPlace, what).toBeInstanceOf(Error);
      expect(off, what).toBeInstanceOf((inPlace as object).constructor as never);
      const fields = (e: unknown) => {
        const x = e as { name: string; code?: string; message: string; field?: string; problems?: unknown };
        return { name: x.name, code: x.code, message: x.message, field: x.field, problems: x.problems };
      };
      expect(fields(off), what).toEqual(fields(inPlace));
      expect((inPlace as { code?: string }).code, what).toBe('OVL_ERR_INVALID_CONFIG');
    }
    // A file that is not there: loadConfigAsync loads it in place, so it is named as loadConfig names it.
    const missing = join(dir, 'absent.yaml');
    expect(() => loadConfig(missing)).toThrow(/--config: cannot read .*absent\.yaml: ENOENT/);
    await expect(loadConfigAsync(missing)).rejects.toMatchObject({ code: 'OVL_ERR_INVALID_CONFIG', message: expect.stringMatching(/--config: cannot read .*absent\.yaml: ENOENT/) });
  }, 120_000);

  it('applyAsync with a file: a large one loaded in a worker and applied; a bad one rejects and changes nothing', async () => {
    const small = loadConfig(write(bigConfig(10)));
    const calls: string[] = [];
    const live = new LiveConfig({
      cfg: small,
      agent: { publish: () => undefined, unpublish: () => true },
      instances: () => ({ add: () => undefined, remove: () => true }),
      dataplane: { addStage: (vni: number) => void calls.push(`add ${vni}`), removeStage: () => true } as never,
      log: () => undefined,
    });
    live.start();
    expect(live.filters.get(100)!.compiled.size).toBe(10);
    const big = write(bigConfig(700));
    const plan = await live.applyAsync({ path: big });
    expect(plan.changes.length).toBeGreaterThan(0);
    expect(live.filters.get(100)!.compiled.size).toBe(700);
    expect(live.cfg.policies[0].normal.rules.length).toBe(700);
    const bad = write(bigConfig(700, (l) => void (l[18 + 650] = l[18 + 650].replace(/ports: \["\d+"\]/, 'ports: ["70000"]'))));
    let inPlace: unknown;
    try {
      loadConfig(bad);
    } catch (e) {
      inPlace = e;
    }
    await expect(live.applyAsync({ path: bad })).rejects.toMatchObject({ code: 'OVL_ERR_INVALID_CONFIG', message: (inPlace as Error).message });
    expect(live.filters.get(100)!.compiled.size).toBe(700);
    live.close();
  }, 120_000);
});
