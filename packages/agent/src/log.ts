/**
 * The agent's logs: pino, one JSON object per line on stderr (time, level, msg and fields) for
 * machines; pino-pretty's coloured lines when asked (`log.format: pretty`) or, with no format
 * given, when stderr is a terminal. Levels are pino's (fatal … trace, silent).
 *
 * Keys never reach a log: nothing logs the config, and as a second line of defence every field
 * named like a secret (signingKey, privateKey, presharedKey, clusterKeys, secretKey, key) is
 * replaced by "[redacted]" at any of the first three depths. Public keys are logged under
 * `publicKey`/`peer`, which are not redacted.
 */
import { createRequire } from 'node:module';
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;
export type LogFormat = 'json' | 'pretty';

/** Field names whose values are secrets. */
export const SECRET_FIELDS = ['signingKey', 'privateKey', 'presharedKey', 'clusterKeys', 'secretKey', 'key'] as const;

const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

export interface LoggerOptions {
  /** pino level name; default 'info'. */
  level?: string;
  /** Default: pretty when `destination` is absent and stderr is a TTY, else json. */
  format?: LogFormat;
  /** Where lines go; default stderr (written synchronously, so nothing is lost at exit). */
  destination?: DestinationStream;
  /** Base fields of every line (e.g. the node name). */
  base?: Record<string, unknown>;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const format = o.format ?? (!o.destination && process.stderr.isTTY ? 'pretty' : 'json');
  const opts = { level: o.level ?? 'info', base: o.base ?? {}, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (format === 'pretty') {
    // Loaded only for this format: a JSON-logging agent (a service, stderr not a terminal) never pays its heap.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty').build;
    const stream = pretty({ destination: o.destination ?? 2, colorize: !o.destination && process.stderr.isTTY, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
    return pino(opts, stream);
  }
  return pino(opts, o.destination ?? pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything (embedders and tests that do not want logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
