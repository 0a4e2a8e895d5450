import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseConfig } from '@overlay/agent';

/**
 * Every ```yaml block in the docs is a whole agent config the code accepts. `BASE64` stands for a
 * key from `agent keygen`: 64 bytes after `signingKey:`, 32 bytes elsewhere (cluster and
 * WireGuard keys); the test puts in keys of those sizes and changes nothing else.
 */
const DOCS = ['docs/ARCHITECTURE.md', 'README.md'];

function yamlBlocks(file: string): { line: number; text: string }[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: { line: number; text: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```yaml') continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && lines[j].trim() !== '```') j++;
    expect(j, `${file}:${i + 1}: unclosed yaml fence`).toBeLessThan(lines.length);
    out.push({ line: start + 1, text: lines.slice(start, j).join('\n') });
    i = j;
  }
  return out;
}

const withKeys = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/BASE64/g, Buffer.alloc(/^\s*signingKey:/.test(l) ? 64 : 32, 7).toString('base64')))
    .join('\n');

describe('YAML in the docs', () => {
  for (const file of DOCS) {
    it(`every yaml block of ${file} is a config the agent accepts`, () => {
      const blocks = yamlBlocks(file);
      for (const b of blocks) {
        let error = '';
        try {
          parseConfig(withKeys(b.text), () => Buffer.alloc(64, 7).toString('base64'));
        } catch (e) {
          error = String((e as Error).message);
        }
        expect({ at: `${file}:${b.line}`, error }).toEqual({ at: `${file}:${b.line}`, error: '' });
      }
    });
  }

  it('the docs do hold config examples (the architecture doc a complete one)', () => {
    const blocks = yamlBlocks('docs/ARCHITECTURE.md');
    expect(blocks.length).toBeGreaterThan(0);
    const full = parseConfig(withKeys(blocks[0].text));
    expect(full.networks.length).toBeGreaterThan(0);
    expect(full.networks[0].endpoints.length).toBeGreaterThan(0);
    expect(yamlBlocks('README.md').length).toBeGreaterThan(0);
  });
});
