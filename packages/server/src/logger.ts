// Structured logging: one JSON event per line (pino), node id on every line; the term is added
// by the node where it matters (role changes, elections).
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** What replaces a secret in a log line. */
export const REDACTED = '[REDACTED]';
/**
 * Fields that never reach a log line whatever their value: the cluster secret, HTTP
 * Authorization headers (admin tokens, future bearer tokens), passwords and tokens.
 */
const REDACT_PATHS = [
  'clusterSecret', '*.clusterSecret', 'secret', '*.secret', 'password', '*.password', 'token', '*.token',
  'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
];
/** Secrets shorter than this are not scrubbed by value (they would match ordinary text); config refuses them anyway. */
const SCRUB_MIN_LENGTH = 8;

/**
 * Redaction for a node's logger: known secret fields by path, and every occurrence of the given
 * secret values (the cluster secret and its admin token) anywhere in a line — in a message, an
 * error's text or a stack — replaced by {@link REDACTED}.
 */
export function redaction(secrets: readonly string[]): Pick<LoggerOptions, 'redact' | 'hooks'> {
  const values = secrets.filter((v) => v.length >= SCRUB_MIN_LENGTH);
  const jsonForms = values.map((v) => JSON.stringify(v).slice(1, -1)).filter((v, i) => v !== values[i]);
  const all = [...values, ...jsonForms];
  return {
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    ...(all.length > 0 ? { hooks: { streamWrite: (line: string) => scrub(line, all) } } : {}),
  };
}

function scrub(line: string, values: readonly string[]): string {
  let out = line;
  for (const v of values) if (out.includes(v)) out = out.split(v).join(REDACTED);
  return out;
}

/** A node's logger: JSON lines with the node id; `secrets` never appear in a line (see {@link redaction}). */
export function createLogger(nodeId: string, level: string, secrets: readonly string[] = []): Logger {
  return pino({ level, base: { node: nodeId }, timestamp: pino.stdTimeFunctions.isoTime, ...redaction(secrets) });
}

/** Adapts pino to the small logger interfaces of the core and the transport. */
export function coreLogger(log: Logger) {
  return {
    debug: (fields: Record<string, unknown>, msg: string) => log.debug(fields, msg),
    info: (fields: Record<string, unknown>, msg: string) => log.info(fields, msg),
    warn: (fields: Record<string, unknown>, msg: string) => log.warn(fields, msg),
    error: (fields: Record<string, unknown>, msg: string) => log.error(fields, msg),
  };
}

/**
 * A logger that hands each JSON line to `sink` (the whole-node simulation keeps them for its
 * failure trace). No timestamp: the simulation's lines are identical from run to run.
 */
export function createSinkLogger(nodeId: string, level: string, sink: (line: string) => void, secrets: readonly string[] = []): Logger {
  return pino({ level, base: { node: nodeId }, timestamp: false, ...redaction(secrets) }, { write: sink });
}
