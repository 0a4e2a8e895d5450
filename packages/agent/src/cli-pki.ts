/**
 * The PKI commands of the `agent` CLI (issue 13), registered in cli.ts's command table:
 *
 *   agent ca init --dir DIR --name NAME [--days N]
 *   agent ca serve --dir DIR --listen HOST:PORT [--socket PATH]
 *   agent cert sign --dir DIR --name NAME --sign-key B64 --wg-key B64 [--prefix CIDR]... [--group G]... [--days N] --out FILE
 *   agent token create|rotate --dir DIR [--group G]... [--within CIDR]... [--days N]
 *   agent join --token TOKEN --server HOST:PORT --name NAME [--prefix CIDR]... [--wg-public B64] --out DIR
 *   agent revoke --dir DIR (--sign-key B64 | --wg-key B64 | --ca-digest HEX | --cert FILE) [--reason TEXT] --socket PATH
 *
 * Files: DIR/ca.crt (PEM), DIR/ca.key (the CA's Ed25519 seed, PEM, mode 0600), DIR/token.json
 * (the join secret and what it grants, mode 0600), DIR/issued.json (names issued, each to one
 * identity key: a name is never issued to a second key). A join writes OUT/node.crt, OUT/node.key
 * (0600), OUT/ca.crt (the pinned CA) and, when no --wg-public is given, OUT/wg.key (a new
 * WireGuard private key, base64, 0600). Key files are never overwritten. Nothing prints a key;
 * `token create|rotate` print the token (it holds the secret: that is its purpose).
 *
 * `revoke` signs a revocation with DIR's CA and hands it to the running agent at PATH (control
 * socket), which applies it at once and spreads it to every host as a record (pki-admission.ts).
 *
 * Exit codes as the rest of the CLI: 0 ok, 1 runtime failure, 2 usage.
 */
import { existsSync, readFileSync, watchFile, unwatchFile, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import {
  DAY_MS, JoinSigner, PkiError, createCa, decodePem, describeCert, encodePem, formatPrefix, generateSigningKey, generateWireGuardKey,
  createRevocation, parseCa, parseCert, parsePrefix, publicOfSeed, requestJoin, serveJoin, signCert, type CaKeyPair, type PkiErrorCode, type RevocationKindName,
} from '@overlay/pki';
import { queryControl } from './runtime.js';
import { agentRevocations, followAgentRevocations, recordRevocation, watchRevocations } from './pki-signer.js';

export const PKI_USAGE = {
  ca: 'agent ca init --dir DIR --name NAME [--days N]\n  Create a CA (DIR/ca.crt, DIR/ca.key); print its digest.\nagent ca serve --dir DIR --listen HOST:PORT [--socket PATH]\n  Answer joins with DIR\'s CA and token (a rotated token applies within 1 s); with --socket, also refuse keys the running agent at PATH holds revoked (gossip\'s included).',
  cert: 'agent cert sign --dir DIR --name NAME --sign-key B64 --wg-key B64 [--prefix CIDR]... [--group G]... [--days N] --out FILE\n  Issue a node certificate (default 7 days).',
  token: 'agent token create|rotate --dir DIR [--group G]... [--within CIDR]... [--days N]\n  Create or replace the join secret; print the token OVL1-<CA digest>-<secret>.',
  join: 'agent join --token TOKEN --server HOST:PORT --name NAME [--prefix CIDR]... [--wg-public B64] --out DIR\n  Get a certificate from a signer; write DIR/node.crt, node.key, ca.crt (and wg.key).',
  revoke: 'agent revoke --dir DIR (--sign-key B64 | --wg-key B64 | --ca-digest HEX | --cert FILE) [--reason TEXT] --socket PATH\n  Sign a revocation with DIR\'s CA; the running agent at PATH applies it and spreads it to every host.',
} as const;

const OPTIONS = {
  dir: { type: 'string' }, name: { type: 'string' }, days: { type: 'string' }, listen: { type: 'string' }, out: { type: 'string' },
  'sign-key': { type: 'string' }, 'wg-key': { type: 'string' }, 'wg-public': { type: 'string' }, token: { type: 'string' }, server: { type: 'string' },
  prefix: { type: 'string', multiple: true }, group: { type: 'string', multiple: true }, within: { type: 'string', multiple: true },
  'ca-digest': { type: 'string' }, cert: { type: 'string' }, reason: { type: 'string' }, socket: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;
const ALLOWED: Record<string, readonly string[]> = {
  'ca init': ['dir', 'name', 'days'],
  'ca serve': ['dir', 'listen', 'socket'],
  'cert sign': ['dir', 'name', 'sign-key', 'wg-key', 'prefix', 'group', 'days', 'out'],
  'token create': ['dir', 'group', 'within', 'days'],
  'token rotate': ['dir'],
  join: ['token', 'server', 'name', 'prefix', 'wg-public', 'out'],
  revoke: ['dir', 'sign-key', 'wg-key', 'ca-digest', 'cert', 'reason', 'socket'],
};
const SINGLE = new Set(['join', 'revoke']);

class UsageError extends Error {}
const need = (v: string | undefined, opt: string): string => {
  if (!v) throw new UsageError(`--${opt} is required`);
  return v;
};
const b64key = (v: string, opt: string): Uint8Array => {
  const b = Buffer.from(v, 'base64');
  if (b.length !== 32 || b.toString('base64') !== v) throw new UsageError(`--${opt} must be a 32-byte key in base64`);
  return new Uint8Array(b);
};
const days = (v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) <= 0) throw new UsageError('--days must be a positive number');
  return Number(v) * DAY_MS;
};
const hostPort = (v: string, opt: string) => {
  const m = /^\[?([^\]]+)\]?:(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--${opt} must be HOST:PORT`);
  return { host: m[1], port: Number(m[2]) };
};
/** Write a new file; refuse to replace one (a key lost to an overwrite is not recoverable). */
const create = (path: string, text: string, secret = false) => writeFileSync(path, text, { flag: 'wx', mode: secret ? 0o600 : 0o644 });

interface TokenFile { secret: string; groups: string[]; within: string[]; lifetimeMs?: number }

function loadCa(dir: string): CaKeyPair {
  const [certBytes] = decodePem('CERTIFICATE', readFileSync(join(dir, 'ca.crt'), 'utf8'));
  const [seed] = decodePem('ED25519 PRIVATE KEY', readFileSync(join(dir, 'ca.key'), 'utf8'));
  if (!certBytes || !seed) throw new PkiError('malformed', `${dir}: ca.crt or ca.key holds no key block`);
  const cert = parseCa(certBytes);
  if (Buffer.compare(publicOfSeed(seed), cert.signKey)) throw new PkiError('invalid_argument', `${dir}: ca.key does not belong to ca.crt`);
  return { cert, seed };
}

function loadToken(dir: string): TokenFile {
  return JSON.parse(readFileSync(join(dir, 'token.json'), 'utf8')) as TokenFile;
}

/**
 * The signer of DIR. With `persist`, names issued so far are read from DIR/issued.json (name →
 * SHA-256 of the identity key) and each new one is written back, so a restarted signer still
 * refuses a name to a different key.
 */
function signerOf(dir: string, persist = false): JoinSigner {
  const t = loadToken(dir);
  const path = join(dir, 'issued.json');
  const issued = new Map<string, string>(persist && existsSync(path) ? Object.entries(JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>) : []);
  return new JoinSigner({
    ca: loadCa(dir), secret: new Uint8Array(Buffer.from(t.secret, 'hex')), groups: t.groups, within: t.within, lifetimeMs: t.lifetimeMs, issued,
    onIssue: persist ? () => writeFileSync(path, JSON.stringify(Object.fromEntries(issued)) + '\n') : undefined,
  });
}

type Out = (s: string) => void;

/** Run one PKI command; `argv` starts with the command word (ca, cert, token, join). */
export async function pkiMain(argv: string[], out: Out = (s) => process.stdout.write(s), err: Out = (s) => process.stderr.write(s)): Promise<number> {
  const usage = (msg: string) => (err(`agent: ${msg} (see agent ${argv[0]} --help)\n`), 2);
  let values: Record<string, string | string[] | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS }));
  } catch (e) {
    return usage((e as Error).message);
  }
  const top = positionals[0] as keyof typeof PKI_USAGE;
  if (values.help) {
    out(`usage: ${PKI_USAGE[top]}\nExit codes: 0 ok, 1 runtime failure (the message starts with the error's code), 2 usage.\n`);
    return 0;
  }
  const cmd = SINGLE.has(top) ? top : `${top} ${positionals[1] ?? ''}`;
  if (!ALLOWED[cmd]) return usage(`unknown command \`agent ${positionals.join(' ')}\``);
  if (positionals.length > (SINGLE.has(top) ? 1 : 2)) return usage(`unexpected argument ${JSON.stringify(positionals.at(-1))}`);
  const extra = Object.keys(values).find((k) => values[k] !== undefined && !ALLOWED[cmd].includes(k));
  if (extra) return usage(`--${extra} is not an option of \`agent ${cmd}\``);
  const s = (k: string) => values[k] as string | undefined;
  const list = (k: string) => (values[k] as string[] | undefined) ?? [];
  try {
    const now = Date.now();
    switch (cmd) {
      case 'ca init': {
        const dir = need(s('dir'), 'dir');
        if (existsSync(join(dir, 'ca.key'))) throw new PkiError('invalid_argument', `${dir}/ca.key exists; a CA is never overwritten`);
        const ca = createCa({ name: need(s('name'), 'name'), now, lifetimeMs: days(s('days')) });
        create(join(dir, 'ca.key'), encodePem('ED25519 PRIVATE KEY', ca.seed), true);
        create(join(dir, 'ca.crt'), encodePem('CERTIFICATE', ca.cert.bytes));
        out(`${describeCert(ca.cert)}\ndigest ${Buffer.from(ca.cert.digest).toString('hex')}\n`);
        return 0;
      }
      case 'cert sign': {
        const o = {
          name: need(s('name'), 'name'), prefixes: list('prefix'), groups: list('group'), now, lifetimeMs: days(s('days')),
          signKey: b64key(need(s('sign-key'), 'sign-key'), 'sign-key'), wgKey: b64key(need(s('wg-key'), 'wg-key'), 'wg-key'),
        };
        const path = need(s('out'), 'out');
        const cert = signCert(loadCa(need(s('dir'), 'dir')), o);
        create(path, encodePem('CERTIFICATE', cert.bytes));
        out(`${describeCert(cert)}\n`);
        return 0;
      }
      case 'token create':
      case 'token rotate': {
        const dir = need(s('dir'), 'dir');
        loadCa(dir);
        const path = join(dir, 'token.json');
        const prev = cmd === 'token rotate' ? loadToken(dir) : undefined;
        if (!prev && existsSync(path)) throw new PkiError('invalid_argument', `${path} exists; use \`agent token rotate\``);
        for (const w of list('within')) parsePrefix(w);
        const t: TokenFile = prev
          ? { ...prev, secret: randomBytes(32).toString('hex') }
          : { secret: randomBytes(32).toString('hex'), groups: list('group'), within: list('within').map((w) => formatPrefix(parsePrefix(w))), lifetimeMs: days(s('days')) };
        writeFileSync(path, JSON.stringify(t) + '\n', { mode: 0o600 });
        out(signerOf(dir).token() + '\n');
        return 0;
      }
      case 'ca serve': {
        const dir = need(s('dir'), 'dir');
        const signer = signerOf(dir, true);
        const srv = await serveJoin(signer, hostPort(need(s('listen'), 'listen'), 'listen'));
        // DIR/revocations.pem (written by `agent revoke`): read now and on change; revoked keys are refused.
        const unwatchRevocations = watchRevocations(dir, signer, (m) => err(`agent: ${m}\n`));
        // --socket: also refuse what the running agent there holds (revocations gossip brought it).
        const agentSocket = s('socket');
        const follower = agentSocket ? followAgentRevocations(signer, agentRevocations(agentSocket), (m) => err(`agent: ${m}\n`)) : undefined;
        // A `token rotate` from another shell replaces the secret here within the poll interval.
        const tokenPath = join(dir, 'token.json');
        watchFile(tokenPath, { interval: 500 }, () => {
          try {
            signer.rotate(new Uint8Array(Buffer.from(loadToken(dir).secret, 'hex')));
            err('agent: join token rotated\n');
          } catch (e) {
            err(`agent: cannot reload ${tokenPath}: ${(e as Error).message}\n`);
          }
        });
        err(`agent: answering joins on ${srv.address.address}:${srv.address.port}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGTERM', () => resolve());
          process.once('SIGINT', () => resolve());
        });
        unwatchFile(tokenPath);
        unwatchRevocations();
        follower?.stop();
        await srv.close();
        err(`agent: joins ${JSON.stringify(signer.counts)}\n`);
        return 0;
      }
      case 'join': {
        const dir = need(s('out'), 'out');
        const token = need(s('token'), 'token');
        const server = hostPort(need(s('server'), 'server'), 'server');
        for (const f of ['node.key', 'node.crt', ...(s('wg-public') ? [] : ['wg.key'])]) {
          if (existsSync(join(dir, f))) throw new PkiError('invalid_argument', `${dir}/${f} exists; a key is never overwritten`);
        }
        const id = generateSigningKey();
        const wg = s('wg-public') ? { publicKey: b64key(s('wg-public')!, 'wg-public'), privateKey: undefined } : generateWireGuardKey();
        const { cert, ca } = await requestJoin({ ...server, token, keys: { signSeed: id.seed, signKey: id.publicKey, wgKey: wg.publicKey }, name: need(s('name'), 'name'), prefixes: list('prefix') });
        create(join(dir, 'node.key'), encodePem('ED25519 PRIVATE KEY', id.seed), true);
        if (wg.privateKey) create(join(dir, 'wg.key'), Buffer.from(wg.privateKey).toString('base64') + '\n', true);
        create(join(dir, 'node.crt'), encodePem('CERTIFICATE', cert.bytes));
        writeFileSync(join(dir, 'ca.crt'), encodePem('CERTIFICATE', ca.bytes));
        out(`${describeCert(cert)}\n`);
        return 0;
      }
      case 'revoke': {
        const dir = need(s('dir'), 'dir');
        const ca = loadCa(dir);
        const socket = need(s('socket'), 'socket');
        const given = (['sign-key', 'wg-key', 'ca-digest', 'cert'] as const).filter((k) => s(k) !== undefined);
        if (given.length !== 1) throw new UsageError('give exactly one of --sign-key, --wg-key, --ca-digest, --cert');
        const what = given[0];
        let target: { kind: RevocationKindName; key: Uint8Array };
        if (what === 'ca-digest') {
          if (!/^[0-9a-f]{64}$/.test(s(what)!)) throw new UsageError('--ca-digest must be 64 hex digits');
          target = { kind: 'ca', key: new Uint8Array(Buffer.from(s(what)!, 'hex')) };
        } else if (what === 'cert') {
          const [bytes] = decodePem('CERTIFICATE', readFileSync(s(what)!, 'utf8'));
          if (!bytes) throw new PkiError('malformed', `${s(what)} holds no certificate`);
          target = { kind: 'signKey', key: parseCert(bytes).signKey };
        } else target = { kind: what === 'wg-key' ? 'wgKey' : 'signKey', key: b64key(s(what)!, what) };
        const rev = createRevocation(ca, { ...target, now, reason: s('reason') });
        // Kept in DIR first, so DIR's signer (`agent ca serve`) refuses the key even if no agent answers.
        recordRevocation(dir, rev);
        const a = (await queryControl(socket, 10_000, `revoke ${Buffer.from(rev.bytes).toString('base64')}`)) as { ok?: boolean; evicted?: string[]; error?: string; code?: string };
        if (!a.ok) throw new PkiError((a.code as PkiErrorCode | undefined) ?? 'invalid_argument', `the agent refused the revocation: ${a.error ?? 'no answer'}`);
        out(`revoked ${target.kind} ${target.kind === 'ca' ? Buffer.from(target.key).toString('hex') : Buffer.from(target.key).toString('base64')}; evicted here: ${a.evicted!.length ? a.evicted!.join(', ') : 'none'}\n`);
        return 0;
      }
    }
    return usage(`unknown command \`agent ${cmd}\``);
  } catch (e) {
    if (e instanceof UsageError) return usage(e.message);
    const x = e as { code?: string; message?: string };
    err(`agent: ${x.message ?? String(e)}\n`);
    return 1;
  }
}
