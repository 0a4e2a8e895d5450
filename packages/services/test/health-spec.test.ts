/** Health-check specs: Compose field names and durations, our defaults, and one typed error per bad field. */
import { describe, expect, it } from 'vitest';
import { HEALTH_DEFAULTS, HealthSpecError, parseDuration, parseHealthSpec } from '@overlay/services';

function errorOf(input: unknown): HealthSpecError {
  try {
    parseHealthSpec(input);
  } catch (e) {
    expect(e).toBeInstanceOf(HealthSpecError);
    expect((e as HealthSpecError).code).toBe('OVL_ERR_HEALTH_SPEC');
    return e as HealthSpecError;
  }
  throw new Error(`accepted: ${JSON.stringify(input)}`);
}

describe('durations', () => {
  it('reads Compose/Go duration strings and numbers of milliseconds', () => {
    expect(parseDuration('x', '2s')).toBe(2_000);
    expect(parseDuration('x', '1m30s')).toBe(90_000);
    expect(parseDuration('x', '1h2m3.5s')).toBe(3_723_500);
    expect(parseDuration('x', '250ms')).toBe(250);
    expect(parseDuration('x', '1.5s')).toBe(1_500);
    expect(parseDuration('x', '1500us')).toBe(2);
    expect(parseDuration('x', '0')).toBe(0);
    expect(parseDuration('x', 750)).toBe(750);
  });

  it('refuses anything else, naming the field', () => {
    for (const bad of ['', '2', 's', '2 s', '2sec', '-1s', '1d', 'ms5', '1m30', 'NaN', -5, Infinity, null, {}, '25h']) {
      expect(() => parseDuration('interval', bad)).toThrow(HealthSpecError);
      try {
        parseDuration('interval', bad);
      } catch (e) {
        expect((e as HealthSpecError).field).toBe('interval');
        expect((e as Error).message).toMatch(/^healthcheck\.interval: /);
      }
    }
  });
});

describe('parseHealthSpec', () => {
  it('maps a Compose healthcheck block one to one', () => {
    // As a YAML parser hands over a Compose file's healthcheck block.
    const block = { test: ['CMD', '/usr/local/bin/ready', '--quick'], interval: '1m30s', timeout: '10s', retries: 5, start_period: '40s', start_interval: '5s' };
    expect(parseHealthSpec(block)).toMatchObject({
      kind: 'exec', argv: ['/usr/local/bin/ready', '--quick'],
      intervalMs: 90_000, timeoutMs: 10_000, fall: 5, startPeriodMs: 40_000, startIntervalMs: 5_000,
      rise: HEALTH_DEFAULTS.rise, dampMs: HEALTH_DEFAULTS.dampMs,
    });
    expect(parseHealthSpec({ test: ['NONE'] }).kind).toBe('none');
    expect(parseHealthSpec({ disable: true }).kind).toBe('none');
  });

  it('our defaults: interval 2 s, timeout 1 s, fall 3, rise 2, damp 10 s; start_interval = interval', () => {
    expect(parseHealthSpec({ kind: 'tcp' })).toMatchObject({
      kind: 'tcp', intervalMs: 2_000, timeoutMs: 1_000, fall: 3, rise: 2, startPeriodMs: 0, startIntervalMs: 2_000, dampMs: 10_000,
    });
    expect(parseHealthSpec({ kind: 'http' })).toMatchObject({ path: '/', statusMin: 200, statusMax: 399, tlsSkipVerify: false });
    expect(parseHealthSpec({ kind: 'http', status: '200-299', path: '/healthz', port: 8080 })).toMatchObject({ statusMin: 200, statusMax: 299, path: '/healthz', port: 8080 });
    expect(parseHealthSpec({ kind: 'https', status: [200, 204], tls_skip_verify: true })).toMatchObject({ statusMin: 200, statusMax: 204, tlsSkipVerify: true });
    expect(parseHealthSpec({ kind: 'http', status: 204 })).toMatchObject({ statusMin: 204, statusMax: 204 });
    expect(parseHealthSpec({ kind: 'exec', argv: ['/bin/true'], env: { MODE: 'quick' } })).toMatchObject({ argv: ['/bin/true'], env: { MODE: 'quick' } });
    expect(parseHealthSpec({ kind: 'icmp', fall: 2 }).fall).toBe(2);
  });

  it('names the field of every problem', () => {
    const cases: [unknown, string][] = [
      [null, '(root)'],
      [[], '(root)'],
      [{}, 'kind'],
      [{ kind: 'udp' }, 'kind'],
      [{ kind: 'tcp', colour: 'red' }, 'colour'],
      [{ test: 'curl -f http://localhost' }, 'test'],
      [{ test: ['CMD-SHELL', 'curl -f http://localhost'] }, 'test'],
      [{ test: ['RUN', 'x'] }, 'test'],
      [{ test: ['CMD'] }, 'test'],
      [{ test: ['CMD', 'a\0b'] }, 'test[0]'],
      [{ test: ['CMD', '/bin/true'], kind: 'tcp' }, 'test'],
      [{ test: ['CMD', '/bin/true'], argv: ['/bin/true'] }, 'argv'],
      [{ kind: 'exec' }, 'argv'],
      [{ kind: 'tcp', argv: ['/bin/true'] }, 'argv'],
      [{ kind: 'tcp', env: { A: 'b' } }, 'env'],
      [{ kind: 'exec', argv: ['/bin/true'], env: { 'A-B': 'c' } }, 'env.A-B'],
      [{ kind: 'exec', argv: ['/bin/true'], env: { A: 1 } }, 'env.A'],
      [{ kind: 'tcp', port: 0 }, 'port'],
      [{ kind: 'tcp', port: 70_000 }, 'port'],
      [{ kind: 'tcp', port: '80' }, 'port'],
      [{ kind: 'exec', argv: ['/bin/true'], port: 80 }, 'port'],
      [{ kind: 'tcp', path: '/x' }, 'path'],
      [{ kind: 'http', path: 'x' }, 'path'],
      [{ kind: 'http', path: '/a b' }, 'path'],
      [{ kind: 'http', status: '2xx' }, 'status'],
      [{ kind: 'http', status: '399-200' }, 'status'],
      [{ kind: 'http', status: 99 }, 'status'],
      [{ kind: 'http', tls_skip_verify: true }, 'tls_skip_verify'],
      [{ kind: 'https', tls_skip_verify: 'yes' }, 'tls_skip_verify'],
      [{ kind: 'tcp', interval: '5ms' }, 'interval'],
      [{ kind: 'tcp', timeout: 0 }, 'timeout'],
      [{ kind: 'tcp', start_interval: '1ms' }, 'start_interval'],
      [{ kind: 'tcp', start_period: 'soon' }, 'start_period'],
      [{ kind: 'tcp', damp: '-1s' }, 'damp'],
      [{ kind: 'tcp', retries: 0 }, 'retries'],
      [{ kind: 'tcp', retries: 1.5 }, 'retries'],
      [{ kind: 'tcp', retries: 2, fall: 2 }, 'fall'],
      [{ kind: 'tcp', rise: 101 }, 'rise'],
      [{ kind: 'tcp', disable: 'yes' }, 'disable'],
    ];
    for (const [input, field] of cases) expect(errorOf(input).field, JSON.stringify(input)).toBe(field);
  });
});
