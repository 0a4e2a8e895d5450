import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import { FORMATS, parseConfig } from '@overlay/agent';

/**
 * Every ```yaml block in the docs is a whole agent config the code accepts. `BASE64` stands for a
 * key from `agent keygen`: 64 bytes after `signingKey:`, 32 bytes elsewhere (cluster and
 * WireGuard keys); the test puts in keys of those sizes and changes nothing else.
 */
const DOCS = ['docs/ARCHITECTURE.md', 'README.md'];
/** The other docs: a yaml block there is a config when its top level has version, hosts or a signing key (others are fragments). */
const OTHER_DOCS = readdirSync('docs').filter((f) => f.endsWith('.md') && f !== 'ARCHITECTURE.md').map((f) => `docs/${f}`);
const EXAMPLES = readdirSync('examples').filter((f) => /\.ya?ml$/.test(f)).map((f) => `examples/${f}`);
const isConfig = (text: string) => /^(version|hosts|signingKey|signingKeyFile):/m.test(text);

/** The published schema, read from the file as another tool would (with our formats). */
function publishedSchema() {
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
  for (const [name, f] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate: f.check });
  return ajv.compile(JSON.parse(readFileSync('packages/agent/schema/agent-config.schema.json', 'utf8')));
}
const validateSchema = publishedSchema();
const readKey = () => Buffer.alloc(64, 7).toString('base64');

function accepts(at: string, text: string, opts: { host?: string } = {}) {
  let error = '';
  try {
    parseConfig(withKeys(text), readKey, opts);
  } catch (e) {
    error = String((e as Error).message);
  }
  expect({ at, error }).toEqual({ at, error: '' });
  const doc = parseYaml(withKeys(text));
  expect({ at, schema: validateSchema(doc), errors: validateSchema.errors ?? null }).toEqual({ at, schema: true, errors: null });
}

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

  it('every config block of docs/*.md and every examples/*.yaml is accepted, by the loader and by the published schema file', () => {
    let n = 0;
    for (const file of OTHER_DOCS) {
      for (const b of yamlBlocks(file).filter((x) => isConfig(x.text))) {
        const doc = parseYaml(withKeys(b.text)) as { hosts?: Record<string, unknown> };
        for (const host of doc.hosts ? Object.keys(doc.hosts) : [undefined]) accepts(`${file}:${b.line}${host ? ` --host ${host}` : ''}`, b.text, { host });
        n++;
      }
    }
    for (const file of EXAMPLES) {
      const text = readFileSync(file, 'utf8');
      const doc = parseYaml(withKeys(text)) as { hosts?: Record<string, unknown> };
      for (const host of doc.hosts ? Object.keys(doc.hosts) : [undefined]) accepts(`${file}${host ? ` --host ${host}` : ''}`, text, { host });
      n++;
    }
    expect(EXAMPLES.length).toBeGreaterThanOrEqual(2);
    expect(n).toBeGreaterThanOrEqual(EXAMPLES.length + 2); // docs/config.md holds at least two
  });

  it('the docs do hold config examples (the architecture doc a complete one)', () => {
    const blocks = yamlBlocks('docs/ARCHITECTURE.md');
    expect(blocks.length).toBeGreaterThan(0);
    const full = parseConfig(withKeys(blocks[0].text));
    expect(full.networks.length).toBeGreaterThan(0);
    expect(full.networks[0].endpoints.length).toBeGreaterThan(0);
    expect(yamlBlocks('README.md').length).toBeGreaterThan(0);
  });
});
