import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger, SECRET_FIELDS } from '../src/log.js';

function sink() {
  let text = '';
  const stream = new Writable({ write: (c, _e, cb) => ((text += c), cb()) });
  return { stream, text: () => text };
}

describe('log', () => {
  it('json lines with time, level and base fields; levels filter', () => {
    const s = sink();
    const log = createLogger({ level: 'info', destination: s.stream, base: { node: 'n1' } });
    log.debug('hidden');
    log.info({ member: 'm2' }, 'member joined');
    log.warn('careful');
    const recs = s.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.map((r) => r.msg)).toEqual(['member joined', 'careful']);
    expect(recs[0]).toMatchObject({ level: 30, node: 'n1', member: 'm2' });
    expect(typeof recs[0].time).toBe('number');
    expect(recs[1].level).toBe(40);
  });

  it('fields named like secrets are redacted at depth 1 to 3', () => {
    const s = sink();
    const log = createLogger({ destination: s.stream });
    const secret = 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=';
    for (const f of SECRET_FIELDS) log.info({ [f]: secret, a: { [f]: secret, b: { [f]: [secret] } } }, 'x');
    expect(s.text()).not.toContain(secret);
    expect(s.text()).toContain('[redacted]');
  });

  it('pretty format writes human lines, not JSON', () => {
    const s = sink();
    const log = createLogger({ format: 'pretty', destination: s.stream });
    log.info({ member: 'm2' }, 'member joined');
    expect(s.text()).toMatch(/INFO.*member joined/);
    expect(s.text()).toContain('member: "m2"');
    expect(() => JSON.parse(s.text())).toThrow();
  });
});
