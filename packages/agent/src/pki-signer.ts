/**
 * The signer's revocations (docs/pki.md "Join tokens", "Revocation"): `agent revoke --dir DIR`
 * appends the record it signs to DIR/revocations.pem, and `agent ca serve --dir DIR` reads that
 * file at start and whenever it changes, so a join or renewal for a revoked key is refused
 * (`revoked`; `ca_revoked` once DIR's CA is) instead of issuing a certificate every host refuses.
 * Records that no longer matter (past DIR's CA notAfter) are not loaded, and the signer drops them
 * from memory (RevocationSet.prune).
 *
 * A revocation can also reach the cluster without DIR: published through another host's agent,
 * signed by another trusted CA, or adopted after its publisher left. `followAgentRevocations`
 * makes the signer refuse by what a running agent holds (the set its admission refuses by,
 * gossip's included): it asks the agent's control socket (`revoke list`) every `intervalMs` and
 * adds each new record, verified under the agent's trusted CAs and the signer's own. A join for a
 * key so revoked is refused `revoked`, and every join `ca_revoked` once the signer's CA is: the
 * signer's PkiError, counted in `signer.counts` like every refusal.
 */
import { appendFileSync, existsSync, readFileSync, unwatchFile, watchFile } from 'node:fs';
import { join } from 'node:path';
import { PkiError, decodePem, encodePem, type JoinSigner, type Revocation } from '@overlay/pki';
import { queryControl } from './runtime.js';

export const REVOCATIONS_FILE = 'revocations.pem';
/** The control line that lists the revocations an agent holds (`revoke` + a word no record's base64 is). */
export const REVOKE_LIST = 'revoke list';
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

/** What an agent holds: revocation records and the CA certificates they verify under (bytes). */
export interface HeldRevocations {
  revocations: Uint8Array[];
  trusted: Uint8Array[];
}

/** The running agent at `socket` (its control socket), asked `revoke list`. */
export function agentRevocations(socket: string, timeoutMs = 5000): () => Promise<HeldRevocations> {
  return async () => {
    const a = (await queryControl(socket, timeoutMs, REVOKE_LIST)) as { ok?: boolean; revocations?: string[]; trusted?: string[]; error?: string; code?: string };
    if (!a.ok || !Array.isArray(a.revocations) || !Array.isArray(a.trusted)) throw new PkiError('transport', `the agent at ${socket} did not list its revocations: ${a.error ?? 'no list'}`);
    const bytes = (t: string) => new Uint8Array(Buffer.from(t, 'base64'));
    return { revocations: a.revocations.map(bytes), trusted: a.trusted.map(bytes) };
  };
}

/** What following an agent did: polls answered, records taken, records that did not verify, failed polls. */
export interface FollowCounts {
  polls: number;
  added: number;
  refused: number;
  failures: number;
}

export interface RevocationFollower {
  readonly counts: FollowCounts;
  /** Ask now (the timer does every intervalMs); resolves once this answer is taken. */
  poll(): Promise<void>;
  stop(): void;
}

/**
 * Keep `signer` refusing what the agent behind `source` holds: asked now and every `intervalMs`
 * (default 500, as DIR/revocations.pem is polled); each record not seen in the previous answer is
 * added to the signer's set, verified under the agent's trusted CAs and the signer's CA (a record
 * that does not verify is counted `refused`, not taken). A failed ask is counted and reported
 * once until one succeeds; the signer keeps what it has. Records leave the signer's set at their
 * horizon (the signer prunes), not when the agent stops listing them.
 */
export function followAgentRevocations(signer: JoinSigner, source: () => Promise<HeldRevocations>, report: (msg: string) => void, o: { clock?: () => number; intervalMs?: number } = {}): RevocationFollower {
  const clock = o.clock ?? Date.now;
  const counts: FollowCounts = { polls: 0, added: 0, refused: 0, failures: 0 };
  let seen = new Set<string>();
  let failing = false;
  let running: Promise<void> | undefined;
  let stopped = false;
  const take = (h: HeldRevocations) => {
    counts.polls++;
    const trusted = [signer.ca.cert, ...h.trusted];
    const next = new Set<string>();
    let added = 0;
    let refused = 0;
    for (const bytes of h.revocations) {
      const id = Buffer.from(bytes).toString('base64');
      next.add(id);
      if (seen.has(id)) continue;
      try {
        if (signer.revocations.add(bytes, trusted, clock())) added++;
      } catch {
        refused++;
      }
    }
    seen = next;
    counts.added += added;
    counts.refused += refused;
    if (failing) report('the agent answers again');
    failing = false;
    if (added || refused) report(`agent's revocations: ${added} new, ${refused} not verified (skipped); ${signer.revocations.size} held`);
  };
  const poll = (): Promise<void> => {
    running ??= source().then(take, (e: unknown) => {
      counts.failures++;
      if (!failing) report(`cannot read the agent's revocations: ${(e as Error).message ?? String(e)}`);
      failing = true;
    }).finally(() => {
      running = undefined;
    });
    return running;
  };
  void poll();
  const timer = setInterval(() => {
    if (!stopped) void poll();
  }, o.intervalMs ?? 500);
  timer.unref();
  return {
    counts,
    poll: async () => {
      await running;
      await poll();
    },
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
