/**
 * Text armour for files: `-----BEGIN OVERLAY <LABEL>-----`, base64 in 64-column lines, `-----END
 * …-----`. A file may hold several blocks (a trust file with two CAs during a rollover).
 */
import { fail } from './errors.js';

export function encodePem(label: string, bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN OVERLAY ${label}-----\n${lines.join('\n')}\n-----END OVERLAY ${label}-----\n`;
}

/** Every block with this label, in file order; text between blocks is ignored. */
export function decodePem(label: string, text: string): Uint8Array[] {
  const re = new RegExp(`-----BEGIN OVERLAY ${label}-----([\\s\\S]*?)-----END OVERLAY ${label}-----`, 'g');
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) {
    const b64 = m[1].replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) fail('malformed', `an OVERLAY ${label} block is not base64`);
    out.push(new Uint8Array(Buffer.from(b64, 'base64')));
  }
  return out;
}
