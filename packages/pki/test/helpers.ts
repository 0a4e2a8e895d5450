import { PkiError, createCa, generateSigningKey, generateWireGuardKey, signCert, type CaKeyPair, type SignCertOptions } from '@overlay/pki';

export const T0 = Date.UTC(2026, 0, 1);
export const DAY = 86_400_000;

/** A node's two key pairs, as a joiner holds them. */
export function nodeKeys() {
  const s = generateSigningKey();
  const w = generateWireGuardKey();
  return { signSeed: s.seed, signKey: s.publicKey, wgKey: w.publicKey, wgPrivate: w.privateKey };
}

export function issue(ca: CaKeyPair, o: Partial<SignCertOptions> = {}) {
  const k = nodeKeys();
  return { keys: k, cert: signCert(ca, { name: 'web-1', prefixes: ['198.19.0.10/32'], groups: ['web'], wgKey: k.wgKey, signKey: k.signKey, now: T0, ...o }) };
}

/** A CA valid from a day before T0 (so T0 - 1 tests a node cert, not the CA), for a year unless told. */
export const newCa = (name = 'ca-1', o: { notBefore?: number; lifetimeMs?: number } = {}) => createCa({ name, now: T0 - DAY, lifetimeMs: 365 * DAY, ...o });

/** Every representation of a key a careless message might contain. */
export function keyTexts(k: Uint8Array): string[] {
  const b = Buffer.from(k);
  return [b.toString('hex'), b.toString('base64'), b.toString('base64url').slice(0, 40)];
}

/** The PkiError code `f` throws, or 'ok' (anything else is rethrown). */
export function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof PkiError) return e.code;
    throw e;
  }
  return 'ok';
}
