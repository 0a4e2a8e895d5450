/**
 * `agent revoke` against a real control socket (serveControl) whose `revoke` line goes to a
 * simulated pki agent (revokeCommand): the revocation is signed with DIR's CA, applied by the
 * agent, and the member it names is evicted; refusals are exit codes, not crashes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { TrustedCas, createCa, encodePem, generateWireGuardKey, signCert } from '@overlay/pki';
import { pkiMain } from '../src/cli-pki.js';
import { serveControl } from '../src/runtime.js';
import { revokeCommand } from '../src/pki-run.js';
import { SimCluster } from '../src/simcluster.js';
import { VirtualClock } from '../src/sim.js';

/** Certificates are valid in the simulated cluster's time. */
const START = new VirtualClock().now();

const dir = mkdtempSync(join(tmpdir(), 'agent-revoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await pkiMain(args, (s) => void (stdout += s), (s) => void (stderr += s));
  return { code, stdout, stderr };
}

describe('agent revoke', () => {
  it('signs with the CA, the running agent evicts the member; usage and refusals are exit 2 and 1', async () => {
    // The CA in DIR's files (as `agent ca init` writes them), valid in the simulated time.
    const ca = createCa({ name: 'revoke-ca', now: START - 10_000 });
    writeFileSync(join(dir, 'ca.crt'), encodePem('CERTIFICATE', ca.cert.bytes));
    writeFileSync(join(dir, 'ca.key'), encodePem('ED25519 PRIVATE KEY', ca.seed), { mode: 0o600 });
    const wg = [0, 1, 2].map(() => generateWireGuardKey());
    const c: SimCluster = new SimCluster({
      n: 3,
      seed: 5,
      agent: (i) => {
        const seed = new Uint8Array(32);
        new DataView(seed.buffer).setUint32(0, i + 1);
        new DataView(seed.buffer).setUint32(4, 5);
        const cert = signCert(ca, { name: SimCluster.nameOf(i), prefixes: [`198.19.0.${i + 1}/32`], groups: [], wgKey: wg[i].publicKey, signKey: nacl.sign.keyPair.fromSeed(seed).publicKey, now: START - 1000 });
        if (i === 2) writeFileSync(join(dir, 'node2.crt'), encodePem('CERTIFICATE', cert.bytes));
        return { pki: { trusted: new TrustedCas([ca.cert]), cert: cert.bytes }, wireguard: { publicKey: Buffer.from(wg[i].publicKey).toString('base64'), port: 4789 } };
      },
    });
    c.bootstrapAll();
    c.run(2000);
    expect(c.agents[0].pki!.isAdmitted('node-2')).toBe(true);
    const socket = join(dir, 'a0.sock');
    const srv = await serveControl(socket, () => ({}), (line) => (line.startsWith('revoke ') ? revokeCommand(c.agents[0], line) : undefined));
    try {
      const ok = await run(['revoke', '--dir', dir, '--cert', join(dir, 'node2.crt'), '--reason', 'lost laptop', '--socket', socket]);
      expect(ok, ok.stderr).toMatchObject({ code: 0, stdout: expect.stringContaining('evicted here: node-2') });
      expect(c.agents[0].pki!.isAdmitted('node-2')).toBe(false);
      // Known already: applied again, nobody left to evict.
      const again = await run(['revoke', '--dir', dir, '--cert', join(dir, 'node2.crt'), '--socket', socket]);
      expect(again.stdout).toContain('evicted here: none');
      expect((await run(['revoke', '--dir', dir, '--socket', socket])).code).toBe(2);
      expect((await run(['revoke', '--dir', dir, '--wg-key', 'AAAA', '--ca-digest', '00'.repeat(32), '--socket', socket])).code).toBe(2);
      expect((await run(['revoke', '--dir', dir, '--ca-digest', 'xyz', '--socket', socket])).code).toBe(2);
      const gone = await run(['revoke', '--dir', dir, '--wg-key', Buffer.from(wg[1].publicKey).toString('base64'), '--socket', join(dir, 'nobody.sock')]);
      expect(gone.code).toBe(1);
      expect(c.agents[0].pki!.isAdmitted('node-1')).toBe(true);
    } finally {
      srv.close();
    }
  });
});
