/**
 * Real agents admitted by certificate (`pki:` in their config, no cluster key): AgentCluster with
 * each host's trust file, certificate and identity key in DIR/h<i>/ (ca.crt, node.crt, node.key),
 * a WireGuard key per host, and `pkiExtra(i)` for more `pki:` lines (a join token and server).
 * Used by test/pki-rollover.test.ts and test/pki-loss.test.ts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { generatePrivateKey, publicKeyOf } from '@overlay/crypto';
import { AgentCluster, blueNetwork } from './agent-cluster.js';

export class PkiAgentCluster extends AgentCluster {
  readonly wgPriv = this.hosts.map(() => generatePrivateKey());
  /** Agent names are `${namePrefix}${i}`. */
  namePrefix = 'pk';

  /** Host i's pki directory (created on first use). */
  files(i: number): string {
    const d = join(this.dir, `h${i}`);
    mkdirSync(d, { recursive: true });
    return d;
  }
  file(i: number, f: 'ca.crt' | 'node.crt' | 'node.key'): string {
    return join(this.files(i), f);
  }
  /** Host i's WireGuard public key as bytes (what its certificate must name). */
  wgPublic(i: number): Uint8Array {
    return new Uint8Array(Buffer.from(publicKeyOf(this.wgPriv[i]), 'base64'));
  }
  /** More lines under `pki:` for host i (indented by two spaces). */
  pkiExtra(_i: number): string[] {
    return [];
  }
  override config(i: number): string {
    const h = this.hosts[i];
    return [
      `name: ${this.namePrefix}${i}`,
      `listen: ${h.underlay}:7946`,
      `seeds: [${this.hosts[0].underlay}:7946]`,
      'profile: lan',
      'wireguard:',
      `  privateKey: ${this.wgPriv[i]}`,
      `controlSocket: ${join(this.dir, `a${i}.sock`)}`,
      'pki:',
      `  ca: ${this.file(i, 'ca.crt')}`,
      `  cert: ${this.file(i, 'node.crt')}`,
      `  key: ${this.file(i, 'node.key')}`,
      ...this.pkiExtra(i),
      ...blueNetwork(`ep-${i}`, `02:00:00:00:0c:${(i + 1).toString(16).padStart(2, '0')}`, this.ip(i)),
      '',
    ].join('\n');
  }
}
