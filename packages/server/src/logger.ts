// Structured logging: one JSON event per line (pino), node id on every line; the term is added
// by the node where it matters (role changes, elections).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(nodeId: string, level: string): Logger {
  return pino({ level, base: { node: nodeId }, timestamp: pino.stdTimeFunctions.isoTime });
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
export function createSinkLogger(nodeId: string, level: string, sink: (line: string) => void): Logger {
  return pino({ level, base: { node: nodeId }, timestamp: false }, { write: sink });
}
