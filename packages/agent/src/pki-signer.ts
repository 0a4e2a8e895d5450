/**
 * The signer's revocations (docs/pki.md "Join tokens", "Revocation"): `agent revoke --dir DIR`
 * appends the record it signs to DIR/revocations.pem, and `agent ca serve --dir DIR` reads that
 * file at start and whenever it changes, so a join or renewal for a revoked key is refused
 * (`revoked`; `ca_revoked` once DIR's CA is) instead of issuing a certificate every host refuses.
 * Records that no longer matter (past DIR's CA notAfter) are not loaded, and the signer drops them
 * from memory (RevocationSet.prune).
 */
import { appendFileSync, existsSync, readFileSync, unwatchFile, watchFile } from 'node:fs';
import { join } from 'node:path';
import { decodePem, encodePem, type JoinSigner, type Revocation } from '@overlay/pki';

export const REVOCATIONS_FILE = 'revocations.pem';
const LABEL = 'REVOCATION';

export const revocationsPath = (dir: string) => join(dir, REVOCATIONS_FILE);

/** Keep a revocation signed with DIR's CA in DIR/revocations.pem (appended, one block each). */
export function recordRevocation(dir: string, rev: Revocation): void {
  appendFileSync(revocationsPath(dir), encodePem(LABEL, rev.bytes), { mode: 0o644 });
}

/**
 * Read DIR/revocations.pem into `signer` at `now`: returns how many records were new and how many
 * did not verify against the signer's CA (skipped). A missing file holds none.
 */
export function loadRevocations(dir: string, signer: JoinSigner, now: number): { added: number; refused: number } {
  const path = revocationsPath(dir);
  if (!existsSync(path)) return { added: 0, refused: 0 };
  let added = 0;
  let refused = 0;
  for (const bytes of decodePem(LABEL, readFileSync(path, 'utf8'))) {
    try {
      if (signer.revoke(bytes, now)) added++;
    } catch {
      refused++;
    }
  }
  return { added, refused };
}

/**
 * Load DIR/revocations.pem now and again whenever it changes (polled every `intervalMs`, as the
 * token file is); `report` hears each load that adds a record or skips another number of them,
 * and each failure. Returns the function that stops it.
 */
export function watchRevocations(dir: string, signer: JoinSigner, report: (msg: string) => void, o: { clock?: () => number; intervalMs?: number } = {}): () => void {
  const clock = o.clock ?? Date.now;
  const path = revocationsPath(dir);
  let refusedBefore = 0;
  const load = () => {
    try {
      const r = loadRevocations(dir, signer, clock());
      const quiet = r.added === 0 && r.refused === refusedBefore;
      refusedBefore = r.refused;
      if (!quiet) report(`revocations loaded: ${r.added} new, ${r.refused} not verified (skipped); ${signer.revocations.size} held`);
    } catch (e) {
      report(`cannot read ${path}: ${(e as Error).message}`);
    }
  };
  load();
  watchFile(path, { interval: o.intervalMs ?? 500 }, load);
  return () => unwatchFile(path, load);
}
