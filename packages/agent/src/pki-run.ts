/**
 * What `runAgent` does with the config's `pki:` section before the agent starts (docs/pki.md,
 * "Agent wiring"):
 *
 * - When the certificate file is missing and `joinToken`/`joinServer` are given, join: a new
 *   Ed25519 identity, the config's WireGuard key, the prefixes asked for; writes `key` (0600),
 *   `cert`, and `ca` (the CA the token pins) when absent. Transport failures are tried again (at
 *   most JOIN_ATTEMPTS times); a refusal (bad_secret, wrong_issuer, ...) is not.
 * - Loads the trust file (one or two CA certificates), the certificate and the identity key, and
 *   checks the certificate now: it must verify and be for this node's name, identity key (the
 *   record-signing key) and WireGuard key — else a PkiError and the agent does not start.
 * - The gossip keyring: the config's cluster keys, or without them one key per trusted CA derived
 *   from its digest (the first CA in the trust file seals, every one opens: a CA rollover lists the
 *   old CA first until every host trusts both). Derived keys keep out hosts of other clusters,
 *   not anyone holding the public CA certificate: admission is the certificates'.
 *
 * `revokeCommand` is the control socket's `revoke <base64>` (`agent revoke`).
 */
import nacl from 'tweetnacl';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { PkiError, TrustedCas, checkCert, decodePem, describeCert, encodePem, generateSigningKey, parseCa, parseCert, publicOfSeed, requestJoin, sha256, type Certificate } from '@overlay/pki';
import { realClock, type Clock } from './env.js';
import type { Logger } from './log.js';
import { CertRenewer } from './pki-renew.js';
import type { AgentConfig } from './config-types.js';
import type { Agent } from './agent.js';
import { Keyring } from './keyring.js';
import type { PkiOptions } from './pki-admission.js';
import { REVOKE_LIST } from './pki-signer.js';

export const JOIN_ATTEMPTS = 10;
/** How long the gossip key of a CA dropped from the trust file still opens packets. */
export const SEAL_GRACE_MS = 30_000;
const JOIN_RETRY_MS = 1000;
const SEAL_LABEL = new TextEncoder().encode('overlay-agent-gossip-v1\u0000');

export interface PkiStart {
  /** The agent's record-signing key (tweetnacl 64-byte secret key) from the identity key file. */
  signingKey: Uint8Array;
  pki: PkiOptions;
  /** The config's cluster keys, or keys derived from the trusted CAs. */
  sealer: Keyring;
  /** Notes for the log: joined, CA expiring. */
  notes: string[];
  /** The CAs the derived gossip keys were made from last (the runtime's reload replaces them). */
  trustedAtStart?: Certificate[];
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
const readPem = (path: string, label: string): Uint8Array[] => decodePem(label, readFileSync(path, 'utf8'));

/** Join, load and check; throws PkiError (code) when this node cannot take part. */
export async function preparePki(cfg: AgentConfig, wgPublicB64: string | undefined, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<PkiStart> {
  const p = cfg.pki!;
  if (!wgPublicB64) throw new PkiError('invalid_argument', 'pki needs wireguard: the certificate admits the tunnel key');
  const wgKey = new Uint8Array(Buffer.from(wgPublicB64, 'base64'));
  const notes: string[] = [];
  if (!existsSync(p.cert) && p.joinToken && p.joinServer) {
    if (existsSync(p.key)) throw new PkiError('invalid_argument', `${p.key} exists but ${p.cert} does not; a key is never overwritten (remove it to join again)`);
    const id = generateSigningKey();
    let got: Awaited<ReturnType<typeof requestJoin>> | undefined;
    for (let attempt = 1; !got; attempt++) {
      try {
        got = await requestJoin({ host: p.joinServer.ip, port: p.joinServer.port, token: p.joinToken, keys: { signSeed: id.seed, signKey: id.publicKey, wgKey }, name: cfg.name, prefixes: p.prefixes });
      } catch (e) {
        if (!(e instanceof PkiError) || e.code !== 'transport' || attempt >= JOIN_ATTEMPTS) throw e;
        await sleep(JOIN_RETRY_MS);
      }
    }
    writeFileSync(p.key, encodePem('ED25519 PRIVATE KEY', id.seed), { flag: 'wx', mode: 0o600 });
    writeFileSync(p.cert, encodePem('CERTIFICATE', got.cert.bytes), { flag: 'wx' });
    if (!existsSync(p.ca)) writeFileSync(p.ca, encodePem('CERTIFICATE', got.ca.bytes), { flag: 'wx' });
    notes.push(`joined through ${p.joinServer.ip}:${p.joinServer.port}`);
  }
  const cas = readPem(p.ca, 'CERTIFICATE');
  if (cas.length < 1 || cas.length > 2) throw new PkiError('malformed', `${p.ca}: a trust file holds one or two CA certificates, found ${cas.length}`);
  const trusted = new TrustedCas(cas);
  const [certBytes] = readPem(p.cert, 'CERTIFICATE');
  const [seed] = readPem(p.key, 'ED25519 PRIVATE KEY');
  if (!certBytes) throw new PkiError('malformed', `${p.cert} holds no certificate`);
  if (!seed || seed.length !== 32) throw new PkiError('malformed', `${p.key} holds no Ed25519 key`);
  const r = checkCert(certBytes, trusted, Date.now());
  if (!r.ok) throw new PkiError(r.code, `${p.cert}: ${r.message}`);
  if (r.cert.name !== cfg.name) throw new PkiError('invalid_argument', `${p.cert} is for ${JSON.stringify(r.cert.name)}, not this node (${cfg.name})`);
  if (!same(r.cert.signKey, publicOfSeed(seed))) throw new PkiError('invalid_argument', `${p.cert} is not for the identity key in ${p.key}`);
  if (!same(r.cert.wgKey, wgKey)) throw new PkiError('invalid_argument', `${p.cert} is not for this node's WireGuard key`);
  for (const w of r.warnings) notes.push(`warning: ${w.code}`);
  const sealKeys = cfg.clusterKeys.length ? cfg.clusterKeys : sealKeysOf(trusted.list());
  // The trust file's order decides the sealing key (TrustedCas keeps insertion order).
  return { signingKey: nacl.sign.keyPair.fromSeed(seed).secretKey, pki: { trusted, cert: r.cert.bytes }, sealer: new Keyring(sealKeys), notes, trustedAtStart: trusted.list() };
}

/** The gossip keys derived from trusted CAs, in trust-file order (the first seals). */
export function sealKeysOf(cas: readonly Certificate[]): Uint8Array[] {
  return cas.map((ca) => sha256(SEAL_LABEL, ca.digest));
}

export interface PkiRuntime {
  /** Absent without joinToken/joinServer (nothing to renew with). */
  renewer: CertRenewer | undefined;
  /**
   * Look at the trust and certificate files now (the poll does this every pollMs, SIGHUP at
   * once through `reload`); returns which changed files were taken.
   */
  poll(): { trust: boolean; cert: boolean };
  /** SIGHUP: `poll` now, logging what it took (the agent's config is applied separately). */
  reload(why?: string): { trust: boolean; cert: boolean };
  stop(): void;
}

type Log = Pick<Logger, 'info' | 'warn'>;

/**
 * While the agent runs (docs/pki.md "Renewal", "CA rollover"):
 * - renewal at 2/3 of the certificate's lifetime through the join server (pki-renew.ts); the
 *   new certificate is swapped in and written to the cert file (atomically);
 * - the trust file and the certificate file are read every `pollMs`, and at once on SIGHUP
 *   (`reload`; the poll stays as the fallback): a changed trust file is
 *   trusted as a whole (members of a CA no longer there are evicted; the derived gossip keys follow
 *   it, the first CA's sealing), a changed certificate file is swapped in like a renewal. A file
 *   that does not parse or a certificate that is refused changes nothing (logged once per content).
 */
export function startPkiRuntime(agent: Agent, cfg: AgentConfig, start: PkiStart, log: Log, o: { clock?: Clock; pollMs?: number } = {}): PkiRuntime {
  const p = cfg.pki!;
  const clock = o.clock ?? realClock;
  const pki = agent.pki!;
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  let caText = read(p.ca);
  let certText = read(p.cert);
  let sealedWith = start.trustedAtStart ?? [];
  const writeCert = (bytes: Uint8Array) => {
    const text = encodePem('CERTIFICATE', bytes);
    writeFileSync(`${p.cert}.tmp`, text);
    renameSync(`${p.cert}.tmp`, p.cert);
    certText = text;
  };
  const seed = start.signingKey.subarray(0, 32);
  const wgKey = new Uint8Array(Buffer.from(agent.membership.selfAlive().meta.wgKey, 'base64'));
  const renewer = p.joinToken && p.joinServer
    ? new CertRenewer({
        clock,
        cert: start.pki.cert,
        obtain: async () => (await requestJoin({ host: p.joinServer!.ip, port: p.joinServer!.port, token: p.joinToken!, keys: { signSeed: seed, signKey: publicOfSeed(seed), wgKey }, name: cfg.name, prefixes: p.prefixes, clock: () => clock.now() })).cert.bytes,
        install: (bytes) => {
          agent.renewCert(bytes);
          writeCert(bytes);
        },
        renewed: () => {
          pki.counters.add(pki.counters.at.renewed);
          log.info({ pki: 'certificate renewed', notAfter: new Date(renewer!.current.notAfter).toISOString() }, 'pki');
        },
        failed: (err, attempt, retryInMs) => {
          pki.counters.add(pki.counters.at.renew_failures);
          log.warn({ pki: 'certificate renewal failed', code: (err as { code?: string }).code, err: String((err as Error).message ?? err), attempt, retryInMs }, 'pki');
        },
      })
    : undefined;
  if (!renewer) log.warn({ pki: 'no joinToken/joinServer: this certificate is not renewed', notAfter: new Date(parseCert(start.pki.cert).notAfter).toISOString() }, 'pki');
  renewer?.start();
  const refused = new Set<string>();
  const once = (what: string, text: string, err: unknown) => {
    if (refused.has(text)) return;
    refused.add(text);
    log.warn({ pki: `${what} not taken`, err: String((err as Error).message ?? err) }, 'pki');
  };
  const reloadTrust = (text: string) => {
    const cas = decodePem('CERTIFICATE', text).map((b) => parseCa(b));
    if (cas.length < 1 || cas.length > 2) throw new PkiError('malformed', `a trust file holds one or two CA certificates, found ${cas.length}`);
    caText = text;
    const evicted = pki.setTrusted(cas);
    if (!cfg.clusterKeys.length) {
      const keys = sealKeysOf(cas);
      for (const k of keys) start.sealer.add(k);
      start.sealer.use(keys[0]);
      // A dropped CA's key still opens for SEAL_GRACE_MS: hosts that have not re-read their trust
      // file yet seal with it; it goes unless a later reload brought it back.
      const old = sealKeysOf(sealedWith);
      sealedWith = cas;
      const later = setTimeout(() => {
        const want = new Set(sealKeysOf(sealedWith).map((k) => Buffer.from(k).toString('hex')));
        for (const k of old) if (!want.has(Buffer.from(k).toString('hex'))) start.sealer.remove(k);
      }, SEAL_GRACE_MS);
      later.unref();
    }
    log.info({ pki: 'trust file reloaded', cas: cas.map((c) => c.name), evicted }, 'pki');
  };
  const reloadCert = (text: string) => {
    const [bytes] = decodePem('CERTIFICATE', text);
    if (!bytes) throw new PkiError('malformed', `${p.cert} holds no certificate`);
    agent.renewCert(bytes);
    certText = text;
    renewer?.replaced(bytes);
    log.info({ pki: 'certificate file reloaded', cert: describeCert(parseCert(bytes)) }, 'pki');
  };
  const poll = () => {
    const took = { trust: false, cert: false };
    for (const [path, last, reload, what, k] of [[p.ca, caText, reloadTrust, 'trust file', 'trust'], [p.cert, certText, reloadCert, 'certificate file', 'cert']] as const) {
      const text = read(path);
      if (text === undefined || text === last) continue;
      try {
        reload(text);
        took[k] = true;
      } catch (e) {
        once(what, text, e);
      }
    }
    return took;
  };
  const timer = setInterval(poll, o.pollMs ?? 1000);
  timer.unref();
  return {
    renewer,
    poll,
    reload: (why = 'SIGHUP') => {
      const took = poll();
      log.info({ pki: `trust and certificate files re-read (${why})`, ...took }, 'pki');
      return took;
    },
    stop: () => {
      clearInterval(timer);
      renewer?.stop();
    },
  };
}

/**
 * The control socket's `revoke <base64 Revocation>`: apply and spread it; answers the members
 * evicted here. `revoke list`: the revocations this agent holds (gossip's included) and its trusted
 * CAs, base64, for a join signer that follows it (pki-signer.ts `followAgentRevocations`).
 */
export function revokeCommand(agent: Agent, line: string): { ok: true; evicted: string[] } | { ok: true; revocations: string[]; trusted: string[] } | { error: string; code?: string } {
  if (line.trim() === REVOKE_LIST) {
    if (!agent.pki) return { error: 'this agent runs without pki: it holds no revocations', code: 'invalid_argument' };
    const h = agent.pki.held();
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    return { ok: true, revocations: h.revocations.map(b64), trusted: h.trusted.map(b64) };
  }
  try {
    const bytes = new Uint8Array(Buffer.from(line.slice('revoke '.length).trim(), 'base64'));
    return { ok: true, ...agent.revoke(bytes) };
  } catch (e) {
    const err = e as { message?: string; code?: string };
    return { error: err.message ?? String(e), code: err.code };
  }
}
